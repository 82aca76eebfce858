"""The run lock and the merge lock of model jobs where the file system has no flock (Lustre mounted
without -o flock, some NFS set-ups): fcntl.flock raises ENOSYS, ENOLCK or EOPNOTSUPP there, as it is
made to here, and for the last resort (an O_EXCL lock file kept fresh by its holder) fcntl.lockf
too. Holders and waiters are separate processes, as two jobs of one run are."""
import errno
import fcntl
import multiprocessing
import os
import signal
import time

import pytest

from codistill_experiments import model_jobs, run_state
from codistill_experiments.run_state import RunInProgress

FORK = multiprocessing.get_context("fork")
# The age at which the last resort takes over a lock left by a killed holder (60 s in runs).
STALE_S = 2.0


@pytest.fixture
def refuse(monkeypatch):
    """refuse(error number, *names): these fcntl calls raise OSError(error number), as on a file
    system without them; this process is the leading process of its run (it takes the run lock)."""
    for variable in run_state.RANK_VARIABLES:
        monkeypatch.delenv(variable, raising=False)

    def apply(number, *names):
        def refused(*args, **kwargs):
            raise OSError(number, os.strerror(number))

        for name in names:
            monkeypatch.setattr(fcntl, name, refused)

    return apply


def run_lock(run_directory, wait_s=0.0, stale_s=None):
    """run_state.run_lock as runs call it, with a staleness age only where a test needs a short one."""
    stale = {} if stale_s is None else {"stale_s": stale_s}
    return run_state.run_lock(run_directory, wait_s, **stale)


def _hold_run_lock(run_directory, taken, stale_s):
    with run_lock(run_directory, stale_s=stale_s):
        taken.set()
        time.sleep(600)


def start_holder(run_directory, stale_s=None):
    """A process holding run_directory's run lock until it is killed."""
    taken = FORK.Event()
    holder = FORK.Process(target=_hold_run_lock, args=(run_directory, taken, stale_s), daemon=True)
    holder.start()
    while not taken.wait(0.05):
        assert holder.is_alive(), f"the holder failed to take the run lock (exit code {holder.exitcode})"
    return holder


def try_run_lock(run_directory, wait_s=0.0, stale_s=None):
    """What the run lock's file says while this process holds it."""
    with run_lock(run_directory, wait_s, stale_s):
        return (run_directory / run_state.LOCK).read_text()


@pytest.mark.parametrize("number", [errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP])
def test_without_flock_the_run_lock_refuses_a_second_holder_naming_the_first(tmp_path, refuse, number):
    refuse(number, "flock")
    holder = start_holder(tmp_path)
    try:
        with pytest.raises(RunInProgress, match=f"is being trained by host .* pid {holder.pid}\\b"):
            try_run_lock(tmp_path)
    finally:
        holder.kill()
        holder.join()
    assert f"pid {os.getpid()}\n" in try_run_lock(tmp_path)   # the lock went with its holder


@pytest.mark.slow
def test_without_flock_and_lockf_a_killed_holders_lock_is_taken_over_once_stale(tmp_path, refuse):
    refuse(errno.ENOSYS, "flock", "lockf")
    assert f"pid {os.getpid()}\n" in try_run_lock(tmp_path)
    assert list(tmp_path.iterdir()) == [tmp_path / run_state.LOCK]   # released: its lock file removed
    holder = start_holder(tmp_path, STALE_S)
    try:
        time.sleep(1.5 * STALE_S)   # older than STALE_S, yet its holder keeps it fresh
        with pytest.raises(RunInProgress, match=f"pid {holder.pid}\\b"):
            try_run_lock(tmp_path, stale_s=STALE_S)
    finally:
        os.kill(holder.pid, signal.SIGKILL)   # it cannot remove its lock file
        holder.join()
    killed = time.monotonic()
    with pytest.raises(RunInProgress, match=f"pid {holder.pid}\\b"):   # not stale yet
        try_run_lock(tmp_path, stale_s=STALE_S)
    assert f"pid {os.getpid()}\n" in try_run_lock(tmp_path, wait_s=5 * STALE_S, stale_s=STALE_S)
    # Not before it was stale: its holder had touched it shortly before the kill.
    assert time.monotonic() - killed >= STALE_S / 2
    assert list(tmp_path.iterdir()) == [tmp_path / run_state.LOCK]


def _merge_and_note(run_directory, journal, go):
    go.wait()
    with model_jobs._merge_lock(run_directory):
        for event in ("in", "out"):
            with open(journal, "a") as handle:
                handle.write(f"{event} {os.getpid()}\n")
            time.sleep(0.5 if event == "in" else 0)


@pytest.mark.slow
@pytest.mark.parametrize("refused", [("flock",), ("flock", "lockf")])
def test_without_flock_the_merge_lock_serialises_two_model_jobs(tmp_path, refuse, refused):
    refuse(errno.ENOSYS, *refused)
    journal, go = tmp_path / "journal", FORK.Event()
    jobs = [FORK.Process(target=_merge_and_note, args=(tmp_path, journal, go)) for _ in range(2)]
    for job in jobs:
        job.start()
    go.set()
    for job in jobs:
        job.join(60)
    assert [job.exitcode for job in jobs] == [0, 0]
    events = [line.split() for line in journal.read_text().splitlines()]
    # Each job's "in" is followed by its own "out" before the other's "in".
    assert [event for event, _ in events] == ["in", "out", "in", "out"]
    assert events[0][1] == events[1][1] != events[2][1] == events[3][1]
