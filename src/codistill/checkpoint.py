"""Crash-safe run state: what a killed run needs to resume and finish exactly as if it had not
been interrupted.

At every evaluation each model group's leader writes `state/model<i>-step<s>.pt` (model, optimizer,
teachers of a checkpoint exchange, bit counters, RNG, elapsed time), atomically; once every group
has written, rank 0 commits the step in `state/latest.json` (atomically) and removes older files.
A resume reads only committed steps. Everything loads with `torch.load(weights_only=True)`.
"""
import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

import torch

from .runlog import atomic_write_bytes

STATE_DIR = "state"
LATEST = "latest.json"
LOCK = "lock"
# Where a job's launcher names this process's rank: torchrun / plain sbatch, Slurm, submitit locally.
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID")


class RunInProgress(RuntimeError):
    pass


def is_leader_process():
    """True for the process that starts or leads a run (rank 0, or a launcher that spawns ranks)."""
    return all(os.environ.get(variable, "0") == "0" for variable in RANK_VARIABLES)


@contextlib.contextmanager
def run_lock(run_directory, wait_s=0.0):
    """Held by the leading process while a run trains, so that two sweeps holding the same job
    (figures sharing runs, launched at once) never train one run directory twice at the same
    time. The kernel drops the lock when its holder dies; on a shared file system that can take a
    while, so a requeued Slurm job waits up to wait_s (launcher.lock_wait_s) for its killed
    predecessor's lock to clear. Other ranks of the job do not lock."""
    if not is_leader_process():
        yield
        return
    Path(run_directory).mkdir(parents=True, exist_ok=True)
    path = Path(run_directory) / LOCK
    with open(path, "a+") as handle:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise RunInProgress(f"run {Path(run_directory).name} is being trained by {holder}; run this "
                                        "again once it has finished (it will then be skipped)") from None
                time.sleep(1.0)
        handle.seek(0)
        handle.truncate()
        handle.write(f"host {socket.gethostname()} pid {os.getpid()}"
                     f"{' slurm job ' + os.environ['SLURM_JOB_ID'] if 'SLURM_JOB_ID' in os.environ else ''}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_torch(obj, path):
    atomic_write_bytes(path, lambda handle: torch.save(obj, handle))


def group_state_path(run_directory, group, step):
    return Path(run_directory) / STATE_DIR / f"model{group}-step{step}.pt"


def save_group_state(run_directory, group, step, state):
    (Path(run_directory) / STATE_DIR).mkdir(parents=True, exist_ok=True)
    save_torch(state, group_state_path(run_directory, group, step))


def commit(run_directory, step):
    """Called by rank 0 once every group's state for `step` is on disk."""
    directory = Path(run_directory) / STATE_DIR
    atomic_write_bytes(directory / LATEST, lambda handle: handle.write(json.dumps({"step": step}).encode()))
    for path in directory.glob("model*-step*.pt"):
        if int(path.stem.rsplit("-step", 1)[1]) != step:
            path.unlink(missing_ok=True)


def committed_step(run_directory):
    path = Path(run_directory) / STATE_DIR / LATEST
    if not path.exists():
        return None
    return json.loads(path.read_text())["step"]


def load_group_state(run_directory, group, step, device):
    return torch.load(group_state_path(run_directory, group, step), map_location=device, weights_only=True)
