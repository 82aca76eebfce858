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

Models that are separate jobs of a queue do not start together. Each model's leader marks every
attempt it makes (mark_started: `<root>/model<i>/started.json`, a fresh attempt id); a store built
with `start_timeout_s` counts a lock-step wait against the reader's timeout only from when it first
sees the peer's current attempt (restarting when the attempt changes), and waits up to
start_timeout_s for a peer that has marked none, then stops naming that cause.
"""
import json
import sys
import time
import uuid
from pathlib import Path

import torch

from .atomic_write import atomic_write_bytes
from .choices import SNAPSHOT_MODES as MODES
from .counting import tensor_bits


class SnapshotTimeout(RuntimeError):
    """A lock-step reader waited longer than its timeout for a peer's snapshot (the peer may
    have died or be far behind), or the snapshot was removed before it was read."""


class DamagedSnapshot(RuntimeError):
    """A snapshot file that exists but does not load."""


class StillWaiting(Exception):
    """A lock-step wait given `within_s` (one slice of a longer wait) ended without the snapshot
    and before its timeout: call again with the same clock to wait on."""


class WaitClock:
    """How long a lock-step reader has waited for one snapshot, kept across the slices of a wait
    (a model of several ranks waits in slices, so that its other ranks' collective never outlives
    its process group's timeout: file_exchange.FileCheckpointExchange)."""

    def __init__(self):
        self.began = self.counting_since = self.last_report = time.monotonic()
        self.attempt = None   # the peer's started marker last seen (stores with start_timeout_s)


def snapshot_bits(tensors):
    """Bits of a snapshot ({name: tensor}): what reading it moves between nodes."""
    return sum(tensor_bits(tensor) for tensor in tensors.values())


class SnapshotStore:
    """The snapshots of every model under `root`: `<root>/model<i>/step<s>.pt`, each written
    atomically (publish) and read by load, wait_for (lock-step) or newest (async). poll_s: how often
    a waiting reader looks again; report_every_s: how often it prints that it still waits.
    start_timeout_s (None: off): a lock-step wait's timeout counts from when the reader first sees
    the peer's current started marker (mark_started), and a peer without one is waited for up to
    start_timeout_s: for models whose jobs a queue starts at different times."""

    def __init__(self, root, poll_s=0.02, report_every_s=60.0, start_timeout_s=None):
        self.root, self.poll_s, self.report_every_s = Path(root), poll_s, report_every_s
        self.start_timeout_s = start_timeout_s

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

    def mark_started(self, model, attempt=None):
        """Records that model `model` has started an attempt (a fresh id unless given); returns it.
        Its peers' lock-step waits count from when they first see it (start_timeout_s)."""
        attempt = attempt or uuid.uuid4().hex
        self.folder(model).mkdir(parents=True, exist_ok=True)
        text = json.dumps({"attempt": attempt, "time": time.time()}).encode()
        atomic_write_bytes(self.started_path(model), lambda handle: handle.write(text))
        return attempt

    def started_path(self, model):
        """The file of model `model`'s started marker: <root>/model<model>/started.json."""
        return self.folder(model) / "started.json"

    def started(self, model):
        """The id of model `model`'s newest attempt (mark_started), None when it has marked none."""
        try:
            return json.loads(self.started_path(model).read_text())["attempt"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return None

    def _wait(self, model, what, ready, timeout_s, mode_hint, clock=None, within_s=None):
        clock = WaitClock() if clock is None else clock
        slice_began = time.monotonic()
        while True:
            result = ready()
            if result is not None:
                return result
            now = time.monotonic()
            self._check_clock(model, what, clock, now, timeout_s, mode_hint)
            if now - clock.last_report > self.report_every_s:
                print(f"still waiting for {what} ({now - clock.began:.0f} s)", flush=True)
                clock.last_report = now
            if within_s is not None and now - slice_began >= within_s:
                raise StillWaiting(what)
            time.sleep(self.poll_s)

    def _check_clock(self, model, what, clock, now, timeout_s, mode_hint):
        """Raises SnapshotTimeout once the wait has lasted too long: timeout_s from its start, or,
        with start_timeout_s, from when the peer's current attempt was first seen (start_timeout_s
        while the peer has marked no attempt)."""
        if self.start_timeout_s is not None:
            attempt = self.started(model)
            if attempt != clock.attempt:   # the peer (re)started: it is given the whole timeout again
                clock.attempt, clock.counting_since = attempt, now
            if attempt is None:
                if now - clock.began > self.start_timeout_s:
                    raise SnapshotTimeout(
                        f"model {model} has not started: no attempt marked in {self.started_path(model)} after "
                        f"{now - clock.began:.0f} s of waiting for {what} (the bound for a peer that never starts "
                        f"is method.peer_start_timeout_s, {self.start_timeout_s:g} s). Its job may still be queued "
                        "or have failed before it started: see the queue and its log; rerunning the same command "
                        "resumes each model from its last saved state")
                return
        if now - clock.counting_since > timeout_s:
            since = "" if self.start_timeout_s is None else " since it started"
            raise SnapshotTimeout(
                f"waited {timeout_s:g} s for {what}{since} ({mode_hint}; its timeout is method.snapshot_timeout_s, "
                "workload.exchange_timeout_s for translation). The peer may "
                "have died or be far behind: see its log in the run directory; rerunning the same command "
                "resumes each model from its last saved state")

    def wait_for(self, model, step, timeout_s, clock=None, within_s=None):
        """Lock-step: model `model`'s snapshot of exactly `step`, once it exists. clock (a
        WaitClock) and within_s: wait at most within_s now (StillWaiting), the timeout counted on
        `clock` across calls."""
        path = self.path(model, step)

        def ready():
            if not path.exists():
                return None
            try:
                return self.load(model, step)
            except FileNotFoundError:  # pruned between the check and the read: it cannot come back
                raise SnapshotTimeout(f"model {model}'s snapshot of update {step} was removed before it was read") from None

        return self._wait(model, f"model {model}'s snapshot of update {step} ({path})", ready, timeout_s,
                          "lock-step exchange", clock, within_s)

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
        self.clocks = {}   # (peer, step) -> WaitClock of a lock-step wait in progress

    def resume(self, steps):
        """Marks the snapshot steps the interrupted run held, per slot: reading them again is
        not counted as new traffic."""
        self.held_before_resume = list(steps)

    def refresh(self, step, within_s=None):
        """Yields (slot, snapshot step, tensors, counted) for every peer whose snapshot changes at
        update `step`; `counted` is False for a re-read of what the interrupted run already held.
        within_s: a lock-step wait lasts at most that long now, then raises StillWaiting; a
        refresh of the same step again goes on with the peers not read yet, the wait's clock kept."""
        for slot, peer in enumerate(self.peers):
            try:
                found = self._read(slot, peer, step, within_s)
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

    def _read(self, slot, peer, step, within_s=None):
        held = self.steps[slot]
        if self.mode == "lockstep":
            source = step // self.period * self.period
            if held == source or (peer, source) in self.damaged:
                return None
            clock = self.clocks.setdefault((peer, source), WaitClock())
            try:
                found = source, self.store.wait_for(peer, source, self.timeout_s, clock, within_s)
            except DamagedSnapshot as damaged:
                self.clocks.pop((peer, source), None)
                damaged.step = source
                raise
            self.clocks.pop((peer, source), None)
            return found
        if step % self.period == 0 or not self.refreshed:
            return self.store.newest(peer, newer_than=-1 if held is None else held,
                                     skip={s for p, s in self.damaged if p == peer})
        return None


def _stderr(text):
    print(text, file=sys.stderr, flush=True)
