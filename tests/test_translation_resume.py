"""A translation run's resume state is checked as a vision run's is: fairseq's checkpoint_last.pt
is recorded with its sha256 once written, and a resumed model whose checkpoint changed since (a
flipped bit that torch.load accepts) is restored from an intact copy of the same update, or the
run stops naming the file; a resumed run says `resume (from update N)`."""
import hashlib
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from forked_script import run_script, start_script
from translation_helpers import SMALL, records_of, without_times

from codistill_experiments.runlog import is_finished
from codistill_experiments.translation import checkpoints

ROOT = Path(__file__).resolve().parents[1]
# One model of one rank, validated and saved at each epoch's end (5 updates here).
JOB = [*SMALL, "method=allreduce", "scale.ranks_per_model=1"]


def flip(path):
    """64 bytes inverted in the middle of the file (a disk fault that torch.load may not notice)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(255 - byte for byte in data[middle:middle + 64])
    path.write_bytes(bytes(data))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(root, timeout=300):
    return run_script([ROOT / "src" / "run.py", *JOB, f"results_root={root}"], cwd=root, timeout=timeout)


def the_run(root):
    [directory] = (root / "runs").iterdir()
    return directory


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """(results root of the uninterrupted run, of a run SIGKILLed once its first checkpoint was
    recorded, the update that checkpoint holds)."""
    reference = tmp_path_factory.mktemp("reference")
    done = run(reference)
    assert done.returncode == 0 and is_finished(the_run(reference)), done.stderr[-2000:]
    root = tmp_path_factory.mktemp("killed")
    process = start_script([ROOT / "src" / "run.py", *JOB, f"results_root={root}"], cwd=root)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not list(root.glob("runs/*/model0/" +
                                                                                         checkpoints.RECORD)):
        time.sleep(0.01)
    assert process.poll() is None, "the run ended before its first checkpoint was recorded"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    folder = the_run(root) / "model0"
    record = json.loads((folder / checkpoints.RECORD).read_text())
    # recorded at the update after the save, 4 updates before the next one: the kill came first
    assert digest(folder / "checkpoint_last.pt") == record["sha256"], "killed after a later save"
    assert torch.load(folder / "checkpoint_last.pt", weights_only=False)["optimizer_history"][-1]["num_updates"] \
        == record["step"]
    return reference, root, record["step"]


def copy_of(root, tmp_path):
    shutil.copytree(root, tmp_path / "results")
    return tmp_path / "results", the_run(tmp_path / "results") / "model0"


@pytest.mark.slow
def test_a_damaged_checkpoint_is_restored_from_its_intact_copy_and_the_run_ends_as_uninterrupted(killed, tmp_path):
    reference, killed_root, step = killed
    root, folder = copy_of(killed_root, tmp_path)
    intact = [path.name for path in folder.glob("checkpoint*.pt") if digest(path) == digest(folder / "checkpoint_last.pt")
              and path.name != "checkpoint_last.pt"]
    assert intact == ["checkpoint_best.pt"]   # the first save improved on nothing: fairseq wrote best, then copied
    flip(folder / "checkpoint_last.pt")
    done = run(root)
    assert done.returncode == 0, done.stderr[-2000:]
    warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and str(folder / "checkpoint_last.pt") in warning[0], done.stderr[-2000:]
    assert f"its sha256 differs from the one recorded at update {step}" in warning[0]
    assert warning[0].endswith(f"restored it from checkpoint_best.pt, the same update {step}, and resuming from there")
    assert f"resume (from update {step})" in done.stdout, done.stdout[-2000:]
    assert f"@ {step} updates" in (folder / "train-rank0.log").read_text().split("$ fairseq-train")[-1]
    directory, expected = the_run(root), the_run(reference)
    assert is_finished(directory)
    assert without_times(records_of(directory, "eval")) == without_times(records_of(expected, "eval"))
    assert records_of(directory, "test") == records_of(expected, "test")


@pytest.mark.slow
def test_with_no_intact_copy_left_the_rerun_stops_naming_the_file_and_trains_nothing(killed, tmp_path):
    _, killed_root, step = killed
    root, folder = copy_of(killed_root, tmp_path)
    for path in folder.glob("checkpoint*.pt"):
        flip(path)
    before = {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    done = run(root)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message == (f"error: the model's saved state cannot be read: {folder / 'checkpoint_last.pt'} is unreadable "
                       f"(its sha256 differs from the one recorded at update {step}: it changed after it was written), "
                       f"and no intact copy of it is left. Delete {folder} to train that model again from the start "
                       "(rerun the same command), or restore the file from a backup.")
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()} == before


@pytest.mark.slow
def test_an_undamaged_resumed_run_says_from_which_update(killed, tmp_path):
    _, killed_root, step = killed
    root, folder = copy_of(killed_root, tmp_path)
    done = run(root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resume (from update {step}) " in done.stdout, done.stdout[-2000:]
    assert not [line for line in done.stderr.splitlines() if line.startswith("warning:")], done.stderr[-2000:]


def fairseq_like(folder, step, first="checkpoint_best.pt"):
    """A save as fairseq makes one: its first file written, then copied to checkpoint_last.pt."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {"w": torch.arange(4000.0) + step}, "optimizer_history": [{"num_updates": step}]},
               folder / first)
    if first != "checkpoint_last.pt":
        shutil.copyfile(folder / first, folder / "checkpoint_last.pt")


def test_resume_step_checks_the_checkpoint_against_its_record(tmp_path):
    said = []
    assert checkpoints.resume_step(tmp_path, said.append) is None   # nothing saved: a fresh start
    fairseq_like(tmp_path, 5)
    assert checkpoints.resume_step(tmp_path, said.append) == 5   # saved, not recorded yet: nothing to check
    checkpoints.record_checkpoint(tmp_path, 5)
    assert json.loads((tmp_path / "checkpoint_last.json").read_text()) == {
        "step": 5, "sha256": digest(tmp_path / "checkpoint_last.pt")}
    intact = (tmp_path / "checkpoint_last.pt").read_bytes()
    flip(tmp_path / "checkpoint_last.pt")
    assert torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["optimizer_history"][0]["num_updates"] == 5
    assert checkpoints.resume_step(tmp_path, said.append) == 5 and len(said) == 1
    assert (tmp_path / "checkpoint_last.pt").read_bytes() == intact   # restored from checkpoint_best.pt
    assert said[0].startswith(f"warning: {tmp_path / 'checkpoint_last.pt'} is unreadable (its sha256 differs")
    assert checkpoints.resume_step(tmp_path, said.append) == 5 and len(said) == 1   # sound again: silent
    # A later save, killed before the update that records it: a later update than the record's.
    fairseq_like(tmp_path, 10, first="checkpoint_last.pt")
    assert checkpoints.resume_step(tmp_path, said.append) == 10 and len(said) == 1
    # The recorded one damaged with no intact copy: stops, naming the file, deleting nothing.
    fairseq_like(tmp_path, 15, first="checkpoint_last.pt")
    checkpoints.record_checkpoint(tmp_path, 15)
    flip(tmp_path / "checkpoint_last.pt")
    files = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    with pytest.raises(checkpoints.CheckpointUnreadable, match=r"checkpoint_last.pt is unreadable \(its sha256 differs "
                       r"from the one recorded at update 15.*no intact copy of it is left\. Delete "):
        checkpoints.resume_step(tmp_path, said.append)
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == files
    # Truncated (torch.load refuses it): unreadable too.
    (tmp_path / "checkpoint_last.pt").write_bytes(files["checkpoint_last.pt"][:1000])
    (tmp_path / "checkpoint_best.pt").unlink()
    with pytest.raises(checkpoints.FairseqFailed, match="is incomplete"):
        checkpoints.resume_step(tmp_path, said.append)


def test_resume_update_names_the_update_each_model_resumes_from(tmp_path):
    from codistill_experiments.translation.launcher import resume_update

    config = {"method": {"n": 2}, "scale": {"ranks_per_model": 1}, "schedule": {"max_update": 24}}
    assert resume_update(config, tmp_path) is None
    fairseq_like(tmp_path / "model0", 10)
    fairseq_like(tmp_path / "model1", 10)
    assert resume_update(config, tmp_path) == "10"
    fairseq_like(tmp_path / "model1", 15)
    assert resume_update(config, tmp_path) == "10, 15 (models 0, 1)"
