"""Codistillation in a training loop of your own: one object per rank.

    codistiller = Codistiller(model, layout, exchange="predictions", period=1, alpha=1.0)
    ddp = DistributedDataParallel(model, process_group=codistiller.model_group)  # all_reduce in its group
    ...
    loss = F.cross_entropy(logits, y) + codistiller.loss(step, x, logits)

The layout splits the world into n model groups of k ranks; each group trains one model with DDP
inside the group, and the groups codistil through the exchange (README, "Codistillation in your
own training loop"; the engine, vision/engine.py, does the same with exchange.py and losses.py).
"""
import copy

import torch
import torch.distributed as dist

from .exchange import EXCHANGES, WIRE_DTYPES, CommCounter, make_exchange, wrap_data_parallel
from .groups import make_process_groups
from .losses import DISTILL_LOSSES, distill_loss


class Codistiller:
    """This rank's part in codistilling the `layout.n_groups` models of a job.

    model: this rank's model (not its DDP wrapper). layout: a `Layout` holding this rank; the
    default process group must already span `layout.world_size` ranks. Creating a Codistiller
    creates the layout's process groups, so every rank creates its own at the same point.
    exchange: "predictions" (every `period` updates, peers all_gather their logits of the same
      batch: peers, the ranks at the same place in each group, must see the same batches) or
      "checkpoints" (every `period` updates, peers swap parameters; in between each rank runs the
      stale copies, in train mode, on its own batch) or "sharded_checkpoints" (the same teachers; each
      rank of a model group sends its peers only its 1/k shard, the group assembles the rest).
    alpha: a number, or a function of the update index (e.g. an `AlphaSchedule`).
    loss: "mse" (the paper's), "kl" or "soft_ce" (softened by `temperature`).
    burn_in_steps: no exchange and no distillation before this update.
    prediction_bits: None (logits travel in their own dtype: float64 logits as float64), or 32 /
      16 to send them as float32 / float16. Checkpoints travel in the parameters' own dtype.
    make_teacher(j): a fresh module of model group j's architecture, for checkpoint teachers;
      by default a copy of `model`.
    `counter` counts the bits this rank sends (`inter_node_bits`, `intra_node_bits`), as sent
      (a float64 value: 64 bits).
    """

    def __init__(self, model, layout, exchange="predictions", period=1, alpha=1.0, loss="mse", temperature=1.0,
                 burn_in_steps=0, prediction_bits=None, make_teacher=None):
        problems = [
            (exchange not in EXCHANGES[1:], f"exchange={exchange!r} is not one of {EXCHANGES[1:]}"),
            (not (isinstance(period, int) and period >= 1), f"period={period!r} is not a whole number >= 1"),
            (loss not in DISTILL_LOSSES, f"loss={loss!r} is not one of {DISTILL_LOSSES}"),
            (prediction_bits not in WIRE_DTYPES, f"prediction_bits={prediction_bits!r} is not None, 32 or 16"),
            (isinstance(temperature, bool) or not (isinstance(temperature, (int, float)) and temperature > 0),
             f"temperature={temperature!r} is not a number > 0"),
            (layout.n_groups < 2, f"codistillation needs n_groups >= 2 (layout has {layout.n_groups})"),
            (not dist.is_initialized(), "torch.distributed is not initialized: call init_process_group first"),
        ]
        for failed, message in problems:
            if failed:
                raise ValueError(message)
        if dist.get_world_size() != layout.world_size:
            raise ValueError(f"the layout has {layout.world_size} ranks ({layout.n_groups} groups x "
                             f"{layout.ranks_per_group}), the process group {dist.get_world_size()}")
        self.model, self.layout, self.kind, self.temperature = model, layout, loss, temperature
        self.alpha = alpha if callable(alpha) else (lambda step: alpha)
        self.groups = make_process_groups(layout)
        self.counter = CommCounter()
        make_teacher = make_teacher or (lambda group: copy.deepcopy(model))
        self.exchange = make_exchange(exchange, self.groups, self.counter, layout.group_index, period=period,
                                      burn_in_steps=burn_in_steps, prediction_bits=prediction_bits, model=model,
                                      make_peer=make_teacher, n_groups=layout.n_groups)

    @property
    def model_group(self):
        """This rank's model group: the process group of its DDP (gradients are averaged in it)."""
        return self.groups.group

    def data_parallel(self):
        """DDP over the model group, with every all_reduce counted in `counter` (the bare model
        when the group has one rank: nothing to average)."""
        return wrap_data_parallel(self.model, self.groups, self.counter)

    def loss(self, step, inputs, logits):
        """alpha(step) x the mean over the other models of D(logits, their logits) at update `step`
        (0-based), to add to the supervised loss; a zero tensor on an update without teachers
        (between prediction exchanges, during burn-in). Call it on every rank at every update, in
        the same order: at exchange points it runs a collective over the peers."""
        teachers = self.exchange.teachers_logits(step, self.model, inputs, logits)
        if not teachers:
            return torch.zeros((), device=logits.device)
        return self.alpha(step) * distill_loss(logits, teachers, self.kind, self.temperature)

    def state_dict(self):
        """What a resumed run needs: the exchange's state (stale teachers) and the bit counts."""
        return {"exchange": self.exchange.state_dict(), "inter_node_bits": self.counter.inter_node_bits,
                "intra_node_bits": self.counter.intra_node_bits}

    def load_state_dict(self, state):
        self.exchange.load_state_dict(state["exchange"])
        self.counter.inter_node_bits = state["inter_node_bits"]
        self.counter.intra_node_bits = state["intra_node_bits"]
