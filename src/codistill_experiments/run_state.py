"""Crash-safe run state: what a killed run needs to resume and finish exactly as if it had not
been interrupted.

At every evaluation each model group's leader writes `state/model<i>-step<s>.pt` (model, optimizer,
the Codistiller's state_dict (teachers of a checkpoint exchange), bit counters, RNG, elapsed time),
atomically; once every group has written, rank 0 commits the step in `state/latest.json`
(atomically) with the sha256 of each file and, inside the same record, the commit it replaces;
that one is then copied to `state/previous.json` (kept with its files until the next commit), and
older files are removed. The one atomic replace of `latest.json` names the new step and its
fallback together, so a kill at any point of a commit leaves two committed steps named when two
were committed. A resume reads only committed steps: the newest
whose record and every model's file load and match their checksums, saying so on stderr when it
has to fall back to the previous one (a file damaged after it was written, e.g. by a disk fault);
when neither is sound it stops with a message naming the file, deleting nothing. Everything loads
with `torch.load(weights_only=True)`.
"""
import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from codistill.internals import atomic_write_bytes

from . import file_lock

STATE_DIR = "state"
LATEST = "latest.json"
PREVIOUS = "previous.json"  # the commit latest.json replaced: a fallback
LOCK = "lock"
# Where a job's launcher names this process's rank: torchrun / plain sbatch, Slurm, submitit locally.
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID")


class RunInProgress(RuntimeError):
    pass


def is_leader_process():
    """True for the process that starts or leads a run (rank 0, or a launcher that spawns ranks)."""
    return all(os.environ.get(variable, "0") == "0" for variable in RANK_VARIABLES)


@contextlib.contextmanager
def run_lock(run_directory, wait_s=0.0, stale_s=file_lock.STALE_S):
    """Held by the leading process while a run trains, so that two sweeps holding the same job
    (figures sharing runs, launched at once) never train one run directory twice at the same
    time. The kernel drops the lock when its holder dies; on a shared file system that can take a
    while, so a requeued Slurm job waits up to wait_s (launcher.lock_wait_s) for its killed
    predecessor's lock to clear. Where the file system has no locks, a killed holder's lock is
    taken over once stale_s old (file_lock). Other ranks of the job do not lock."""
    if not is_leader_process():
        yield
        return
    Path(run_directory).mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(file_lock.exclusive_lock(Path(run_directory) / LOCK, wait_s, stale_s))
        except file_lock.LockBusy as busy:
            raise RunInProgress(f"run {Path(run_directory).name} is being trained by {busy.holder}; run this "
                                "again once it has finished (it will then be skipped)") from None
        yield


def save_torch(obj, path):
    atomic_write_bytes(path, lambda handle: torch.save(obj, handle))


def final_weights_path(run_directory, group):
    """Where a run leaves model `group`'s final weights (what two_phase's students distil from)."""
    return Path(run_directory) / f"model{group}.pt"


def group_state_path(run_directory, group, step):
    return Path(run_directory) / STATE_DIR / f"model{group}-step{step}.pt"


def save_group_state(run_directory, group, step, state):
    (Path(run_directory) / STATE_DIR).mkdir(parents=True, exist_ok=True)
    save_torch(state, group_state_path(run_directory, group, step))


def commit(run_directory, step):
    """Called by rank 0 once every group's state for `step` is on disk: records the step with the
    sha256 of each of its files (a file changed after it was written, e.g. flipped bits that
    torch.load would still accept, is then told from the one committed). The commit it replaces
    stays the fallback, with its files kept until the next commit, so that a damaged newest state
    has a committed step to fall back to.

    The order matters to a kill between two writes: `latest.json` is replaced first and holds the
    replaced commit too, so that until `previous.json` is rewritten the older fallback it names
    (and that one's files) is still there; writing `previous.json` first would let both files
    name the same step, with no fallback left."""
    directory = Path(run_directory) / STATE_DIR
    replaced = read_record(directory / LATEST)
    if replaced is not None and replaced["step"] != step:
        fallback = flat(replaced)
    else:   # the same step committed again: its fallback stays the one it had
        fallback = (replaced or {}).get("previous") or read_record(directory / PREVIOUS)
    digests = {path.name: sha256(path) for path in sorted(directory.glob(f"model*-step{step}.pt"))}
    record = {"step": step, "sha256": digests}
    if fallback is not None and fallback["step"] != step:
        record["previous"] = flat(fallback)
    write_commit(directory / LATEST, record)
    if "previous" in record:
        write_commit(directory / PREVIOUS, record["previous"])
    kept = {step, record["previous"]["step"] if "previous" in record else None}
    for path in directory.glob("model*-step*.pt"):
        if step_of(path) not in kept:
            path.unlink(missing_ok=True)


def flat(record):
    """A commit record without the fallback a `latest.json` record holds: one level only."""
    return {key: value for key, value in record.items() if key != "previous"}


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def step_of(path):
    return int(path.stem.rsplit("-step", 1)[1])


def write_commit(path, record):
    """record: {"step": s, "sha256": {file name: hex digest}} (a commit record)."""
    atomic_write_bytes(path, lambda handle: handle.write(json.dumps(record).encode()))


def read_record(path):
    """A commit record ({"step", "sha256"}; "sha256" absent in runs committed before checksums;
    a `latest.json` record also holds the commit it replaced under "previous", a record of the
    same kind); None when there is none or it cannot be read."""
    try:
        record = json.loads(Path(path).read_text())
        record = {**record, "step": int(record["step"])}
        if "previous" in record:
            record["previous"] = {**record["previous"], "step": int(record["previous"]["step"])}
        return record
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_commit(path):
    """The step a commit record names; None when there is none or it cannot be read."""
    record = read_record(path)
    return None if record is None else record["step"]


class StateUnreadable(RuntimeError):
    """No committed state of the run can be read: resuming is impossible."""


def committed_step(run_directory):
    """The newest committed step, None for a run that has committed nothing. Reads only the
    commit record (`recover` also checks the files, and repairs a damaged record)."""
    path = Path(run_directory) / STATE_DIR / LATEST
    if not path.exists():
        return None
    step = read_commit(path)
    if step is None:
        raise StateUnreadable(f"{path} is unreadable: rerun the same command, which falls back to the previous "
                              "committed state, or delete the run's state folder to restart it")
    return step


def load_group_state(run_directory, group, step):
    """A saved group state, every tensor on the CPU whatever device the run trains on: some of
    its consumers take CPU tensors only (torch.set_rng_state, numpy), and the engine's `restore`
    moves what belongs on the device there."""
    return torch.load(group_state_path(run_directory, group, step), map_location="cpu", weights_only=True)


def codistiller_state(saved, exchange_key):
    """The Codistiller.state_dict() a saved state holds under "codistiller" (the vision engine's
    group state, the fairseq task's state file). A state saved before (up to commit 43af836) kept
    the exchange's state under `exchange_key` ("teachers", "exchange") and the bits beside it: it
    is read as the state_dict those make, so a run interrupted then resumes as it would have."""
    if "codistiller" in saved:
        return saved["codistiller"]
    return {"exchange": saved[exchange_key], "inter_node_bits": saved["inter_node_bits"],
            "intra_node_bits": saved["intra_node_bits"]}


def unreadable_file(run_directory, record, groups):
    """(path, why) of the first of the committed step's group states that does not load or whose
    sha256 is not the one committed; None when all are sound. record: the commit record; groups:
    the model groups whose states the directory holds."""
    step, digests = record["step"], record.get("sha256")
    for group in groups:
        path = group_state_path(run_directory, group, step)
        if digests is not None and path.exists() and digests.get(path.name) != sha256(path):
            return path, "its sha256 differs from the one committed: it changed after it was written"
        try:
            saved = load_group_state(run_directory, group, step)
        except Exception as error:  # a truncated zip, a missing file, a refused object: all unreadable
            return path, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if not (isinstance(saved, dict) and saved.get("step") == step):
            return path, f"it does not hold the state of update {step}"
    return None


def recover(run_directory, n_groups, warn=None, groups=None):
    """The committed step a run resumes from (None: nothing was committed, a fresh start), after
    checking that its record and each of the n_groups files (or those of `groups`: a model job's
    directory holds its own model's) load and match their committed sha256. A damaged newest commit is rolled
    back to the previous one (`latest.json` rewritten,
    so every rank reads the same step), reported through warn(text); when nothing sound is left,
    raises StateUnreadable naming the file and what to do (nothing is deleted). Run by the run's
    leading process before any rank starts."""
    directory = Path(run_directory) / STATE_DIR
    latest, previous = directory / LATEST, directory / PREVIOUS
    if not latest.exists() and not previous.exists():
        return None
    newest, before = read_record(latest), read_record(previous)
    problems = [(path, "not a commit record (truncated?)" if path.exists() else "missing")
                for path, record in ((latest, newest), (previous, before))
                if record is None and (path == latest or path.exists())]
    # The newest first, then the older ones newest first: the fallback `latest.json` holds, and
    # `previous.json` (which names an older one still when a commit was killed before rewriting it).
    older = [record for record in ((newest or {}).get("previous"), before) if record is not None]
    candidates = {record["step"]: flat(record) for record in sorted(older, key=lambda record: record["step"])}
    candidates = [*([newest] if newest is not None else []),
                  *(candidates[step] for step in sorted(candidates, reverse=True)
                    if newest is None or step != newest["step"])]
    for index, record in enumerate(candidates):
        damaged = unreadable_file(run_directory, record, range(n_groups) if groups is None else groups)
        if damaged is None:
            if record is not newest:
                _report_fallback(problems, record["step"], warn)
                # Rolled back so every rank reads the same step; an older sound candidate stays
                # its fallback.
                rest = [other for other in candidates[index + 1:] if other["step"] < record["step"]]
                write_commit(latest, {**record, **({"previous": rest[0]} if rest else {})})
            return record["step"]
        problems.append(damaged)
    raise StateUnreadable(_nothing_readable(run_directory, problems))


def _report_fallback(problems, step, warn):
    said = "; ".join(f"{path} is unreadable ({why})" for path, why in problems)
    (warn or _stderr)(f"warning: {said}: resuming from the previous committed state, update {step}")


def _nothing_readable(run_directory, problems):
    said = "; ".join(f"{path} is unreadable ({why})" for path, why in problems)
    state = Path(run_directory) / STATE_DIR
    return (f"the run's saved state cannot be read: {said}. No earlier committed state is left to resume "
            f"from. Delete {state} to restart this run from the beginning (rerun the same command), or "
            "restore the file from a backup.")


def _stderr(text):
    print(text, file=sys.stderr, flush=True)
