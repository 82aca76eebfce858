"""How models share information, and how many bits that costs (paper Section 3).

- all_reduce inside a model group: DDP, with a comm hook that counts every gradient bucket.
- predictions: peers all_gather their logits every T updates (coordinated sampling).
- checkpoints: peers all_gather their flattened parameters every T updates; each rank keeps
  the stale copies as teachers and runs them forward on its own batch (Anil et al. 2018).

An exchange owns its burn-in (no exchange and no teachers before update `burn_in_steps`) and
its state (`state_dict()` / `load_state_dict()`: what a resumed run needs, e.g. the stale
teachers). `make_exchange` builds one from plain values; `build_exchange` from a run's method
config (a dict or an OmegaConf node).

Counting convention: each collective is charged, per device, the traffic of a bandwidth-optimal
algorithm on the tensor actually handed to it, which is the paper's Section 3 model:
all_reduce of x costs 2|x|; all_gather of x over m ranks costs (m-1)|x|. Charges go to the
inter-node counter when the process group crosses nodes, else to the intra-node one.
"""
import hashlib

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks


class CommCounter:
    def __init__(self):
        self.inter_node_bits = 0
        self.intra_node_bits = 0

    def charge(self, bits, crosses_nodes):
        if crosses_nodes:
            self.inter_node_bits += bits
        else:
            self.intra_node_bits += bits


def flat_parameters(module):
    """All parameters as one detached vector (works for channels-last weights, unlike
    torch.nn.utils.parameters_to_vector)."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def load_flat_parameters(vector, module):
    """The inverse of flat_parameters, copying in place (each parameter keeps its memory format)."""
    offset = 0
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(vector[offset:offset + p.numel()].view(p.shape))
            offset += p.numel()


def tensor_bits(tensor):
    return tensor.numel() * tensor.element_size() * 8


def counted_all_gather(tensor, group, counter, crosses_nodes):
    """all_gather `tensor` over `group`; returns the list of every member's tensor."""
    size = dist.get_world_size(group)
    gathered = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(gathered, tensor.contiguous(), group=group)
    counter.charge((size - 1) * tensor_bits(tensor), crosses_nodes)
    return gathered


def _counting_allreduce_hook(state, bucket):
    process_group, counter, crosses_nodes = state
    counter.charge(2 * tensor_bits(bucket.buffer()), crosses_nodes)
    return default_hooks.allreduce_hook(process_group, bucket)


def wrap_data_parallel(model, groups, counter):
    """DDP over this rank's model group; a single-rank group trains the bare model (nothing to
    all_reduce, nothing sent)."""
    if dist.get_world_size(groups.group) == 1:
        return model
    ddp = torch.nn.parallel.DistributedDataParallel(model, process_group=groups.group)
    ddp.register_comm_hook((groups.group, counter, groups.group_spans_nodes), _counting_allreduce_hook)
    return ddp


def param_hash(module):
    vector = flat_parameters(module).cpu()
    return hashlib.sha1(vector.numpy().tobytes()).hexdigest()[:16]


class Stateless:
    """An exchange with nothing a resumed run needs: its state_dict is empty."""

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class NoExchange(Stateless):
    """all_reduce and independent training: nothing crosses between model groups."""

    def teachers_logits(self, step, model, inputs, logits):
        return []


# method.prediction_bits -> the dtype logits travel in. 32: the paper's b_predictions. 16: float16
# (not bfloat16: logits sit far inside float16's range, and its 11-bit significand rounds 8x finer).
WIRE_DTYPES = {32: torch.float32, 16: torch.float16}


class PredictionExchange(Stateless):
    """Every `period` updates, peers swap the logits of their (shared) mini-batch; on the other
    updates the distillation term is omitted (paper Section 3). Logits travel in `bits`-bit
    floats (counted as such) and are used as float32 teachers. Nothing is exchanged before
    update `burn_in_steps`. Stateless: its state_dict is empty."""

    def __init__(self, groups, counter, period, group_index, bits=32, burn_in_steps=0):
        self.groups, self.counter, self.period, self.group_index = groups, counter, period, group_index
        self.wire_dtype = WIRE_DTYPES[bits]
        self.burn_in_steps = burn_in_steps

    def teachers_logits(self, step, model, inputs, logits):
        if step < self.burn_in_steps or step % self.period != 0:
            return []
        # The wire dtype whatever autocast computed the logits in: what b_predictions counts.
        gathered = counted_all_gather(logits.detach().to(self.wire_dtype), self.groups.peers, self.counter,
                                      self.groups.peers_span_nodes)
        return [peer.float() for index, peer in enumerate(gathered) if index != self.group_index]


class CheckpointExchange:
    """Every `period` updates, peers swap parameters; in between each rank runs the stale peer
    copies forward on its own batch. The teacher at update s is the peer from update
    floor(s/T)*T. Teachers run in train mode, as the peers themselves did, so only parameters
    (b_model) travel. Peers may have other architectures (Figs. 14-15): `teachers` are fresh
    instances of the peers' models, and parameter vectors of unequal length are zero-padded to
    the longest for the all_gather (the padding is counted: it travels). Nothing is exchanged
    before update `burn_in_steps`; the first exchange is at the first update after it."""

    def __init__(self, groups, counter, period, group_index, model, teachers, burn_in_steps=0):
        self.groups, self.counter, self.period, self.group_index = groups, counter, period, group_index
        self.teachers, self.burn_in_steps = teachers, burn_in_steps
        for teacher in self.teachers:
            teacher.requires_grad_(False)
        sizes = [sum(p.numel() for p in m.parameters()) for m in (model, *teachers)]
        self.teacher_sizes, self.padded_size = sizes[1:], max(sizes)
        self.source_step = None  # update index the teachers' parameters come from

    def is_due(self, step):
        # Also on the first call after a burn-in that ended between exchange points.
        return step % self.period == 0 or self.source_step is None

    def refresh(self, model):
        own = flat_parameters(model)
        padded = torch.nn.functional.pad(own, (0, self.padded_size - own.numel()))
        gathered = counted_all_gather(padded, self.groups.peers, self.counter, self.groups.peers_span_nodes)
        peers = [vector for index, vector in enumerate(gathered) if index != self.group_index]
        for teacher, size, vector in zip(self.teachers, self.teacher_sizes, peers):
            load_flat_parameters(vector[:size], teacher)

    def teachers_logits(self, step, model, inputs, logits):
        if step < self.burn_in_steps:
            return []
        if self.is_due(step):
            self.refresh(model)
            self.source_step = step
        with torch.no_grad():
            return [teacher(inputs) for teacher in self.teachers]

    def state_dict(self):
        """The stale teachers (flat parameter vectors) and the update they come from."""
        return {"vectors": [flat_parameters(t) for t in self.teachers], "source_step": self.source_step}

    def load_state_dict(self, state):
        for teacher, vector in zip(self.teachers, state["vectors"], strict=True):
            load_flat_parameters(vector, teacher)
        self.source_step = state["source_step"]


EXCHANGES = ("none", "predictions", "checkpoints")


def make_exchange(kind, groups, counter, group_index, period=1, burn_in_steps=0, prediction_bits=32,
                  model=None, make_peer=None, n_groups=2):
    """An exchange from plain values. kind: "none", "predictions" or "checkpoints"; groups: this
    rank's ProcessGroups; group_index: its model group. Checkpoints need the rank's `model` and
    make_peer(j), a fresh instance of model group j's architecture for each of the other
    n_groups - 1 groups (the stale teachers)."""
    if kind == "none":
        return NoExchange()
    if kind == "predictions":
        return PredictionExchange(groups, counter, period, group_index, prediction_bits, burn_in_steps)
    if kind == "checkpoints":
        teachers = [make_peer(j) for j in range(n_groups) if j != group_index]
        return CheckpointExchange(groups, counter, period, group_index, model, teachers, burn_in_steps)
    raise ValueError(f"exchange {kind!r} is not one of {EXCHANGES}")


def build_exchange(method_cfg, groups, counter, group_index, model, make_peer):
    """The exchange of a run's method config (a dict or an OmegaConf node, read by key).
    make_peer(j): a fresh instance of model group j's architecture (checkpoint teachers)."""
    if method_cfg["name"] in ("allreduce", "independent"):
        return NoExchange()
    if method_cfg["exchange"] not in ("predictions", "checkpoints"):
        raise ValueError(f"method.exchange={method_cfg['exchange']!r} is not predictions or checkpoints")
    return make_exchange(method_cfg["exchange"], groups, counter, group_index, period=method_cfg["period"],
                         burn_in_steps=int(method_cfg.get("burn_in_steps", 0)),
                         prediction_bits=method_cfg.get("prediction_bits", 32), model=model,
                         make_peer=make_peer, n_groups=method_cfg["n"])
