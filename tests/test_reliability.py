"""Crash safety, exact resume, determinism, no hangs when a rank dies, safe loading."""
import json
import os
import pickle
import random
import signal
import subprocess
import time
from argparse import Namespace
from pathlib import Path

import pytest
from conftest import SHORT, compose_job
from forked_script import run_script, start_script
from test_frontier_methods import run_to_the_end

from benchmarks import soak_resume
from codistill_experiments import run_state
from codistill_experiments.runlog import METRICS_FILE, MetricsLog, read_records, run_dir, run_id

RUN = soak_resume.RUN


def children(pid):
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_same_config_and_seed_give_identical_logs(tmp_path):
    # One run through src/run.py, one launched as it launches (its ranks forked from this process,
    # which has imported torch already): whatever either did not derive from the config and seed
    # would tell them apart.
    job = soak_resume.job(12)
    done = subprocess.run([*RUN, *job, f"results_root={tmp_path / 'a'}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    run_to_the_end(job, tmp_path / "b")
    first, second = (soak_resume.log_without_wall_time(tmp_path / name) for name in ("a", "b"))
    assert first == second and len(first) == 1 + 2 * 12


@pytest.mark.slow   # a test instrument, not a feature: `make test-fast` keeps its refusals (test_config.py)
def test_a_pause_after_each_update_stretches_the_run_and_changes_nothing_it_computes(tmp_path):
    # update_pause_s: tests/test_slurm.py's interrupted runs pause to last in wall time without
    # using the CPU, and are compared with runs that do not
    job, pause = ["method=codistill", *SHORT], 0.03
    plain, paused = (run_to_the_end(overrides, tmp_path / name) for name, overrides in
                     (("plain", job), ("paused", [*job, f"update_pause_s={pause}"])))
    assert paused["update_pause_s"] == pause and run_id(paused) == run_id(plain)
    logs = [read_records(run_dir(container) / METRICS_FILE) for container in (plain, paused)]
    without_time = [[{key: value for key, value in record.items() if key != "wall_time"} for record in log
                     if record["kind"] in ("eval", "end")] for log in logs]
    assert without_time[0] == without_time[1] and len(without_time[0]) == 2 * 3 + 1   # 3 epochs x 2 models
    steps = without_time[1][-1]["steps"]
    assert steps == 3 * 37 and logs[1][-1]["wall_time"] >= steps * pause   # unpaused: about a second here


class ForkedSubprocess:
    """What soak_resume calls of the subprocess module, its commands (`python src/run.py ...`) run
    in forks of this process (tests/forked_script.py: the same exit status, output and session as
    a fresh interpreter, without its seconds of imports at each attempt)."""
    PIPE, DEVNULL = subprocess.PIPE, subprocess.DEVNULL

    @staticmethod
    def Popen(command, **_):   # soak_resume's: stdout piped, stderr dropped, a session of its own
        return start_script(command[1:])

    @staticmethod
    def run(command, **_):     # soak_resume's: output captured as text
        return run_script(command[1:])


# The soak's job on 16 epochs instead of 80: the kills land within 1.5 s of an attempt's start, and
# the pause (changing nothing computed) keeps a run longer than that on any machine.
KILLED_JOB = [*soak_resume.job(16), "update_pause_s=0.005"]


@pytest.mark.slow
def test_runs_killed_at_random_moments_resume_to_the_uninterrupted_log(tmp_path, monkeypatch):
    run_to_the_end(KILLED_JOB, tmp_path / "reference")   # as src/run.py launches it (the test above)
    monkeypatch.setattr(soak_resume, "subprocess", ForkedSubprocess)
    expected = soak_resume.log_without_wall_time(tmp_path / "reference")
    exits = []
    delivered, resumes, code = soak_resume.kill_and_resume(tmp_path / "killed", 3, random.Random(20261122),
                                                            exits=exits, job=KILLED_JOB)
    # an attempt the kill did not reach had finished the run by itself (a fast machine): never failed
    assert code == 0 and delivered >= 1 and delivered + len(exits) == 3 and set(exits) <= {0}
    assert resumes >= 1, "no kill landed after a committed state: the resume path was not exercised"
    assert soak_resume.log_without_wall_time(tmp_path / "killed") == expected


def test_a_torn_last_line_and_uncommitted_records_are_dropped_on_resume(tmp_path):
    config = compose_job(["method=codistill"], tmp_path)
    header = {"kind": "header", "run_id": "x", "config": {}}
    lines = [header] + [{"kind": "eval", "step": s, "model": m} for s in (37, 74) for m in (0, 1)]
    (tmp_path / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "ev')
    log = MetricsLog.resume(tmp_path, config, last_step=37)
    log.write({"kind": "eval", "step": 74, "model": 0})
    log.close()
    assert read_records(tmp_path / METRICS_FILE) == [header, *lines[1:3], {"kind": "eval", "step": 74, "model": 0}]


@pytest.mark.slow
def test_when_one_rank_dies_every_process_exits_nonzero_and_says_which(tmp_path):
    command = [*RUN[1:], *soak_resume.job(200), "launcher.collective_timeout_s=30", f"results_root={tmp_path}"]
    process = start_script(command)   # src/run.py in a fork of this process (tests/forked_script.py)
    deadline = time.time() + 60
    while len(children(process.pid)) < 2 and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    ranks = children(process.pid)
    assert len(ranks) == 2
    os.kill(ranks[1], signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode != 0
    # The message comes last, alone (after an empty line), below any traceback.
    *before, blank, message = stderr.rstrip("\n").split("\n")
    assert blank == "" and message.startswith("error: rank 1 (model 1) exited with code -9 (signal SIGKILL)")
    assert "Rerun the same command to resume" in message
    assert not any(alive(pid) for pid in ranks)


def test_a_snapshot_holding_a_non_tensor_object_is_refused(tmp_path):
    state = {"step": 3, "model": {}, "payload": Namespace(command="rm -rf /")}
    run_state.save_group_state(tmp_path, 0, 3, state)
    with pytest.raises(pickle.UnpicklingError):
        run_state.load_group_state(tmp_path, 0, 3)


def test_only_committed_state_is_resumed_from(tmp_path):
    run_state.save_group_state(tmp_path, 0, 37, {"step": 37})
    assert run_state.committed_step(tmp_path) is None
    run_state.commit(tmp_path, 37)
    run_state.save_group_state(tmp_path, 0, 74, {"step": 74})  # written, never committed
    assert run_state.committed_step(tmp_path) == 37
    run_state.commit(tmp_path, 74)   # 37 is kept until the next commit: a fallback (tests/test_damaged_state.py)
    assert sorted(p.name for p in (tmp_path / "state").glob("*.pt")) == ["model0-step37.pt", "model0-step74.pt"]
    run_state.save_group_state(tmp_path, 0, 111, {"step": 111})
    run_state.commit(tmp_path, 111)
    assert sorted(p.name for p in (tmp_path / "state").glob("*.pt")) == ["model0-step111.pt", "model0-step74.pt"]


@pytest.mark.slow
def test_a_hung_peer_makes_the_other_rank_exit_within_the_collective_timeout(tmp_path):
    # Each rank its own process, as under torchrun or Slurm: nothing but the timeout can stop rank 0.
    timeout_s = 10
    command = [*RUN[1:], *soak_resume.job(200), f"launcher.collective_timeout_s={timeout_s}",
               f"results_root={tmp_path}"]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="2")
    # src/run.py in forks of this process, which has no process group of its own (forked_script.py)
    ranks = [start_script(command, env=dict(env, RANK=str(rank))) for rank in (0, 1)]
    try:
        deadline = time.time() + 120
        while not list(tmp_path.glob("runs/*/metrics.jsonl")) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        os.kill(ranks[1].pid, signal.SIGSTOP)
        stopped_at = time.time()
        _, stderr = ranks[0].communicate(timeout=timeout_s + 30)
        assert ranks[0].returncode != 0
        assert time.time() - stopped_at < timeout_s + 15
        assert stderr.rstrip("\n").split("\n")[-1].startswith("error: rank 0 (model 0) lost a peer")
    finally:
        ranks[1].kill()
        ranks[1].wait()


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_run_being_trained_elsewhere_is_refused_not_trained_twice(tmp_path):
    from conftest import QUICK_WORKLOAD, SHORT
    from test_config import run_cli

    from codistill_experiments.runlog import run_dir

    args = [QUICK_WORKLOAD, "method=codistill", "seed=8", *SHORT]
    directory = run_dir(compose_job(args, tmp_path))
    args.append(f"results_root={tmp_path}")
    with run_state.run_lock(directory):   # as a job of another sweep holding the same run would
        busy = run_cli(*args, cwd=tmp_path)
    assert busy.returncode != 0 and "is being trained by host" in busy.stderr
    assert f"pid {os.getpid()}" in busy.stderr and "Traceback" not in busy.stderr
    assert not (directory / METRICS_FILE).exists()
    free = run_cli(*args, cwd=tmp_path)     # the lock is gone with its holder: the run trains
    assert free.returncode == 0, free.stderr[-2000:]
    assert read_records(directory / METRICS_FILE)[-1]["kind"] == "end"
