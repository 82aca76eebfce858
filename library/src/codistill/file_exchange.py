"""Checkpoint exchange through a shared file system, with the interface of checkpoints.py's
checkpoint exchanges (publish, refresh, teachers, held_steps, state_dict): for model groups that share no process
group (separate jobs, or machines that share only storage). The snapshots and the choice of which
one to read are snapshots.py's (SnapshotStore, PeerReader).
"""
import torch
import torch.distributed as dist

from .counting import CommCounter
from .snapshots import PeerReader, SnapshotStore, SnapshotTimeout, StillWaiting, snapshot_bits

# The longest a model's other ranks sit in one collective while its first rank waits for a peer's
# snapshot: the wait goes in slices, each ending in a broadcast of "still waiting", so that no
# collective outlives the model group's timeout however long the wait (NCCL's default is 10
# minutes, and fairseq creates its group without one, while a snapshot wait may last 30 minutes).
# A group whose timeout can be read gets slices of a quarter of it when that is shorter.
WAIT_SLICE_S = 60.0


class FileCheckpointExchange:
    """Every `period` updates this model group's leader (publish=True) writes its parameters to
    `store` (a SnapshotStore, or a folder); each rank reads its peers' snapshots into `teachers`
    (fresh modules of the peers' architectures, one per other group, in group order:
    teachers.build_teachers). mode "lockstep": at update s the peers' snapshot of floor(s/T)*T,
    waiting up to timeout_s for a peer that is behind (reproducible); "async": the newest there is
    (Anil et al. 2018), never waiting: a peer that has published nothing is absent (no teacher), a
    peer that stopped publishing is kept as its last snapshot (`teacher_ages` says how old). Snapshots are
    written from update 0 on, also during a burn-in, so peers
    never wait for one that will not come. `counter` is charged the bits of every snapshot read
    (inter-node when crosses_nodes). Snapshots are kept until the caller prunes them
    (store.prune), or, with prune=True, each publish removes this group's snapshots that no peer
    can need after a resume (SnapshotStore.prune_unneeded: every group marks its durable
    checkpoints with store.mark_checkpointed). model_group: the process group of this model's
    ranks, when it has several: its first rank alone reads the files and broadcasts the teachers
    to the others over it (tensors on the model's device), so a model of k ranks reads each
    snapshot once, not k times, and all its ranks hold the same snapshot in async mode too; they
    are charged the broadcast as intra-node bits. While the first rank waits, the others are in a
    broadcast that it renews every wait_slice_s (default: WAIT_SLICE_S, or a quarter of the group's
    timeout when shorter), so the wait may outlast the group's timeout; when the first rank gives up
    (SnapshotTimeout) or fails, every rank of the model raises with its reason.
    A publishing rank marks this attempt of its model as started (SnapshotStore.mark_started): its
    peers' stores built with start_timeout_s count their waits from it.
    """

    sends = "checkpoints"

    def __init__(self, store, group_index, n_groups, period, teachers, mode="lockstep", timeout_s=600.0,
                 counter=None, publish=True, crosses_nodes=True, prune=False, warn=None, model_group=None,
                 wait_slice_s=None):
        self.store = store if isinstance(store, SnapshotStore) else SnapshotStore(store)
        self.group_index, self.period, self.teachers = group_index, period, list(teachers)
        self.publishes, self.crosses_nodes = publish, crosses_nodes
        self.n_groups, self.prune = n_groups, prune
        self.counter = counter if counter is not None else CommCounter()
        peers = [j for j in range(n_groups) if j != group_index]
        if len(peers) != len(self.teachers):
            raise ValueError(f"{len(self.teachers)} teachers for {len(peers)} other model groups")
        self.reader = PeerReader(self.store, peers, period, mode, timeout_s, warn)
        self.published_step = None
        self.model_group = model_group if model_group is not None and dist.get_world_size(model_group) > 1 else None
        self.wait_slice_s = wait_slice_s if wait_slice_s is not None else (
            None if self.model_group is None else _wait_slice(self.model_group))
        if publish:
            self.store.mark_started(group_index)

    def publish(self, step, model):
        """At an exchange point, the leader writes `model`'s parameters (once per step)."""
        if self.publishes and step % self.period == 0 and self.published_step != step:
            self.store.publish(self.group_index, step, dict(model.named_parameters()))
            self.published_step = step
            if self.prune:
                self.store.prune_unneeded(self.group_index, self.n_groups, self.period)

    def refresh(self, step, model):
        """Reads the peers' snapshots to use at `step` into the teachers."""
        if self.model_group is None:
            self._read(step, [])
            return
        reader = dist.get_global_rank(self.model_group, 0)
        # the message travels as a tensor on the teachers' device: NCCL has no CPU tensors
        device = next(self.teachers[0].parameters()).device
        changed = []
        while True:
            message = [None]
            if dist.get_rank() == reader:
                try:
                    self._read(step, changed, self.wait_slice_s)
                    message = [("read", changed)]
                except StillWaiting:
                    message = [("waiting", None)]
                except Exception as error:   # the model's other ranks stop with it, naming why
                    dist.broadcast_object_list([("failed", (type(error).__name__, str(error)))], src=reader,
                                               group=self.model_group, device=device)
                    raise
            dist.broadcast_object_list(message, src=reader, group=self.model_group, device=device)
            kind, value = message[0]
            if kind == "failed":
                name, text = value
                failure = SnapshotTimeout if name == SnapshotTimeout.__name__ else RuntimeError
                raise failure(f"the first rank of this model stopped: {text}" if failure is RuntimeError else text)
            if kind == "read":
                break
        for slot, source in message[0][1]:
            if dist.get_rank() != reader:
                self.reader.steps[slot] = source
                self.reader.held_before_resume[slot] = None
            for tensor in self.teachers[slot].parameters():
                dist.broadcast(tensor.data, src=reader, group=self.model_group)
                if dist.get_rank() != reader:
                    self.counter.charge(snapshot_bits({"": tensor}), False)

    def _read(self, step, changed, within_s=None):
        """This rank's own read of the changed snapshots into the teachers, appended to `changed`
        as (slot, step read); within_s: StillWaiting after that long (what was read stays in it)."""
        for slot, source, tensors, counted in self.reader.refresh(step, within_s):
            if counted:
                self.counter.charge(snapshot_bits(tensors), self.crosses_nodes)
            self._load(slot, source, tensors)
            changed.append((slot, source))
        return changed

    def _load(self, slot, source, tensors):
        teacher = self.teachers[slot]
        reference = next(teacher.parameters())
        missing, unexpected = teacher.load_state_dict(
            {name: tensor.to(reference.device) for name, tensor in tensors.items()}, strict=False)
        if unexpected or {name for name, _ in teacher.named_parameters()} & set(missing):
            raise RuntimeError(f"model {self.reader.peers[slot]}'s snapshot of update {source} does not fit "
                               f"its teacher (missing {missing}, unexpected {unexpected})")

    def held_steps(self):
        """The steps of the peers' snapshots the teachers hold, in peer order; None before the
        first read."""
        steps = self.reader.steps
        return None if None in steps else list(steps)

    def mark_checkpointed(self, step):
        """This group's state of update `step` is durable: its peers' pruning (prune=True) keeps the
        snapshots a resume from it reads (SnapshotStore.mark_checkpointed)."""
        self.store.mark_checkpointed(self.group_index, step)

    def present(self):
        """Per teacher: whether it holds a snapshot (an absent peer has none: no distillation from it)."""
        return [step is not None for step in self.reader.steps]

    def teacher_ages(self, step):
        """Per teacher, in peer order: updates between `step` and the snapshot it holds (None: absent)."""
        return [None if held is None else step - held for held in self.reader.steps]

    def state_dict(self):
        """The steps of the snapshots the teachers hold: a resumed run reads them again, uncounted."""
        return {"teacher_steps": list(self.reader.steps)}

    def load_state_dict(self, state):
        """Takes a state_dict()'s snapshot steps: the next refresh reads those snapshots again, uncounted."""
        self.reader.resume(state["teacher_steps"])


def _wait_slice(group):
    """WAIT_SLICE_S, or a quarter of `group`'s timeout when that is shorter (read from its backends
    where torch exposes it; WAIT_SLICE_S is below every backend's default)."""
    timeouts = []
    for device_type in ("cpu", "cuda"):
        try:
            timeouts.append(group._get_backend(torch.device(device_type)).options._timeout.total_seconds())
        except Exception:   # no backend for that device, or a torch that does not expose it
            continue
    return min([WAIT_SLICE_S, *(timeout / 4 for timeout in timeouts if timeout > 0)])
