"""Crash-safe run state: what a killed run needs to resume and finish exactly as if it had not
been interrupted.

At every evaluation each model group's leader writes `state/model<i>-step<s>.pt` (model, optimizer,
teachers of a checkpoint exchange, bit counters, RNG, elapsed time), atomically; once every group
has written, rank 0 commits the step in `state/latest.json` (atomically) and removes older files.
A resume reads only committed steps. Everything loads with `torch.load(weights_only=True)`.
"""
import json
from pathlib import Path

import torch

from .runlog import atomic_write_bytes

STATE_DIR = "state"
LATEST = "latest.json"


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
