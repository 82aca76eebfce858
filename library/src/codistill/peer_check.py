"""Peers checked against each other: the misuses that otherwise train silently wrong.

At every exchange through collectives, the peers (the ranks at the same place in each model group)
all_gather a few numbers beside what they exchange: the update, the shape of the logits, a checksum
of the batch, and a checksum and count of the model's parameters. Reading them back makes the host
wait for the device, so they are read at the first two exchanges and then every `every` exchanges
(`Codistiller(peer_check_every=...)`); they are sent at every exchange, so that every rank runs the
same collectives whichever it reads. A rank that finds its peers disagree raises PeerMismatch on
every peer at once (they all read the same numbers), naming the peer and what differs:

- updates differ: a rank called loss() with another `step`, or skipped an update;
- logits of another shape: peers differ in batch size or number of classes;
- another batch (prediction exchange): peers must see the same batches in the same order
  (`Layout.shared_batch_sampler`); a DistributedSampler over the whole world gives each its own;
- a teacher of another size (checkpoint exchanges): make_teacher(j) builds another architecture
  than model j's;
- identical parameters after update 0: the models are one model (DDP built without
  process_group=codistiller.model_group averages them all) or started identical and see the same
  batches, and the distillation term is 0 at every update.

The numbers are not counted as exchanged bits (6 float64 values per exchange: a check, not the
method's traffic).
"""
import math

import torch
import torch.distributed as dist

FIELDS = ("update", "rows", "classes", "batch", "parameters", "parameter_count")
UNKNOWN = math.nan
RELATIVE_TOLERANCE = 1e-6   # checksums of the same batch summed on different devices may round apart


class PeerMismatch(RuntimeError):
    """Peers of a codistillation disagree on what they exchange (the message says who and what)."""


def tensors_in(value):
    """The tensors of a batch: a tensor, or those inside dicts, lists and tuples (a fairseq sample)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)


def batch_checksum(inputs, device):
    """A float64 number that differs between batches, and between orders of one batch's rows:
    the sum over tensors of sum_i (i + 1) x (sum of row i). NaN when the inputs hold no tensor."""
    total = torch.zeros((), dtype=torch.float64, device=device)
    found = False
    for tensor in tensors_in(inputs):
        if tensor.is_complex() or tensor.numel() == 0:
            continue
        rows = tensor.detach().reshape(tensor.shape[0] if tensor.dim() else 1, -1)
        sums = rows.sum(dim=1, dtype=torch.float64).to(device)
        total = total + (sums * torch.arange(1, len(sums) + 1, dtype=torch.float64, device=device)).sum()
        found = True
    return total if found else torch.tensor(UNKNOWN, dtype=torch.float64, device=device)


def parameter_checksum(model, device):
    parameters = [p.detach() for p in model.parameters()]
    if not parameters:
        return torch.tensor(UNKNOWN, dtype=torch.float64, device=device)
    return torch.stack([p.sum(dtype=torch.float64).to(device) for p in parameters]).sum()


class PeerCheck:
    """The check of one rank. groups: its ProcessGroups; group_index: its model group; every: read
    at the first two exchanges, then at every `every`-th; teacher_sizes: None, or the parameter
    count of the teacher built for each model group (None at this rank's own)."""

    def __init__(self, groups, group_index, every, teacher_sizes=None):
        if not (isinstance(every, int) and not isinstance(every, bool) and every >= 1):
            raise ValueError(f"peer_check_every={every!r} is not a whole number >= 1 (or None: no check)")
        self.groups, self.group_index, self.every = groups, group_index, every
        self.teacher_sizes = teacher_sizes
        self.exchanges = 0

    def __call__(self, step, model, logits=None, inputs=None):
        """Sends this rank's numbers to its peers; on a read exchange, raises PeerMismatch if they disagree."""
        device = logits.device if logits is not None else next(model.parameters()).device
        shape = (logits.shape[:-1].numel(), logits.shape[-1]) if logits is not None else (UNKNOWN, UNKNOWN)
        count = sum(p.numel() for p in model.parameters())
        batch = (batch_checksum(inputs, device) if logits is not None
                 else torch.tensor(UNKNOWN, dtype=torch.float64, device=device))
        known = torch.tensor([step, *shape, count], dtype=torch.float64).to(device)   # one copy to the device
        numbers = torch.cat([known[:3], batch.view(1), parameter_checksum(model, device).view(1), known[3:]])
        gathered = [torch.empty_like(numbers) for _ in range(dist.get_world_size(self.groups.peers))]
        dist.all_gather(gathered, numbers, group=self.groups.peers)
        read = self.exchanges < 2 or self.exchanges % self.every == 0
        self.exchanges += 1
        if read:
            problems = self.problems([dict(zip(FIELDS, peer.tolist())) for peer in gathered])
            if problems:
                raise PeerMismatch("codistillation peers disagree (model group "
                                   f"{self.group_index}, update {step}):\n  - " + "\n  - ".join(problems))

    def problems(self, peers):
        """The disagreements, one sentence each naming the peer, between this rank's numbers and
        its peers' (`peers`: one dict of FIELDS per model group); [] when they agree."""
        own = peers[self.group_index]
        found = []
        for index, peer in enumerate(peers):
            if index == self.group_index:
                continue
            name = f"model {index}"
            if peer["update"] != own["update"]:
                found.append(f"{name} is at update {peer['update']:.0f}, this rank at {own['update']:.0f}: every "
                             "rank must call loss() (or teachers_logits()) at every update, with the same step")
                continue   # the rest describes another update
            if not math.isnan(own["rows"]) and (peer["rows"], peer["classes"]) != (own["rows"], own["classes"]):
                found.append(f"{name} sends logits of {peer['rows']:.0f} rows x {peer['classes']:.0f} classes, this "
                             f"rank {own['rows']:.0f} x {own['classes']:.0f}: peers need the same batch size and the "
                             "same classes")
            elif not _close(peer["batch"], own["batch"]):
                found.append(f"{name} has another batch at this update: with exchange='predictions' peers must see "
                             "the same batches in the same order (Layout.shared_batch_sampler gives each model "
                             "group the same ones; a DistributedSampler over the whole world does not)")
            size = self.teacher_sizes[index] if self.teacher_sizes else None
            if size is not None and size != peer["parameter_count"]:
                found.append(f"the teacher built for {name} has {size:,} parameters, {name} sends "
                             f"{peer['parameter_count']:,.0f}: make_teacher({index}) must build model {index}'s "
                             "architecture")
        others = [peer for index, peer in enumerate(peers) if index != self.group_index]
        if own["update"] >= 1 and all(peer["update"] == own["update"] and peer["parameters"] == own["parameters"]
                                      and peer["parameter_count"] == own["parameter_count"] for peer in others):
            found.append("every model holds the same parameters after update 0, so the distillation term is 0: "
                         "build DDP with process_group=codistiller.model_group (over the whole world it averages "
                         "the models into one), and start the models from different seeds")
        return found


def _close(a, b):
    if math.isnan(a) or math.isnan(b):
        return True
    return abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b), 1.0)
