"""Damaged run state (a truncated commit record or model state, e.g. after a disk fault): the
rerun falls back to the previous committed step, saying so, and ends with the uninterrupted run's
log; when nothing readable is left it stops with a message naming the file and what to do."""
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch
from forked_script import run_script
from test_frontier_methods import run_to_the_end

from benchmarks import soak_resume
from codistill_experiments import run_state
from codistill_experiments.runlog import METRICS_FILE, read_records

EPOCHS = 3   # the state is committed at each epoch's evaluation


def rerun(results_root):
    """`python src/run.py <job>`, in a fork of this process (tests/forked_script.py)."""
    return run_script([*soak_resume.RUN[1:], *soak_resume.job(EPOCHS), f"results_root={results_root}"], timeout=300)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(results root of an uninterrupted run, its log without wall times, the updates of its last
    two evaluations). It is launched as src/run.py launches it, from this process (the reruns are
    src/run.py's: tests/test_reliability.py checks that both write the same log)."""
    root = tmp_path_factory.mktemp("reference")
    run_to_the_end(soak_resume.job(EPOCHS), root)
    log = soak_resume.log_without_wall_time(root)
    steps = sorted({record["step"] for record in log if record["kind"] == "eval"})
    assert len(steps) == EPOCHS
    return root, log, {"last": steps[-1], "before": steps[-2]}


def crashed_after_last_commit(finished, tmp_path):
    """A copy of the finished run as a crash right after its last commit leaves it: the state of
    the last two evaluations on disk, no end record, no final weights."""
    root = tmp_path / "results"
    shutil.copytree(finished[0], root)
    directory = soak_resume.run_directory(root)
    log = directory / METRICS_FILE
    kept = [line for line in log.read_text().splitlines(keepends=True) if '"kind": "end"' not in line]
    log.write_text("".join(kept))
    for weights in directory.glob("model*.pt"):
        weights.unlink()
    return root, directory / run_state.STATE_DIR


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def flip(path):
    """64 bytes inverted in the middle of the file (a disk fault that torch.load may not notice)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(255 - byte for byte in data[middle:middle + 64])
    path.write_bytes(bytes(data))


DAMAGE = {"truncated": truncate, "bit-flipped": flip}


@pytest.mark.slow
def test_a_finished_run_keeps_its_last_two_committed_steps(finished):
    state = soak_resume.run_directory(finished[0]) / run_state.STATE_DIR
    last, before = finished[2]["last"], finished[2]["before"]
    assert sorted(path.name for path in state.glob("*.pt")) == sorted(
        f"model{group}-step{step}.pt" for group in (0, 1) for step in (before, last))
    assert run_state.read_commit(state / "latest.json") == last
    assert run_state.read_commit(state / "previous.json") == before


@pytest.mark.parametrize("damaged, damage", [
    ("latest.json", "truncated"),   # the one of make test-fast
    *(pytest.param(*case, marks=pytest.mark.slow) for case in [
        ("model1-step{last}.pt", "truncated"), ("model0-step{last}.pt", "truncated"),
        ("model1-step{last}.pt", "bit-flipped"), ("model0-step{last}.pt", "bit-flipped")])])
def test_a_damaged_newest_state_falls_back_to_the_previous_step_and_ends_as_uninterrupted(
        finished, tmp_path, damaged, damage):
    root, state = crashed_after_last_commit(finished, tmp_path)
    damaged, before = damaged.format(**finished[2]), finished[2]["before"]
    DAMAGE[damage](state / damaged)
    if damage == "bit-flipped":   # loadable: only the committed checksum tells it from the original
        torch.load(state / damaged, weights_only=True)
        assert "sha256 differs from the one committed" in run_state.unreadable_file(
            soak_resume.run_directory(root), run_state.read_record(state / "latest.json"), range(2))[1]
    done = rerun(root)
    assert done.returncode == 0, done.stderr[-2000:]
    warning = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and str(state / damaged) in warning[0], done.stderr[-2000:]
    assert warning[0].endswith(f"resuming from the previous committed state, update {before}")
    assert f"resume (from update {before})" in done.stdout
    assert soak_resume.log_without_wall_time(root) == finished[1]
    assert read_records(soak_resume.run_directory(root) / METRICS_FILE)[-1]["kind"] == "end"


@pytest.mark.slow
@pytest.mark.parametrize("damaged, damage", [(("latest.json", "previous.json"), "truncated"),
                                             (("model1-step{last}.pt", "model1-step{before}.pt"), "truncated"),
                                             (("latest.json", "model0-step{before}.pt"), "truncated"),
                                             (("model1-step{last}.pt", "model0-step{before}.pt"), "bit-flipped")])
def test_with_nothing_readable_left_the_rerun_stops_naming_the_file_and_what_to_do(finished, tmp_path, damaged,
                                                                                  damage):
    root, state = crashed_after_last_commit(finished, tmp_path)
    damaged = [name.format(**finished[2]) for name in damaged]
    for name in damaged:
        DAMAGE[damage](state / name)
    files = {path.name: path.read_bytes() for path in state.iterdir()}
    log = soak_resume.run_directory(root) / METRICS_FILE
    before = log.read_text()
    done = rerun(root)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("error: the run's saved state cannot be read")
    assert all(str(state / name) in message for name in damaged), message
    assert f"Delete {state} to restart this run from the beginning" in message
    assert log.read_text() == before   # nothing was trained or rewritten
    assert {path.name: path.read_bytes() for path in state.iterdir()} == files   # nor deleted
    # Doing what it says restarts the run, which ends with the uninterrupted run's records (its
    # header is new: it names the code's git state now).
    shutil.rmtree(state)
    again = rerun(root)
    assert again.returncode == 0, again.stderr[-2000:]
    assert evals(soak_resume.log_without_wall_time(root)) == evals(finished[1])


def evals(records):
    return [record for record in records if record["kind"] == "eval"]


def write_states(directory, steps, groups=2):
    for step in steps:
        for group in range(groups):
            run_state.save_group_state(directory, group, step, {"step": step, "model": {"w": torch.ones(3)}})


def write_and_commit(directory, steps):
    """What a run does at each evaluation: every group writes its state, then the step is committed."""
    for step in steps:
        write_states(directory, [step])
        run_state.commit(directory, step)


def test_commit_keeps_the_step_it_replaces_until_the_next_one(tmp_path):
    write_states(tmp_path, [37])
    run_state.commit(tmp_path, 37)
    write_states(tmp_path, [74])
    run_state.commit(tmp_path, 74)
    names = lambda: sorted(path.name for path in (tmp_path / "state").glob("*.pt"))  # noqa: E731
    assert names() == ["model0-step37.pt", "model0-step74.pt", "model1-step37.pt", "model1-step74.pt"]
    write_states(tmp_path, [111])   # written, not committed yet
    assert run_state.recover(tmp_path, 2) == 74
    run_state.commit(tmp_path, 111)
    assert names() == ["model0-step111.pt", "model0-step74.pt", "model1-step111.pt", "model1-step74.pt"]
    assert (run_state.read_commit(tmp_path / "state" / "latest.json"),
            run_state.read_commit(tmp_path / "state" / "previous.json")) == (111, 74)


def test_recover_rolls_a_damaged_commit_back_so_every_rank_reads_the_same_step(tmp_path):
    write_and_commit(tmp_path, [37, 74])
    truncate(tmp_path / "state" / "latest.json")
    with pytest.raises(run_state.StateUnreadable, match="latest.json is unreadable"):
        run_state.committed_step(tmp_path)   # never read as "nothing committed": that would restart the run
    said = []
    assert run_state.recover(tmp_path, 2, warn=said.append) == 37
    assert run_state.committed_step(tmp_path) == 37 and len(said) == 1
    assert run_state.recover(tmp_path, 2, warn=said.append) == 37 and len(said) == 1   # repaired: silent now


def test_a_state_file_of_another_step_is_not_taken_for_the_committed_one(tmp_path):
    write_and_commit(tmp_path, [37, 74])
    shutil.copy(tmp_path / "state" / "model1-step37.pt", tmp_path / "state" / "model1-step74.pt")
    said = []
    assert run_state.recover(tmp_path, 2, warn=said.append) == 37
    assert "model1-step74.pt is unreadable (its sha256 differs from the one committed" in said[0]
    # A commit recorded before commits had checksums: the step the file holds tells it.
    write_and_commit(tmp_path, [74])
    shutil.copy(tmp_path / "state" / "model1-step37.pt", tmp_path / "state" / "model1-step74.pt")
    run_state.write_commit(tmp_path / "state" / "latest.json", {"step": 74})
    assert run_state.recover(tmp_path, 2, warn=said.append) == 37
    assert "model1-step74.pt is unreadable (it does not hold the state of update 74)" in said[1]


def test_a_run_that_has_committed_nothing_starts_fresh(tmp_path):
    write_states(tmp_path, [37])     # written, never committed
    assert run_state.recover(tmp_path, 2) is None and run_state.committed_step(tmp_path) is None
    assert run_state.recover(Path(tmp_path) / "elsewhere", 2) is None


def test_a_commit_records_the_sha256_of_each_of_its_files_and_keeps_the_replaced_ones(tmp_path):
    write_and_commit(tmp_path, [37, 74])
    state = tmp_path / "state"
    expected = {f"model{group}-step74.pt": hashlib.sha256((state / f"model{group}-step74.pt").read_bytes()).hexdigest()
                for group in (0, 1)}
    previous = run_state.read_record(state / "previous.json")
    assert run_state.read_record(state / "latest.json") == {"step": 74, "sha256": expected, "previous": previous}
    assert set(previous["sha256"]) == {"model0-step37.pt", "model1-step37.pt"} and previous["step"] == 37
    flip(state / "model0-step74.pt")
    said = []
    assert run_state.recover(tmp_path, 2, warn=said.append) == 37
    assert "model0-step74.pt is unreadable (its sha256 differs from the one committed" in said[0]
    # The rolled-back commit keeps its checksums: a later flip of its files is caught too.
    assert run_state.read_record(state / "latest.json") == run_state.read_record(state / "previous.json")


class Killed(BaseException):
    """What a kill does to the commit: nothing after the point it strikes runs."""


def commit_killed_at(monkeypatch, directory, step, point):
    """run_state.commit(directory, step) killed at its point-th write or deletion (os.replace: the
    atomic writes' renames; Path.unlink: the removal of old files). True when it finished before
    reaching that point."""
    calls = {"n": 0}

    def killing(function):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == point:
                raise Killed()
            return function(*args, **kwargs)
        return wrapped

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", killing(os.replace))
        patch.setattr(Path, "unlink", killing(Path.unlink))
        try:
            run_state.commit(directory, step)
            return True
        except Killed:
            return False


@pytest.mark.parametrize("committed", [[37], [37, 74]])
def test_a_kill_at_any_point_of_a_commit_leaves_a_fallback_for_a_damaged_newest_state(tmp_path, monkeypatch,
                                                                                     committed):
    """Whenever two steps have been committed, the newest one that a resume would take has an
    older committed step to fall back to, whatever point of the next commit a kill stops."""
    new = committed[-1] + 37
    points = []
    for point in range(1, 20):
        directory = tmp_path / str(point)
        write_and_commit(directory, committed)
        write_states(directory, [new])
        finished = commit_killed_at(monkeypatch, directory, new, point)
        state = directory / "state"
        newest = run_state.recover(directory, 2)
        assert newest in (committed[-1], new)
        points.append(newest)
        if newest > committed[0]:   # two steps committed: a damaged newest one must fall back
            flip(state / f"model1-step{newest}.pt")
            said = []
            fallback = run_state.recover(directory, 2, warn=said.append)
            assert fallback in committed and fallback < newest, (point, fallback)
            assert all(run_state.load_group_state(directory, group, fallback)["step"] == fallback
                       for group in (0, 1))
            assert f"model1-step{newest}.pt is unreadable" in said[0]
            assert said[0].endswith(f"resuming from the previous committed state, update {fallback}")
        if finished:
            break
    assert finished, "the commit was never let finish"
    assert points[0] == committed[-1] and points[-1] == new   # killed before its first write, and after all
