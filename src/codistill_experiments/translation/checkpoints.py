"""A translation model's resume state checked before it is resumed, as the vision path checks its
committed state (run_state): fairseq's `checkpoint_last.pt` is recorded with its sha256, and a
file that no longer matches (flipped bits that torch.load would still accept) is never resumed
from.

fairseq writes a save's first file atomically (checkpoint_<epoch>_<update>.pt, checkpoint_best.pt
or checkpoint_last.pt), then copies it to the others. The plugin's task records
`model<i>/checkpoint_last.json` ({"step", "sha256"}) at the first update after a save, once
fairseq has finished it. Before a model is started again, its checkpoint_last.pt is checked
against that record: a damaged one is restored from an intact copy of the same update (one of the
others, whose sha256 is the recorded one), or, with none left, the run stops naming the file and
what to do. A checkpoint saved after the record (a kill between a save and the next update) holds
a later update than the recorded one and is resumed unchecked: nothing recorded its bytes yet.
"""
import json
import shutil
import zipfile
from pathlib import Path

from codistill.internals import atomic_write_bytes

from ..run_state import StateUnreadable, sha256
from .processes import FairseqFailed

LAST, BEST = "checkpoint_last.pt", "checkpoint_best.pt"
RECORD = "checkpoint_last.json"


class CheckpointUnreadable(FairseqFailed, StateUnreadable):
    """A model's checkpoint cannot be resumed from and no intact copy is left (src/run.py says so
    as it says it of a vision run's state; a job's rank fails with it as with fairseq's errors)."""


def record_checkpoint(folder, step):
    """Records the sha256 of `folder`'s checkpoint_last.pt, the one saved at update `step`."""
    last = Path(folder) / LAST
    if not last.exists():   # fairseq run with --no-last-checkpoints: nothing to resume from
        return
    text = json.dumps({"step": int(step), "sha256": sha256(last)}).encode()
    atomic_write_bytes(Path(folder) / RECORD, lambda handle: handle.write(text))


def read_record(folder):
    try:
        record = json.loads((Path(folder) / RECORD).read_text())
        return {"step": int(record["step"]), "sha256": str(record["sha256"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def repair_torn_checkpoint(folder):
    """fairseq writes the first file of a save atomically (checkpoint_best.pt when the model improved)
    and copies it to the others, checkpoint_last.pt included, with a plain copy: a kill during that
    copy leaves a torn checkpoint_last.pt beside a complete checkpoint_best.pt of the same update.
    Put the complete one back (torch checkpoints are zip files: a torn one lacks its directory)."""
    last, best = Path(folder) / LAST, Path(folder) / BEST
    if not last.exists() or zipfile.is_zipfile(last):
        return
    if not (best.exists() and zipfile.is_zipfile(best)):
        raise FairseqFailed(f"{last} is incomplete (its writer was killed) and there is no complete copy; remove "
                            f"{folder} to train that model again from the start")
    restore(last, best)
    print(f"{last} was torn by a kill during fairseq's copy; restored it from {best.name} (same update)", flush=True)


def restore(last, source):
    """Copies `source` over `last` atomically: a reader sees the old file or the whole copy."""
    with open(source, "rb") as complete:
        atomic_write_bytes(last, lambda handle: shutil.copyfileobj(complete, handle))


def checkpoint_step(path):
    """The update a fairseq checkpoint holds (fairseq pickles its config: not weights_only)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return int(state["optimizer_history"][-1]["num_updates"])


def resume_step(folder, warn):
    """The update model `folder`'s checkpoint_last.pt resumes from (None: no checkpoint, a fresh
    start), after the checks above; a restore from a copy is reported through warn(text). Raises
    CheckpointUnreadable naming the file when it cannot be resumed from; nothing is deleted."""
    folder = Path(folder)
    repair_torn_checkpoint(folder)
    last = folder / LAST
    if not last.exists():
        return None
    record = read_record(folder)
    if record is not None and sha256(last) == record["sha256"]:
        return record["step"]
    try:
        step = checkpoint_step(last)
    except Exception as error:   # a refused or truncated pickle, a damaged zip: unreadable
        step, why = None, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    if record is None and step is not None:   # nothing recorded yet: nothing to check it against
        return step
    if record is not None and step is not None:
        if step > record["step"]:   # saved after the record, killed before the next update
            return step
        why = f"its sha256 differs from the one recorded at update {record['step']}: it changed after it was written"
    for copy in sorted(folder.glob("checkpoint*.pt")):
        if copy != last and record is not None and sha256(copy) == record["sha256"]:
            restore(last, copy)
            warn(f"warning: {last} is unreadable ({why}): restored it from {copy.name}, the same update "
                 f"{record['step']}, and resuming from there")
            return record["step"]
    raise CheckpointUnreadable(
        f"the model's saved state cannot be read: {last} is unreadable ({why}), and no intact copy of it is left. "
        f"Delete {folder} to train that model again from the start (rerun the same command), or restore the file "
        "from a backup.")
