"""A fairseq child that uses a GPU starts where CUDA works. The translation launcher queries CUDA
before it starts its GPU children (jobs.trains_on_gpus, gpu_of; importing fairseq calls
torch.cuda.device_count), and torch refuses CUDA in a child forked after that, so a GPU child is
spawned (processes.start_method) while a CPU child is still forked. On a machine without a GPU a
spawned GPU child fails too, but for lack of a GPU, and says so in its log."""
import json
import os
from pathlib import Path

import pytest
import torch

from codistill_experiments.translation import processes

BAD_FORK = "Cannot re-initialize CUDA in forked subprocess"
PROBE_VARIABLE = "CODISTILL_FORK_SAFETY_PROBE"
# Set in the test's process while a child starts: a forked child sees that value, a spawned one
# (a fresh interpreter importing this module) sees None.
set_in_parent_memory = None


def _probe(path):
    """What a started child sees, written to `path`: whether torch counts it a bad fork (CUDA then
    unusable), its parent's pid, an environment variable the parent set, and a module global the
    parent set in memory only."""
    Path(path).write_text(json.dumps({"bad_fork": torch._C._cuda_isInBadFork(), "parent": os.getppid(),
                                      "variable": os.environ.get(PROBE_VARIABLE),
                                      "memory": set_in_parent_memory}))


def probe_child(tmp_path, monkeypatch, gpu):
    """Starts _probe in a child by processes.start_process(gpu) after this process queried CUDA, as
    the launcher does; returns what the child saw."""
    torch.cuda.is_available()   # as the launcher does before it starts its children
    monkeypatch.setenv(PROBE_VARIABLE, "set before the start")
    monkeypatch.setitem(globals(), "set_in_parent_memory", "set before the start")
    path = tmp_path / "probe.json"
    child = processes.start_process(_probe, (str(path),), gpu=gpu)
    child.join()
    assert child.exitcode == 0
    return json.loads(path.read_text())


def test_a_gpu_child_started_after_cuda_was_queried_can_use_cuda(tmp_path, monkeypatch):
    seen = probe_child(tmp_path, monkeypatch, gpu=0)
    # A fresh interpreter: not a bad fork, still a direct child (_die_with_parent compares its parent
    # with the launcher's pid), with the environment the launcher set before starting it.
    assert seen == {"bad_fork": False, "parent": os.getpid(), "variable": "set before the start", "memory": None}


def test_a_cpu_child_is_forked_and_inherits_this_process(tmp_path, monkeypatch):
    seen = probe_child(tmp_path, monkeypatch, gpu=None)
    assert (seen["parent"], seen["variable"], seen["memory"]) == (os.getpid(), "set before the start",
                                                                 "set before the start")


@pytest.mark.slow
def test_a_fairseq_child_on_a_gpu_fails_only_for_lack_of_a_gpu(tmp_path, capfd):
    cuda = torch.cuda.is_available()
    log_path = tmp_path / "preprocess.log"
    child = processes.start_fairseq("preprocess", ["--help"], log_path, gpu=0)
    child.join()
    log = log_path.read_text()
    out, err = capfd.readouterr()
    assert BAD_FORK not in log + out + err
    if cuda:
        assert child.exitcode == 0 and "usage: fairseq-preprocess" in log
    else:  # torch's own reason (no driver, no device), in the log that FairseqFailed quotes
        assert child.exitcode != 0
        assert "torch.cuda.set_device(gpu)" in log and "RuntimeError: " in log, log
