"""Checkpoint exchange between codistilled models through a shared file system.

Every T updates each model writes its parameters to `<root>/model<i>/step<s>.pt`, atomically
(a temporary file beside it, fsynced, then renamed: a reader sees the old set of snapshots or the
new one, never a file being written, even when the writer is killed mid-write). At its exchange
points a model reads its peers' snapshots:
- lock-step: the peers' snapshot of step floor(s/T)*T exactly, waiting for it (up to a timeout)
  if a peer is behind, so a run is reproducible whatever the processes' speeds;
- asynchronous: whatever snapshot of each peer is newest (Anil et al. 2018), never waiting: a peer
  that has published nothing yet is absent (no teacher), a peer that stopped publishing is kept as
  its last snapshot (its age grows; the reader logs it).
Snapshots hold tensors only and load with `torch.load(weights_only=True)`. A snapshot that does not
load (damaged on disk) is skipped with a warning naming it: the reader keeps what it holds.
"""
import json
import sys
import time
from pathlib import Path

import torch

from .exchange import tensor_bits
from .choices import SNAPSHOT_MODES as MODES
from .atomic_write import atomic_write_bytes


class SnapshotTimeout(RuntimeError):
    """A lock-step reader waited longer than its timeout for a peer's snapshot (the peer may
    have died or be far behind), or the snapshot was removed before it was read."""


class DamagedSnapshot(RuntimeError):
    """A snapshot file that exists but does not load."""


def snapshot_bits(tensors):
    """Bits of a snapshot ({name: tensor}): what reading it moves between nodes."""
    return sum(tensor_bits(tensor) for tensor in tensors.values())


class SnapshotStore:
    """The snapshots of every model under `root`: `<root>/model<i>/step<s>.pt`, each written
    atomically (publish) and read by load, wait_for (lock-step) or newest (async). poll_s: how often
    a waiting reader looks again; report_every_s: how often it prints that it still waits."""

    def __init__(self, root, poll_s=0.02, report_every_s=60.0):
        self.root, self.poll_s, self.report_every_s = Path(root), poll_s, report_every_s

    def folder(self, model):
        """The folder of model `model`'s snapshots: <root>/model<model>."""
        return self.root / f"model{model}"

    def path(self, model, step):
        """The file of model `model`'s snapshot after `step` updates (whether or not it exists)."""
        return self.folder(model) / f"step{step}.pt"

    def publish(self, model, step, tensors):
        """Writes model `model`'s parameters after `step` updates (CPU copies)."""
        self.folder(model).mkdir(parents=True, exist_ok=True)
        cpu = {name: tensor.detach().to("cpu", copy=True) for name, tensor in tensors.items()}
        atomic_write_bytes(self.path(model, step), lambda handle: torch.save(cpu, handle))

    def steps(self, model):
        """Steps of the complete snapshots of `model`, ascending (temporary files are not listed)."""
        found = []
        for path in self.folder(model).glob("step*.pt"):
            try:
                found.append(int(path.stem[len("step"):]))
            except ValueError:
                continue
        return sorted(found)

    def load(self, model, step):
        """Model `model`'s snapshot of `step`. Raises FileNotFoundError when it is not (or no
        longer) there, DamagedSnapshot when it is there but does not load."""
        path = self.path(model, step)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as error:  # a truncated zip, flipped bits, a foreign object: all unreadable
            raise DamagedSnapshot(f"{path} does not load ({type(error).__name__}: "
                                  f"{str(error).splitlines()[0] if str(error) else ''})") from error

    def _wait(self, what, ready, timeout_s, mode_hint):
        started = last_report = time.monotonic()
        while True:
            result = ready()
            if result is not None:
                return result
            now = time.monotonic()
            if now - started > timeout_s:
                raise SnapshotTimeout(
                    f"waited {timeout_s:g} s for {what} ({mode_hint}; its timeout is method.snapshot_timeout_s, "
                    "workload.exchange_timeout_s for translation). The peer may "
                    "have died or be far behind: see its log in the run directory; rerunning the same command "
                    "resumes each model from its last saved state")
            if now - last_report > self.report_every_s:
                print(f"still waiting for {what} ({now - started:.0f} s)", flush=True)
                last_report = now
            time.sleep(self.poll_s)

    def wait_for(self, model, step, timeout_s):
        """Lock-step: model `model`'s snapshot of exactly `step`, once it exists."""
        path = self.path(model, step)

        def ready():
            if not path.exists():
                return None
            try:
                return self.load(model, step)
            except FileNotFoundError:  # pruned between the check and the read: it cannot come back
                raise SnapshotTimeout(f"model {model}'s snapshot of update {step} was removed before it was read")

        return self._wait(f"model {model}'s snapshot of update {step} ({path})", ready, timeout_s,
                          "lock-step exchange")

    def newest_step(self, model):
        """The step of model `model`'s newest complete snapshot (None: none yet)."""
        steps = self.steps(model)
        return steps[-1] if steps else None

    def newest(self, model, newer_than=-1, skip=()):
        """Asynchronous: (step, tensors) of model `model`'s newest complete snapshot of a step >
        newer_than, or None. Steps in `skip` are not read; a damaged one raises DamagedSnapshot
        (with its step as `.step`), so that the caller can warn and skip it."""
        for step in reversed(self.steps(model)):
            if step <= newer_than:
                return None
            if step in skip:
                continue
            try:
                return step, self.load(model, step)
            except FileNotFoundError:  # pruned meanwhile: take the next newest
                continue
            except DamagedSnapshot as damaged:
                damaged.step = step
                raise
        return None

    def prune(self, model, older_than):
        """Removes model `model`'s snapshots of steps < older_than (no peer can need them)."""
        for step in self.steps(model):
            if step < older_than:
                self.path(model, step).unlink(missing_ok=True)

    def prune_unneeded(self, model, n_models, period):
        """Removes model `model`'s snapshots that no peer can need any more: a peer restarts at
        its last checkpoint c at the earliest (mark_checkpointed) and then reads steps from
        floor(c/T)*T on."""
        oldest_resume = min(self.checkpointed(other) for other in range(n_models))
        self.prune(model, oldest_resume // period * period)

    def mark_checkpointed(self, model, step):
        """Records that model `model` has a durable fairseq checkpoint at `step`: a resumed run
        restarts there, so its peers keep their snapshots from floor(step/T)*T on."""
        self.folder(model).mkdir(parents=True, exist_ok=True)
        text = json.dumps({"step": step}).encode()
        atomic_write_bytes(self.folder(model) / "checkpointed.json", lambda handle: handle.write(text))

    def checkpointed(self, model):
        """The step mark_checkpointed recorded for model `model` (0: none)."""
        path = self.folder(model) / "checkpointed.json"
        try:
            return json.loads(path.read_text())["step"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return 0


class PeerReader:
    """Which snapshot of each peer a model uses at update s, read from the store when it changes.

    lock-step: the peers' snapshot of step floor(s/T)*T, waiting for it;
    async: at every exchange point s = kT (and at the first refresh, e.g. after a resume) each
    peer's newest snapshot if it is newer than the one held; a peer with none yet is absent.
    `steps[slot]` is the step of the snapshot held for peer `peers[slot]` (None: absent). After a
    resume, `resume` marks the steps held before the interruption: reading them again is not new
    traffic. A damaged snapshot is skipped once, with a warning naming it (`warn`, default
    stderr), and the teacher held is kept.
    """

    def __init__(self, store, peers, period, mode, timeout_s, warn=None):
        if mode not in MODES:
            raise ValueError(f"exchange mode {mode!r} is not one of {MODES}")
        self.store, self.peers, self.period, self.mode, self.timeout_s = store, peers, period, mode, timeout_s
        self.steps = [None] * len(peers)
        self.held_before_resume = [None] * len(peers)
        self.damaged = set()   # (peer, step) of snapshots found damaged: never read again
        self.warn = warn or _stderr
        self.refreshed = False

    def resume(self, steps):
        """Marks the snapshot steps the interrupted run held, per slot: reading them again is
        not counted as new traffic."""
        self.held_before_resume = list(steps)

    def refresh(self, step):
        """Yields (slot, snapshot step, tensors, counted) for every peer whose snapshot changes at
        update `step`; `counted` is False for a re-read of what the interrupted run already held."""
        for slot, peer in enumerate(self.peers):
            try:
                found = self._read(slot, peer, step)
            except DamagedSnapshot as damaged:
                self.damaged.add((peer, damaged.step))
                held = self.steps[slot]
                self.warn(f"warning: skipped model {peer}'s snapshot of update {damaged.step}: {damaged}; "
                          f"{'its snapshot of update ' + str(held) if held is not None else 'no teacher'} "
                          f"stands in for it")
                continue
            if found is not None:
                source, tensors = found
                counted = source != self.held_before_resume[slot]
                self.held_before_resume[slot] = None
                self.steps[slot] = source
                yield slot, source, tensors, counted
        self.refreshed = True

    def _read(self, slot, peer, step):
        held = self.steps[slot]
        if self.mode == "lockstep":
            source = step // self.period * self.period
            if held == source or (peer, source) in self.damaged:
                return None
            try:
                return source, self.store.wait_for(peer, source, self.timeout_s)
            except DamagedSnapshot as damaged:
                damaged.step = source
                raise
        if step % self.period == 0 or not self.refreshed:
            return self.store.newest(peer, newer_than=-1 if held is None else held,
                                     skip={s for p, s in self.damaged if p == peer})
        return None


def _stderr(text):
    print(text, file=sys.stderr, flush=True)
