"""What users pick instead of codistillation to send fewer bits between servers, in the
engine's layout (n model groups of k ranks, DDP inside a group):

- powersgd: one model over all ranks, DDP with torch's PowerSGD comm hook (Vogels et al. 2019);
- localsgd: every group trains its own copy, and every H updates the groups average their
  parameters with torch's PeriodicModelAverager; post-local SGD's global all_reduce warm-up
  (Lin et al. 2020) with torch's post_localSGD_hook;
- diloco (Douillard et al. 2023): H inner updates, then an outer Nesterov SGD step on the average
  over groups of the parameter change, applied to a global copy that every group then loads;
- streaming_diloco (Douillard et al. 2025): torchft's DiLoCo, by fragments, with overlap
  (streaming_diloco.py; torchft is the optional extra `codistill[torchft]`);
- sparseloco (Sarfi et al. 2025) and muloco (Thérien et al. 2025): DiLoCo whose outer gradient
  travels compressed (top-k per chunk, low-bit values) with error feedback; MuLoCo's inner
  optimizer is Muon (compressed_diloco.py).

The engine calls each method at five points: `wrap(model)` (what trains: DDP with the method's
comm hook, or the bare model), `attach(optimizer)` once the inner optimizer exists,
`after_update(step)` after each optimizer step (`step` updates done), and `state_dict()` /
`load_state_dict()` with the run's state. allreduce, codistill and independent are
`GroupDataParallel` (DDP inside each group, exchanges in the Codistiller).

Local SGD and (Streaming) DiLoCo train all_reduce's recipe split over the groups
(`sampling_layout`): the global batch is cut over all n*k ranks as all_reduce cuts it over its
ranks, the schedules are the global batch's, and every group starts from model group 0's
initialisation, so that local SGD with H = 1 is all_reduce.

Bits follow the library's counting convention (its counting.py: an all_reduce of x costs 2|x| per
device, charged to the inter-node counter when its process group spans nodes), on the tensors
handed to each collective.
"""
import warnings

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powersgd
from torch.distributed.algorithms.ddp_comm_hooks.post_localSGD_hook import PostLocalSGDState, post_localSGD_hook
from torch.distributed.algorithms.model_averaging import averagers
from torch.distributed.algorithms.model_averaging.utils import get_params_to_average

from codistill import Layout
from codistill.internals import flat_parameters, load_flat_parameters, tensor_bits, wrap_data_parallel

from ..names import GLOBAL_BATCH_METHODS
from .compressed_diloco import MuLoCoCompression, SparseLoCoCompression


class OwnOptimizer:
    """A method that acts from after_update, not from hooks on the inner optimizer."""

    def attach(self, optimizer):
        pass


class Stateless(OwnOptimizer):
    """A method with nothing a resumed run needs: its state_dict is empty."""

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def sampling_layout(method_cfg, layout):
    """The layout the sample order, the schedules and the initialisation follow: the run's own,
    or for local SGD and (Streaming) DiLoCo all_reduce's single model over all ranks."""
    if method_cfg["name"] in GLOBAL_BATCH_METHODS:
        return Layout(1, layout.world_size, layout.ranks_per_node, layout.rank)
    return layout


def build_method(method_cfg, layout, groups, counter):
    """The method object of a run's method config (a dict or an OmegaConf node, read by key)."""
    name = method_cfg["name"]
    if name == "powersgd":
        return PowerSGD(method_cfg, groups, counter)
    if name == "localsgd":
        return LocalSGD(method_cfg, layout, groups, counter)
    if name == "diloco":
        return DiLoCo(method_cfg, groups, counter)
    if name == "streaming_diloco":
        from .streaming_diloco import StreamingDiLoCo  # torchft: an optional extra

        return StreamingDiLoCo(method_cfg, layout, groups, counter)
    if name == "sparseloco":
        return SparseLoCo(method_cfg, groups, counter)
    if name == "muloco":
        return MuLoCo(method_cfg, groups, counter)
    return GroupDataParallel(groups, counter)


# On gloo, PowerSGD's DDP keeps one bucket (the first one too): torch's powerSGD_hook issues each
# bucket's P and Q all_reduces from future callbacks, on gloo's threads, so with two buckets two ranks
# can issue them in different orders and desynchronise (seen in make bench part 3c). One bucket sends
# the same elements; it only loses the overlap of buckets with the backward pass. NCCL keeps the
# buckets: its futures are CUDA futures, whose callbacks run when DDP attaches them, in the order it
# issues the buckets on every rank (the hook's documented use).
ONE_BUCKET_MB = 1_000_000


def _ddp(model, groups, bucket_cap_mb=None):
    options = {"bucket_cap_mb": bucket_cap_mb} if bucket_cap_mb else {}
    return torch.nn.parallel.DistributedDataParallel(model, process_group=groups.group, **options)


class GroupDataParallel(Stateless):
    """allreduce, codistill, independent: DDP over each model group with a counted all_reduce."""

    def __init__(self, groups, counter):
        self.groups, self.counter = groups, counter

    def wrap(self, model):
        return wrap_data_parallel(model, self.groups, self.counter)

    def after_update(self, step):
        pass


class PowerSGD(OwnOptimizer):
    """torch's powerSGD_hook on the all_reduce of the model's gradients. Bits: per bucket, the
    elements PowerSGD all_reduces (its P and Q factors and the tensors it leaves uncompressed,
    which PowerSGDState totals in `total_numel_after_compression` with torch's own selection), or
    the whole bucket on updates before `start_iter`."""

    def __init__(self, method_cfg, groups, counter):
        self.groups, self.counter = groups, counter
        self.state = powersgd.PowerSGDState(
            process_group=groups.group, matrix_approximation_rank=method_cfg["rank"],
            start_powerSGD_iter=method_cfg["start_iter"],
            min_compression_rate=float(method_cfg["min_compression_rate"]),
            use_error_feedback=method_cfg["error_feedback"], warm_start=method_cfg["warm_start"])
        self.fresh_after_resume = False
        self.device = None   # the model's: where the warm-start factors live

    def wrap(self, model):
        self.device = next(model.parameters()).device
        ddp = _ddp(model, self.groups, bucket_cap_mb=ONE_BUCKET_MB if dist.get_backend(self.groups.group) == "gloo"
                   else None)
        ddp.register_comm_hook(self, counted_powersgd_hook)
        return ddp

    def after_update(self, step):
        pass

    def state_dict(self):
        """PowerSGD's iteration, warm-start factors (the same on every rank after their all_reduce)
        and RNG. Its error-feedback memory differs on every rank and is not kept: a resumed run
        starts it from zero (and is not bit-identical to an uninterrupted one)."""
        state = self.state
        _, keys, position, has_gauss, gauss = state.rng.get_state()
        return {"iter": state.iter, "p": dict(state.p_memory_dict), "q": dict(state.q_memory_dict),
                "rng": [torch.from_numpy(keys.astype("int64")), int(position), int(has_gauss), float(gauss)],
                "numel": [state.total_numel_before_compression, state.total_numel_after_compression]}

    def load_state_dict(self, saved):
        """`saved` as read from disk, on the CPU: the factors go to the model's device."""
        state = self.state
        state.iter = saved["iter"]
        state.p_memory_dict, state.q_memory_dict = ({bucket: factor.to(self.device) for bucket, factor in factors.items()}
                                                    for factors in (saved["p"], saved["q"]))
        keys, position, has_gauss, gauss = saved["rng"]
        state.rng.set_state(("MT19937", keys.numpy().astype("uint32"), position, has_gauss, gauss))
        state.total_numel_before_compression, state.total_numel_after_compression = saved["numel"]
        self.fresh_after_resume = True


def counted_powersgd_hook(method, bucket):
    """DDP comm hook: torch's powerSGD_hook on `bucket` with `method.state`, charging `method.counter`
    the elements it all_reduces (the whole bucket before start_iter and on a resumed run's first update)."""
    state, buffer = method.state, bucket.buffer()
    compressing = state.iter >= state.start_powerSGD_iter
    first_after_resume = method.fresh_after_resume
    if bucket.is_last():
        method.fresh_after_resume = False
    if compressing and first_after_resume:
        # A new DDP lays its buckets out anew after its first update, and PowerSGD keys its
        # memories by bucket (torch's reason for start_powerSGD_iter > 1): a resumed run's first
        # update all_reduces uncompressed.
        state.maybe_increase_iter(bucket)
        method.counter.charge_all_reduce(tensor_bits(buffer), method.groups.group_spans_nodes)
        return default_hooks.allreduce_hook(method.groups.group, bucket)
    before = state.total_numel_after_compression
    future = powersgd.powerSGD_hook(state, bucket)
    elements = state.total_numel_after_compression - before if compressing else buffer.numel()
    method.counter.charge_all_reduce(elements * buffer.element_size() * 8, method.groups.group_spans_nodes)
    return future


class LocalSGD(OwnOptimizer):
    """Each group trains its own copy (DDP inside the group); every `period` (H) updates torch's
    PeriodicModelAverager averages the parameters over the groups (an all_reduce among peers:
    2 b_model per averaging). With `warmup_steps` w > 0, post-local SGD: DDP all_reduces every
    gradient over all ranks for the first w updates (torch's post_localSGD_hook), inside the
    group after. Buffers (batch norm statistics) are not averaged, as torch's averager does."""

    def __init__(self, method_cfg, layout, groups, counter):
        self.groups, self.counter = groups, counter
        period, self.warmup = method_cfg["period"], method_cfg["warmup_steps"]
        self.world_spans_nodes = layout.spans_nodes(range(layout.world_size))
        # torch averages at its calls warmup_steps + i*period (0-based): warmup_steps = w + H - 1
        # averages after updates w + H, w + 2H, ..., where DiLoCo's outer steps fall, and not at
        # update w, when every group still holds the all-reduced model.
        with warnings.catch_warnings():  # H = 1 is allowed: it is all_reduce (torch warns)
            warnings.simplefilter("ignore", UserWarning)
            self.averager = averagers.PeriodicModelAverager(period, self.warmup + period - 1, groups.peers)
        self.post_local = PostLocalSGDState(dist.group.WORLD, groups.group, self.warmup) if self.warmup else None
        self.model = None

    def wrap(self, model):
        self.model = model
        if self.post_local is None:
            return wrap_data_parallel(model, self.groups, self.counter)
        ddp = _ddp(model, self.groups)
        ddp.register_comm_hook(self, _counted_post_local_hook)
        return ddp

    def averages_now(self):
        """torch's PeriodicModelAverager.average_parameters condition, for the counter."""
        averager = self.averager
        return averager.step >= averager.warmup_steps and (averager.step - averager.warmup_steps) % averager.period == 0

    def after_update(self, step):
        if self.averages_now():
            sent = get_params_to_average(self.model.parameters())  # what torch flattens and all_reduces
            self.counter.charge_all_reduce(sum(tensor_bits(p) for p in sent), self.groups.peers_span_nodes)
        self.averager.average_parameters(self.model.parameters())

    def state_dict(self):
        return {"averager_step": self.averager.step,
                "post_local_iter": None if self.post_local is None else self.post_local.iter}

    def load_state_dict(self, saved):
        self.averager.step = saved["averager_step"]
        if self.post_local is not None:
            self.post_local.iter = saved["post_local_iter"]


def _counted_post_local_hook(method, bucket):
    state, bits = method.post_local, tensor_bits(bucket.buffer())
    if state.iter < state.start_localSGD_iter:
        method.counter.charge_all_reduce(bits, method.world_spans_nodes)
    elif dist.get_world_size(method.groups.group) > 1:  # a one-rank group sends nothing
        method.counter.charge_all_reduce(bits, method.groups.group_spans_nodes)
    return post_localSGD_hook(state, bucket)


class DiLoCo(OwnOptimizer):
    """Douillard et al. 2023, Algorithm 1. torch has no DiLoCo: its outer loop is written here,
    from torch's optimizer and all_reduce. Every `period` (H) updates of the inner optimizer (the
    run's own SGD and schedule, DDP inside the group), the outer gradient is the average over
    groups of (global copy - this group's parameters), one all_reduce among peers (2 b_model);
    torch.optim.SGD (Nesterov when outer_momentum > 0) applies it to the global copy with
    outer_lr, and every group loads the result. The inner optimizer's state is kept across outer
    steps, as in the paper. With outer_lr 1 and no momentum this is parameter averaging."""

    def __init__(self, method_cfg, groups, counter):
        self.groups, self.counter = groups, counter
        self.period, self.n_groups = method_cfg["period"], method_cfg["n"]
        self.outer_lr, self.outer_momentum = method_cfg["outer_lr"], method_cfg["outer_momentum"]
        self.model = self.global_params = self.outer = None

    def wrap(self, model):
        self.model = model
        self.global_params = [p.detach().clone() for p in model.parameters()]
        self.outer = torch.optim.SGD(self.global_params, lr=self.outer_lr, momentum=self.outer_momentum,
                                     nesterov=self.outer_momentum > 0)
        return wrap_data_parallel(model, self.groups, self.counter)

    def after_update(self, step):
        if step % self.period:
            return
        change = torch.cat([g.reshape(-1) for g in self.global_params]) - flat_parameters(self.model)
        self.outer_step(self.average_over_groups(change))

    def average_over_groups(self, change):
        """The outer gradient the outer optimizer takes, from this group's `change` (global copy -
        its parameters, flat): their average over groups, one all_reduce among peers (2 b_model).
        compressed_diloco.py's methods send it compressed instead."""
        change /= self.n_groups
        dist.all_reduce(change, group=self.groups.peers)
        self.counter.charge_all_reduce(tensor_bits(change), self.groups.peers_span_nodes)
        return change

    def outer_step(self, gradient):
        """The outer optimizer's step on the global copy with `gradient` (flat), which every group loads."""
        offset = 0
        for parameter in self.global_params:
            parameter.grad = gradient[offset:offset + parameter.numel()].view_as(parameter)
            offset += parameter.numel()
        self.outer.step()
        load_flat_parameters(torch.cat([g.reshape(-1) for g in self.global_params]), self.model)

    def state_dict(self):
        """The global copy and the outer optimizer (its momentum): the same in every group."""
        return {"global": torch.cat([g.reshape(-1) for g in self.global_params]), "outer": self.outer.state_dict()}

    def load_state_dict(self, saved):
        offset = 0
        with torch.no_grad():
            for parameter in self.global_params:
                parameter.copy_(saved["global"][offset:offset + parameter.numel()].view_as(parameter))
                offset += parameter.numel()
        self.outer.load_state_dict(saved["outer"])


class SparseLoCo(SparseLoCoCompression, DiLoCo):
    """Sarfi et al. 2025 (arXiv 2508.15706): DiLoCo whose outer gradient travels as the top_k
    values of each chunk in `bits` bits, with error feedback in place of the outer momentum
    (compressed_diloco.py)."""


class MuLoCo(MuLoCoCompression, DiLoCo):
    """Thérien et al. 2025 (arXiv 2505.23725): DiLoCo with a Muon inner optimizer and the outer
    gradient in `bits` bits per value of each row, with error feedback (compressed_diloco.py)."""
