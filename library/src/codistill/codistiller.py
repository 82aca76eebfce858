"""Codistillation in one object per rank: the method as every client runs it (the README's own loop,
the training engine, the fairseq plugin).

    codistiller = Codistiller(model, layout, exchange="predictions", period=1, alpha=1.0, optimizer=optimizer)
    ddp = codistiller.data_parallel()   # DDP in the model's group, its all_reduce counted
    ...
    loss = F.cross_entropy(logits, y) + codistiller.loss(x, logits)

The layout splits the world into n model groups of k ranks; each group trains one model with DDP
inside the group, and the groups codistil through the exchange. Models that share no process
group (separate jobs) codistil through files: `Codistiller.through_files`. A model distils from
trained models that no longer change (the second phase of Anil et al. 2018 Sec. 3.4.1):
`Codistiller.from_teachers`.

What lives here and nowhere else: which exchange runs, burn-in, the teachers (built by
teachers.build_teachers and run in teachers.teacher_mode), the distillation term (losses.py)
weighted by alpha, the update count, and the bit counter.

The update count: the Codistiller numbers the updates itself. Given the `optimizer`, each
optimizer.step() ends an update (a post-step hook, as torchft's DiLoCo counts its steps): every
loss() call in between belongs to that update (micro-batches), and a step without one raises.
Without it, each loss() call is one update. A `step` given explicitly is checked against the
count: the update in progress again, or the next one; anything else raises PeerMismatch naming
the rank and the update, before any collective. The count is in state_dict().
"""
import contextlib
import copy
import math
import numbers

import torch
import torch.distributed as dist

from .choices import DISTILL_LOSSES, EXCHANGES, check_checkpoint_compression, check_topk
from .collapse_guard import CollapseGuard, PullGuard
from .counting import CommCounter, count_all_reduce, wrap_data_parallel
from .exchange import make_exchange
from .file_exchange import FileCheckpointExchange
from .groups import make_process_groups
from .losses import distill_loss
from .peer_check import PeerCheck, PeerMismatch
from .predictions import WIRE_DTYPES
from .teachers import FrozenTeachers, build_teachers, prepared_teachers


def _check(period, loss, temperature, n_groups):
    _raise_first([(not (isinstance(period, int) and period >= 1), f"period={period!r} is not a whole number >= 1"),
                  *_loss_problems(loss, temperature),
                  (n_groups < 2, f"codistillation needs n_groups >= 2 (layout has {n_groups})")])


def _loss_problems(loss, temperature):
    return [(loss not in DISTILL_LOSSES, f"loss={loss!r} is not one of {DISTILL_LOSSES}"),
            (isinstance(temperature, bool) or not (isinstance(temperature, (int, float)) and temperature > 0),
             f"temperature={temperature!r} is not a number > 0")]


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _raise_first(problems):
    for failed, message in problems:
        if failed:
            raise ValueError(message)


def _forward(teacher, inputs):
    return teacher(inputs)


def _is_step(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _rank():
    return f"rank {dist.get_rank()}" if dist.is_initialized() else "this process"


class Codistiller:
    """This rank's part in codistilling the `layout.n_groups` models of a job.

    model: this rank's model (not its DDP wrapper). layout: a `Layout` holding this rank; the
    default process group must already span `layout.world_size` ranks. Creating a Codistiller
    creates the layout's process groups (or takes `groups`, made by make_process_groups(layout)),
    so every rank creates its own at the same point; `timeout` (a datetime.timedelta) is how long
    their collectives may wait: give the one init_process_group was given (make_process_groups).
    exchange: "predictions" (every `period` updates, peers all_gather their logits of the same
      batch: peers, the ranks at the same place in each group, must see the same batches) or
      "checkpoints" (every `period` updates, peers swap parameters; in between each rank runs the
      stale copies on its own batch) or "sharded_checkpoints" (the same teachers; each rank of a
      model group sends its peers only its 1/k shard, the group assembles the rest).
    alpha: a number, or a function of the update index (e.g. an `AlphaSchedule`). An update at
      which alpha is 0 exchanges nothing through collectives (no teachers, no bits): every rank
      must be given the same alpha, so that all skip the same exchanges.
    optimizer: None, or the torch optimizer of this rank's model: its step() ends each update
      (the update count, above).
    loss: "mse" (the paper's), "kl" or "soft_ce" (softened by `temperature`).
    burn_in_steps: no teachers (and no exchange through collectives) before this update, and
      alpha_at(step) is 0 (the burn-in is the Codistiller's alone: an AlphaSchedule has none).
    prediction_bits: None (logits travel in their own dtype: float64 logits as float64), or 32 /
      16 to send them as float32 / float16, or 8: int8 quantised per row (absmax, a float32 scale
      per row travels too).
    checkpoint_bits: 32 (checkpoints travel in the parameters' own dtype, as they are), or 8 / 4 / 2:
      the vector quantised per block of 64 values with a float32 scale each (compression.py), the
      teachers its dequantised values. checkpoint_delta_fraction: None, or f in (0, 1]: after a first
      exchange of the whole vector, each exchange sends, per chunk of 4096 values, the round(f x 4096)
      values that changed most since the vector the peers hold, with their int16 indices; the teachers
      are that reconstruction (f = 1: the uncompressed teachers bit for bit). One or the other
      (checkpoints.CompressedWire; docs/library.md "Compressed checkpoints").
    prediction_topk: None (every row's C logits travel) or k: each row's k largest logits and their
      classes travel, and the teachers are losses.TopKLogits (D on what arrives: losses.py);
      k = C sends the dense logits. choices.prediction_row_bits gives the bits per row.
    make_teacher(j): a fresh module of model group j's architecture, for checkpoint teachers;
      by default a copy of `model`. run_teacher(teacher, inputs): a teacher's logits on the
      inputs the loss is given (default teacher(inputs)).
    `counter` (or a CommCounter passed in) counts the bits this rank sends (`inter_node_bits`,
      `intra_node_bits`), as sent (a float64 value: 64 bits).
    peer_check_every: before every exchange peers swap their update, how the payload travels
      (dtype, device type, shape), a checksum of the batch and of the parameters (peer_check.py):
      the update and payload read at every exchange (the host waits for the device once), the
      checksums at the first two exchanges and then every `peer_check_every` exchanges; a misuse
      (another step, dtype, device type, shape, batch, teacher architecture, or models averaged
      into one) raises PeerMismatch naming the peer, before the payload's collective. None: no
      check (a payload mismatch then aborts inside the collective).
    collapse_guard: True (default) warns once with CollapseWarning when this model's logits stop
      varying across the batch (it predicts one class whatever the input: the collapse a pull too
      strong for the learning rate causes, docs/library.md "Choosing alpha and period
      (measured)"); it reads one number once in 10 updates, without making the host wait for the
      device (collapse_guard.py). Given the `optimizer` (SGD), with checkpoints and the MSE, it also
      warns once at the first update where alpha x lr / ((1 - momentum) x classes) is above 0.003
      at a period under 50: the region measured to collapse or cost top-1. False: no check.
    """

    def __init__(self, model, layout, exchange="predictions", period=1, alpha=1.0, loss="mse", temperature=1.0,
                 burn_in_steps=0, prediction_bits=None, make_teacher=None, *, groups=None, counter=None,
                 run_teacher=None, prediction_topk=None, timeout=None, peer_check_every=100,
                 collapse_guard=True, checkpoint_bits=32, checkpoint_delta_fraction=None, optimizer=None):
        if exchange not in EXCHANGES:
            raise ValueError(f"exchange={exchange!r} is not one of {EXCHANGES}")
        if prediction_bits not in WIRE_DTYPES:
            raise ValueError(f"prediction_bits={prediction_bits!r} is not None, 32, 16 or 8")
        check_topk(prediction_topk)
        if prediction_topk is not None and exchange != "predictions":
            raise ValueError(f"prediction_topk={prediction_topk!r} applies to exchange='predictions' only")
        check_checkpoint_compression(checkpoint_bits, checkpoint_delta_fraction)
        if exchange == "predictions" and (checkpoint_bits != 32 or checkpoint_delta_fraction is not None):
            raise ValueError(f"checkpoint_bits={checkpoint_bits!r} and checkpoint_delta_fraction="
                             f"{checkpoint_delta_fraction!r} apply to checkpoint exchanges only (exchange='predictions')")
        _check(period, loss, temperature, layout.n_groups)
        if not isinstance(collapse_guard, bool):
            raise ValueError(f"collapse_guard={collapse_guard!r} is not True or False")
        if not dist.is_initialized():
            raise ValueError("torch.distributed is not initialized: call init_process_group first")
        if dist.get_world_size() != layout.world_size:
            raise ValueError(f"the layout has {layout.world_size} ranks ({layout.n_groups} groups x "
                             f"{layout.ranks_per_group}), the process group {dist.get_world_size()}")
        self.groups = groups if groups is not None else make_process_groups(layout, timeout)
        counter = counter if counter is not None else CommCounter()
        teachers = (build_teachers(model, make_teacher or (lambda group: copy.deepcopy(model)), layout.group_index,
                                   layout.n_groups) if exchange != "predictions" else [])
        self._setup(model, make_exchange(exchange, self.groups, counter, layout.group_index, period=period,
                                         prediction_bits=prediction_bits, model=model, teachers=teachers,
                                         prediction_topk=prediction_topk, checkpoint_bits=checkpoint_bits,
                                         checkpoint_delta_fraction=checkpoint_delta_fraction),
                    counter, alpha, loss, temperature, burn_in_steps, run_teacher, optimizer, layout.group_index)
        if collapse_guard:
            self.collapse_guard = CollapseGuard(f"exchange={exchange!r} every {period} updates, alpha={alpha!r}")
            if exchange != "predictions" and loss == "mse" and optimizer is not None:
                # the measured region: read from the optimizer's lr and momentum at each update
                self.pull_guard = PullGuard(period, f"exchange={exchange!r} every {period} updates")
        if peer_check_every is not None:
            sizes = [sum(p.numel() for p in teacher.parameters()) for teacher in teachers]
            if sizes:
                sizes.insert(layout.group_index, None)
            self.peer_check = PeerCheck(self.groups, layout.group_index, peer_check_every, sizes or None)

    @classmethod
    def through_files(cls, model, store, group_index, n_groups, period=1, alpha=1.0, loss="mse", temperature=1.0,
                      burn_in_steps=0, make_teacher=None, *, mode="lockstep", timeout_s=600.0, counter=None,
                      publish=True, crosses_nodes=True, prune=False, run_teacher=None, warn=None, model_group=None,
                      optimizer=None):
        """Codistillation between models that share only storage (each its own job or world): the
        checkpoint exchange through files (file_exchange.FileCheckpointExchange on `store`, a
        SnapshotStore or a folder). publish: this rank writes the snapshots (its model group's
        leader); mode, timeout_s, crosses_nodes, prune, warn (where a skipped damaged snapshot
        is reported) and model_group (the model's ranks: its first reads, then broadcasts) as
        FileCheckpointExchange's. A peer without a snapshot yet (asynchronous mode)
        is no teacher: the loss is the mean over the peers present."""
        _check(period, loss, temperature, n_groups)
        self = cls.__new__(cls)
        self.groups = None
        counter = counter if counter is not None else CommCounter()
        teachers = build_teachers(model, make_teacher or (lambda group: copy.deepcopy(model)), group_index, n_groups)
        exchange = FileCheckpointExchange(store, group_index, n_groups, period, teachers, mode=mode,
                                          timeout_s=timeout_s, counter=counter, publish=publish,
                                          crosses_nodes=crosses_nodes, prune=prune, warn=warn,
                                          model_group=model_group)
        self._setup(model, exchange, counter, alpha, loss, temperature, burn_in_steps, run_teacher, optimizer,
                    group_index)
        return self

    @classmethod
    def from_teachers(cls, model, teachers, alpha=1.0, loss="mse", temperature=1.0, burn_in_steps=0, *,
                      counter=None, run_teacher=None, optimizer=None):
        """Distillation from trained models that do not change (teachers.FrozenTeachers): e.g. an
        ensemble trained first, distilled into `model` (Anil et al. 2018 Sec. 3.4.1, two-phase).
        teachers: modules holding the trained parameters, one per teacher (built without drawing
        from the model's random stream, e.g. inside torch.random.fork_rng); they are put on the
        model's device and dtype, without gradients, in teacher mode, as an exchange's teachers.
        The term is the codistillation's: alpha(step) x the mean over the teachers of
        D(student, teacher_j). With loss="mse" that mean has the gradient of the MSE to the
        ensemble's mean logits (mean_j |s - t_j|^2 = |s - mean_j t_j|^2 + the teachers' variance,
        which does not depend on s), but not its value: the logged D includes the variance.
        Nothing is exchanged (no process group is needed; `counter` stays at 0) and
        state_dict() holds nothing of the teachers: a resumed run loads them again."""
        _raise_first([*_loss_problems(loss, temperature), (len(teachers) < 1, "from_teachers needs a teacher")])
        self = cls.__new__(cls)
        self.groups = None
        counter = counter if counter is not None else CommCounter()
        frozen = FrozenTeachers(prepared_teachers(model, lambda j: teachers[j], range(len(teachers))))
        self._setup(model, frozen, counter, alpha, loss, temperature, burn_in_steps, run_teacher, optimizer, 0)
        return self

    def _setup(self, model, exchange, counter, alpha, loss, temperature, burn_in_steps, run_teacher, optimizer,
               group_index):
        _raise_first([(not (callable(alpha) or _is_number(alpha) and alpha >= 0),
                       f"alpha={alpha!r} is not a number >= 0 or a function of the update index (e.g. an "
                       "AlphaSchedule)")])
        self.model, self.exchange, self.counter = model, exchange, counter
        self.kind, self.temperature, self.burn_in_steps = loss, temperature, burn_in_steps
        self.alpha = alpha if callable(alpha) else (lambda step: alpha)
        self.run_teacher = run_teacher or _forward
        self.prepared_step = None
        self.peer_check = None   # through collectives only: Codistiller(peer_check_every=...)
        self.collapse_guard = None   # through collectives only: Codistiller(collapse_guard=...)
        self.pull_guard = None       # through collectives, MSE and an optimizer given only
        self.current_update = None   # the update the last call ran in (None: none yet)
        self.next_update = 0         # the update a call without `step` runs in next
        self._count_known = False    # False until a call or a loaded state fixes the count
        self._group_index = group_index   # the model this rank trains (from_teachers: its one student, 0)
        self._count_paused = False   # True while torch's optimizer state functions step the optimizer
        self._hook = None
        if optimizer is not None:
            if not callable(getattr(optimizer, "register_step_post_hook", None)):
                raise ValueError(f"optimizer={optimizer!r} is not a torch.optim.Optimizer (it has no "
                                 "register_step_post_hook)")
            self._hook = optimizer.register_step_post_hook(self._optimizer_stepped)

    def _optimizer_stepped(self, optimizer, args, kwargs):
        """The optimizer's post-step hook: update `next_update` is done."""
        if self._count_paused:
            return
        if self.current_update != self.next_update:
            raise PeerMismatch(f"{_rank()}: the optimizer ended update {self.next_update} without a "
                               "codistiller.loss() call in it: call it at every update, on every rank, also during "
                               "the burn-in (its peers would exchange with this rank one update off)")
        self.next_update += 1
        if self.pull_guard is not None:
            self.pull_guard.observe(self.next_update - 1, optimizer, self.alpha_at(self.next_update - 1))

    def _update(self, step, caller):
        """The update of a call: `step`, checked against the count, or the count's (step None)."""
        hooked = self._hook is not None
        if step is None:
            step = self.next_update
        elif not _is_step(step) or step < 0:
            raise ValueError(f"{caller}: step={step!r} is not a whole number >= 0")
        elif self._count_known and step not in (self.current_update, self.next_update):
            skipped = (f"update {self.next_update} had no {caller} call on this rank" if step > self.next_update
                       else f"update {step} came after update {self.current_update}")
            raise PeerMismatch(f"{_rank()}: {caller} at update {step}, but this Codistiller's count is at update "
                               f"{self.next_update}: {skipped} (every rank must call it at every update, once per "
                               "update unless an optimizer given to the Codistiller ends the updates); its peers "
                               "would exchange with it one update off")
        self._count_known = True
        self.current_update = step
        if not hooked:
            self.next_update = step + 1
        elif step != self.next_update:   # the first call of a run resumed without the Codistiller's state
            self.next_update = step
        return step

    def _exchanges_at(self, step):
        """Whether update `step` has teachers: after the burn-in, and, through collectives, where
        alpha is not 0 (every rank computes it alike from the same alpha: all skip together)."""
        return step >= self.burn_in_steps and (self.groups is None or self.alpha(step) != 0)

    @property
    def model_group(self):
        """This rank's model group: the process group of its DDP (gradients are averaged in it);
        through files, the one it was given (None: the default group, or a single rank)."""
        return self.groups.group if self.groups is not None else self.exchange.model_group

    @property
    def teachers(self):
        """The checkpoint teachers (modules in teacher mode); none for a prediction exchange."""
        return getattr(self.exchange, "teachers", [])

    def teacher_ages(self, step):
        """Per peer: updates between `step` and the parameters its teacher holds (None: no
        snapshot of it yet); None for a prediction exchange (its teachers are of the update) and
        for frozen teachers (from_teachers: trained models, of no update of this run)."""
        return self.exchange.teacher_ages(step) if self.exchange.sends == "checkpoints" else None

    def teachers_from_step(self):
        """The update the teachers' parameters come from: one update for checkpoints through
        collectives, the peers' snapshot steps in peer order through files; None before the first
        exchange, for a prediction exchange (its teachers are of the update) and for frozen teachers."""
        return self.exchange.held_steps() if self.exchange.sends == "checkpoints" else None

    def alpha_at(self, step):
        """The weight of the distillation term at update `step`: 0 during the burn-in (before
        `burn_in_steps`), alpha(step) after it. The burn-in is the Codistiller's alone (an
        AlphaSchedule has none): a client logs this as the update's alpha."""
        return 0.0 if step < self.burn_in_steps else self.alpha(step)

    def refresh(self, step):
        """prepare(step) run again, even when it already ran at `step`: at an exchange point the
        peers' parameters travel again (update 0 is one at any period; the benchmarks time one
        checkpoint exchange this way). A collective through collectives: every rank calls it.
        Checkpoint exchanges only (a prediction exchange's logits travel in loss())."""
        if self.exchange.sends != "checkpoints":
            raise ValueError("refresh(step) is for checkpoint exchanges: predictions travel in loss()")
        self.prepared_step = None
        return self._prepare(step)

    def mark_checkpointed(self, step):
        """Through files: this model's state of update `step` is durable (a resumed run restarts
        there), so that pruning keeps the snapshots its peers read again after such a resume
        (SnapshotStore.mark_checkpointed); call it on one rank of the model once the checkpoint is
        written. Nothing to do for the other exchanges (no snapshots)."""
        mark = getattr(self.exchange, "mark_checkpointed", None)
        if mark is not None:
            mark(step)

    def data_parallel(self, **ddp_options):
        """DDP over the model group, with every all_reduce counted in `counter` (the bare model
        when the group has one rank: nothing to average); ddp_options: DDP's other arguments
        (device_ids, find_unused_parameters, ...)."""
        return wrap_data_parallel(self.model, self.groups, self.counter, **ddp_options)

    def count_all_reduce(self, ddp):
        """Counts the all_reduce of a DDP built elsewhere over `model_group` (DDP's own comm hook,
        charging each gradient bucket); returns `ddp`."""
        if self.groups is None:
            raise ValueError("count_all_reduce is for a Codistiller through collectives (its model_group)")
        return count_all_reduce(ddp, self.groups, self.counter)

    def dcp_state(self, optimizer=None, *, model=None):
        """This rank's state of the run for torch.distributed.checkpoint, to pass to dcp.save and
        dcp.load as it is (or merged into a dict of your own): {"model", "optimizer" (when given),
        "codistiller"}, each a Stateful. model: None, the Codistiller's model (or give another
        module, e.g. the DDP around it). DCP keeps one rank's copy of a key every rank holds, which
        would save one of the n models for all: here the model's and the optimizer's state are
        keyed by the model group and the Codistiller's (its count, bits and stale teachers) by the
        rank, so each model is written once and each rank loads its own. Load into a
        Codistiller, model and optimizer built as the saved ones were, on as many ranks."""
        from .dcp_state import dcp_state

        return dcp_state(self, self._group_index, self.model if model is None else model, optimizer,
                         self._paused_count)

    @contextlib.contextmanager
    def _paused_count(self):
        """The optimizer's steps inside do not count as updates (torch's optimizer state
        functions take a zero-gradient step at learning rate 0 to create a fresh optimizer's state)."""
        self._count_paused = True
        try:
            yield
        finally:
            self._count_paused = False

    def evaluate(self, logits, targets, select=None):
        """Each model's top-1, the ensemble's and the model to keep (evaluate_models), from this
        rank's model's `logits` on held-out examples that every rank evaluates alike: the peers
        (one rank of every model) all_gather them, uncounted. A collective over the peers: every
        rank calls it. select: None, or (logits, targets) of this rank's model on the split to
        choose the model on (gathered the same way). Through collectives only."""
        from .evaluate import evaluate_models

        if self.groups is None:
            raise ValueError("Codistiller.evaluate is for a Codistiller through collectives (its peers); "
                             "elsewhere pass every model's logits to evaluate_models")

        def gathered(tensor):
            tensor = tensor.detach().contiguous()
            parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size(self.groups.peers))]
            dist.all_gather(parts, tensor, group=self.groups.peers)
            return parts

        if select is not None:
            select = (gathered(select[0]), select[1])
        return evaluate_models(gathered(logits), targets, select)

    def prepare(self, step):
        """For checkpoint exchanges: publishes and refreshes the teachers of update `step`, once
        per update however often it is called (a client that runs several micro-batches per update
        calls it first). True when the teachers hold the peers to use at `step`."""
        return self._prepare(self._update(step, "prepare()"))

    def _prepare(self, step):
        ready = self._exchanges_at(step)
        if self.prepared_step != step:
            self.exchange.publish(step, self.model)
            if ready:
                if self.peer_check is not None and self.exchange.is_due(step):
                    self.peer_check(step, self.model, wire=self.exchange.wire_description())
                self.exchange.refresh(step, self.model)
            self.prepared_step = step
        return ready

    def teachers_logits(self, step, inputs, logits):
        """The teachers' logits at update `step` (None: the count's) on this batch (`inputs`, the
        student's `logits`); [] when the update has none (burn-in, alpha 0, between prediction
        exchanges). At exchange points it runs a collective over the peers: call it on every rank
        at every update, in the same order."""
        step = self._update(step, "teachers_logits()")
        if self.exchange.sends == "predictions":
            if not self._exchanges_at(step):
                return []
            if self.peer_check is not None and step % self.exchange.period == 0:
                self.peer_check(step, self.model, logits, inputs, wire=self.exchange.wire_description(logits))
            return self.exchange.gather(step, logits)
        if not self._prepare(step):
            return []
        with torch.no_grad():
            return [self.run_teacher(teacher, inputs)
                    for teacher, present in zip(self.teachers, self.exchange.present()) if present]

    def distillation(self, step, logits, teachers, keep=None):
        """(alpha_at(step) x D, D): D the mean over the teachers of the distillation term between
        `logits` and theirs (token-level, over the positions where `keep` holds, when given)."""
        distill = distill_loss(logits, teachers, self.kind, self.temperature, keep=keep)
        if self.collapse_guard is not None:
            self.collapse_guard.observe(step, logits, keep)
        if self.pull_guard is not None:
            self.pull_guard.classes = logits.shape[-1]
        return self.alpha_at(step) * distill, distill

    def loss(self, *args, keep=None, step=None):
        """loss(inputs, logits, keep=None, *, step=None): alpha x the mean over the other models of
        D(logits, their logits) at this update, to add to the supervised loss; a zero tensor on an
        update without teachers. The update is the Codistiller's count, or `step` (0-based),
        checked against it. The earlier form loss(step, inputs, logits, keep=None) is accepted too."""
        if args and _is_step(args[0]):   # loss(step, inputs, logits[, keep])
            if step is not None:
                raise ValueError("loss(): the step is given twice (first argument and step=)")
            step, args = args[0], args[1:]
        if not 2 <= len(args) + (keep is not None) <= 3 or len(args) < 2:
            raise TypeError("loss() takes inputs, logits and keep=None (and step=None by keyword)")
        inputs, logits, keep = (*args, keep) if len(args) == 2 else args
        teachers = self.teachers_logits(step, inputs, logits)
        if not teachers:
            return torch.zeros((), device=logits.device)
        return self.distillation(self.current_update, logits, teachers, keep)[0]

    def state_dict(self):
        """What a resumed run needs: the exchange's state (stale teachers), the bit counts and the
        update count ("next_update": the update a resumed run starts at)."""
        return {"exchange": self.exchange.state_dict(), "inter_node_bits": self.counter.inter_node_bits,
                "intra_node_bits": self.counter.intra_node_bits, "next_update": self.next_update}

    def load_state_dict(self, state):
        """Restores what state_dict() returned (the stale teachers, the bit counts): call it on a
        freshly built Codistiller of the same layout and exchange before the first resumed update.
        Tensors may be loaded with map_location="cpu": they are copied into the teachers in place."""
        self.exchange.load_state_dict(state["exchange"])
        self.counter.inter_node_bits = state["inter_node_bits"]
        self.counter.intra_node_bits = state["intra_node_bits"]
        if state.get("next_update") is not None:   # a state saved without it: the first call sets the count
            self.next_update, self.current_update, self._count_known = state["next_update"], None, True
