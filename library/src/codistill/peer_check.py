"""Peers checked against each other: the misuses that otherwise train silently wrong, or abort
inside the collective.

At every exchange through collectives, before anything the exchange sends, the peers (the ranks at
the same place in each model group) all_gather a few numbers: the update, how the exchange's
payload travels (its dtype, the device type it lies on, its shape: rows and classes of the
logits, values per row or per checkpoint vector, bits, delta fraction), a checksum of the batch,
and a checksum and count of the model's parameters. The update and the payload's description are
read at every exchange, so that peers whose payloads differ in size stop with a message before the
payload's collective (gloo aborts the process on such a pair, naming nothing); reading them makes
the host wait for the device once per exchange. The checksums are read at the first two exchanges
and then every `every` exchanges (`Codistiller(peer_check_every=...)`); they are sent at every
exchange, so that every rank runs the same collectives whichever it reads. A rank that finds its
peers disagree raises PeerMismatch on every peer at once (they all read the same numbers), naming
the peer and what differs:

- updates differ: a rank called loss() with another `step`, or skipped an update;
- another dtype (float64 logits or parameters beside float32 ones), another device type, or a
  payload of another shape (batch size, classes, prediction_topk, prediction_bits,
  checkpoint_bits, checkpoint_delta_fraction, a model of another size);
- another batch (prediction exchange): peers must see the same batches in the same order
  (`Layout.shared_batch_sampler`); a DistributedSampler over the whole world gives each its own;
- a teacher of another size (checkpoint exchanges): make_teacher(j) builds another architecture
  than model j's;
- identical parameters after update 0: the models are one model (DDP built without
  process_group=codistiller.model_group averages them all) or started identical and see the same
  batches, and the distillation term is 0 at every update.

A peer that never joins the check (it stopped, finished its loop with fewer updates, or skipped an
exchange) ends the wait at the process groups' timeout, or at once when its process is gone: that
failure is raised as PeerMismatch naming the update and these causes.

The numbers are not counted as exchanged bits (11 float64 values per exchange: a check, not the
method's traffic).
"""
import math

import torch
import torch.distributed as dist

FIELDS = ("update", "rows", "classes", "batch", "parameters", "parameter_count", "dtype", "device", "width", "bits",
          "fraction")
UNKNOWN = math.nan
# Numbered so that peers compare them as float64 values; a dtype or device type not listed is
# numbered by its name's position past the list (named by that number only).
DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.uint8, torch.int16,
          torch.int32, torch.int64, torch.bool, torch.complex64, torch.complex128)
DEVICE_TYPES = ("cpu", "cuda", "xpu", "mps", "hpu", "mtia", "meta", "privateuseone")
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


def dtype_code(dtype):
    return float(DTYPES.index(dtype)) if dtype in DTYPES else float(len(DTYPES) + 1)


def device_code(device_type):
    return float(DEVICE_TYPES.index(device_type)) if device_type in DEVICE_TYPES else float(len(DEVICE_TYPES) + 1)


def _dtype_name(code):
    return str(DTYPES[int(code)]) if 0 <= code < len(DTYPES) else "a dtype of no number here"


def _device_name(code):
    return repr(DEVICE_TYPES[int(code)]) if 0 <= code < len(DEVICE_TYPES) else "a device type of no number here"


class Wire:
    """How an exchange's payload travels: what peers must agree on before its collective.
    dtype: the values' torch dtype; width: values per row of logits (predictions) or per vector
    (checkpoints); bits: the prediction_bits / checkpoint_bits (None: the dtype's own); fraction:
    checkpoint_delta_fraction (None: the whole vector)."""

    def __init__(self, dtype, width, bits=None, fraction=None):
        self.dtype, self.width, self.bits, self.fraction = dtype, width, bits, fraction


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

    def __call__(self, step, model, logits=None, inputs=None, wire=None):
        """Sends this rank's numbers to its peers (`wire`: how the exchange's payload travels, a
        Wire); raises PeerMismatch if they disagree on the update or the payload, and, on a read
        exchange, on the checksums."""
        device = logits.device if logits is not None else next(model.parameters()).device
        shape = (logits.shape[:-1].numel(), logits.shape[-1]) if logits is not None else (UNKNOWN, UNKNOWN)
        count = sum(p.numel() for p in model.parameters())
        batch = (batch_checksum(inputs, device) if logits is not None
                 else torch.tensor(UNKNOWN, dtype=torch.float64, device=device))
        described = ([dtype_code(wire.dtype), device_code(device.type), wire.width,
                      UNKNOWN if wire.bits is None else wire.bits, UNKNOWN if wire.fraction is None else wire.fraction]
                     if wire is not None else [UNKNOWN, device_code(device.type), UNKNOWN, UNKNOWN, UNKNOWN])
        known = torch.tensor([step, *shape, count, *described], dtype=torch.float64).to(device)   # one copy
        numbers = torch.cat([known[:3], batch.view(1), parameter_checksum(model, device).view(1), known[3:]])
        gathered = [torch.empty_like(numbers) for _ in range(dist.get_world_size(self.groups.peers))]
        try:
            dist.all_gather(gathered, numbers, group=self.groups.peers)
        except RuntimeError as error:   # gloo's and NCCL's errors (timeout, a peer's process gone) are RuntimeErrors
            raise PeerMismatch(
                f"rank {dist.get_rank()} (model group {self.group_index}) waited in vain for its peers at the "
                f"exchange of update {step}: a peer stopped (its own error says why), finished its loop with "
                "fewer updates, skipped loss() at an exchange update, or has alpha 0 where this rank's is not "
                "(every rank must call loss() at every update, with the same period and alpha); "
                f"the collective failed with: {error}") from error
        read = self.exchanges < 2 or self.exchanges % self.every == 0
        self.exchanges += 1
        problems = self.problems([dict(zip(FIELDS, peer)) for peer in torch.stack(gathered).tolist()], read)
        if problems:
            raise PeerMismatch("codistillation peers disagree (model group "
                               f"{self.group_index}, update {step}):\n  - " + "\n  - ".join(problems))

    def problems(self, peers, read=True):
        """The disagreements, one sentence each naming the peer, between this rank's numbers and
        its peers' (`peers`: one dict of FIELDS per model group); [] when they agree. The update
        and the payload are compared always, the checksums when `read`."""
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
            found.extend(_payload_problems(name, own, peer))
            if not math.isnan(own["rows"]) and (peer["rows"], peer["classes"]) != (own["rows"], own["classes"]):
                found.append(f"{name} sends logits of {peer['rows']:.0f} rows x {peer['classes']:.0f} classes, this "
                             f"rank {own['rows']:.0f} x {own['classes']:.0f}: peers need the same batch size and the "
                             "same classes")
            elif read and not _close(peer["batch"], own["batch"]):
                found.append(f"{name} has another batch at this update: with exchange='predictions' peers must see "
                             "the same batches in the same order (Layout.shared_batch_sampler gives each model "
                             "group the same ones; a DistributedSampler over the whole world does not)")
            size = self.teacher_sizes[index] if self.teacher_sizes else None
            if size is not None and size != peer["parameter_count"]:
                found.append(f"the teacher built for {name} has {size:,} parameters, {name} sends "
                             f"{peer['parameter_count']:,.0f}: make_teacher({index}) must build model {index}'s "
                             "architecture")
        others = [peer for index, peer in enumerate(peers) if index != self.group_index]
        if read and own["update"] >= 1 and all(peer["update"] == own["update"] and peer["parameters"] == own["parameters"]
                                      and peer["parameter_count"] == own["parameter_count"] for peer in others):
            found.append("every model holds the same parameters after update 0, so the distillation term is 0: "
                         "build DDP with process_group=codistiller.model_group (over the whole world it averages "
                         "the models into one), and start the models from different seeds")
        return found


def _same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


def _payload_problems(name, own, peer):
    """What differs in how `peer` and this rank send the exchange's payload (a rank whose
    description is unknown, a check without a Wire, is compared on its device only)."""
    found = []
    if peer["device"] != own["device"]:
        found.append(f"{name} exchanges on device type {_device_name(peer['device'])}, this rank on "
                     f"{_device_name(own['device'])}: peers must run on one device type")
    if math.isnan(own["dtype"]) or math.isnan(peer["dtype"]):
        return found
    if peer["dtype"] != own["dtype"]:
        found.append(f"{name} sends {_dtype_name(peer['dtype'])}, this rank {_dtype_name(own['dtype'])}: peers must "
                     "send one dtype (build every model in the same dtype; for predictions, prediction_bits=32 or 16 "
                     "sends logits as float32 or float16 whatever the model's dtype)")
    if not _same(peer["bits"], own["bits"]) or not _same(peer["fraction"], own["fraction"]):
        found.append(f"{name} sends with bits={_setting(peer['bits'])} and delta fraction {_setting(peer['fraction'])}, "
                     f"this rank with bits={_setting(own['bits'])} and {_setting(own['fraction'])}: give every rank the "
                     "same prediction_bits, checkpoint_bits and checkpoint_delta_fraction")
    if not _same(peer["width"], own["width"]) and math.isnan(own["rows"]):
        found.append(f"{name} sends checkpoint vectors of {peer['width']:,.0f} values, this rank {own['width']:,.0f}: "
                     "every model's teachers must be built with the other models' architectures (make_teacher)")
    elif not _same(peer["width"], own["width"]):
        found.append(f"{name} sends {peer['width']:.0f} values per row of logits, this rank {own['width']:.0f}: give "
                     "every rank the same prediction_topk")
    return found


def _setting(value):
    return "None" if math.isnan(value) else f"{value:g}"


def _close(a, b):
    if math.isnan(a) or math.isnan(b):
        return True
    return abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b), 1.0)
