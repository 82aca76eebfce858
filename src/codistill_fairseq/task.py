"""`codistill_translation` and `codistill_language_modeling`: fairseq's translation and
language_modeling tasks, with their hooks adapted to the codistill core by one mixin (CodistillHooks).

- train_step: codistillation through the library's Codistiller over files
  (Codistiller.through_files: every `exchange_period` updates the group leader publishes the
  parameters, every rank reads its peers' snapshots into its teachers, lock-step or async),
  counted in a codistill.CommCounter with the group's gradient all_reduce; the criterion asks the
  Codistiller for the teachers' logits on the model's own batch and for the distillation term.
  alpha has one owner, the Codistiller: its alpha is the task's schedule (--codistill-alpha,
  --alpha-schedule, --alpha-gamma: a codistill.AlphaSchedule per completed epoch), its alpha_at adds
  the burn-in, and both the distillation term and the records read alpha_at.
- get_batch_iterator: coordinated sampling (`data_order_seed`): every model reads the training data
  in the same order while its parameters are initialised (and its dropout drawn) from its own --seed.
- reduce_metrics / post_validate: the run's records (codistill_experiments.translation.records): after each
  validation the group leader appends one `eval` record to <codistill_dir>/model<i>/evals.jsonl.
- state_dict / the first train_step: resume. fairseq restores the model and optimizer from
  checkpoint_last.pt; what the task adds (bits counted, elapsed time, teachers' steps) is written
  beside each checkpoint in <codistill_dir>/model<i>/task_state/step<s>.json and read back; at the
  update after a save, checkpoint_last.pt's sha256 goes to <codistill_dir>/model<i>/checkpoint_last.json,
  which the launcher checks it against before a resume.
"""
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from fairseq import models
from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from fairseq.tasks import register_task
from fairseq.tasks.language_modeling import LanguageModelingConfig, LanguageModelingTask
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from codistill import DISTILL_LOSSES, SNAPSHOT_MODES, AlphaSchedule, Codistiller, CommCounter, SnapshotStore
from codistill.internals import param_hash
from codistill_experiments.names import TRANSLATION_ALPHA_SCHEDULES
from codistill_experiments.run_state import codistiller_state
from codistill_experiments.runlog import append_record, keep_records
from codistill_experiments.translation.checkpoints import record_checkpoint
from codistill_experiments.translation.records import (
    EvalSums,
    TaskStateFiles,
    epoch_fraction,
    eval_record,
    progress_line,
)

logger = logging.getLogger(__name__)


@dataclass
class CodistillConfig(FairseqDataclass):
    """The codistillation settings of either task."""
    codistill_dir: Optional[str] = field(default=None, metadata={
        "help": "directory shared by the codistilled models (snapshots, per-model records)"})
    model_index: int = field(default=0, metadata={"help": "this model's index i in 0..n-1"})
    n_models: int = field(default=1, metadata={"help": "n: models trained together"})
    exchange_period: int = field(default=0, metadata={
        "help": "T: exchange checkpoints every T updates (0: no exchange, no distillation)"})
    snapshot_mode: ChoiceEnum(SNAPSHOT_MODES) = field(default="lockstep", metadata={
        "help": "lockstep: read the peers' snapshot of step floor(s/T)*T, waiting for it; async: the newest"})
    exchange_timeout: float = field(default=1800.0, metadata={
        "help": "seconds to wait for a peer's snapshot before failing"})
    burn_in_updates: int = field(default=0, metadata={"help": "no exchange and alpha = 0 before this update"})
    codistill_alpha: float = field(default=1.0, metadata={"help": "alpha_0: weight of the distillation term"})
    alpha_schedule: ChoiceEnum(TRANSLATION_ALPHA_SCHEDULES) = field(
        default="constant", metadata={"help": "constant, or exponential: alpha_0 * gamma^(epochs done)"})
    alpha_gamma: float = field(default=1.1, metadata={"help": "gamma of the exponential alpha schedule"})
    distill_loss: ChoiceEnum(DISTILL_LOSSES) = field(default="mse", metadata={
        "help": "the distillation term D: mse between logits (the paper's), kl or soft_ce (softened by "
                "--distill-temperature)"})
    distill_temperature: float = field(default=1.0, metadata={"help": "softmax temperature of kl / soft_ce"})
    data_order_seed: Optional[int] = field(default=None, metadata={
        "help": "seed of the training data order (coordinated sampling); default: --seed"})
    group_spans_nodes: bool = field(default=False, metadata={
        "help": "this model's ranks span several nodes: its gradient all_reduce counts as traffic between nodes"})
    trace: bool = field(default=False, metadata={"help": "write per-update parameter hashes (tests)"})
    progress_tag: str = field(default="", metadata={"help": "prefix of the one-line progress reports"})


def unwrapped(model):
    while hasattr(model, "module"):
        model = model.module
    return model


@dataclass
class CodistillTranslationConfig(TranslationConfig, CodistillConfig):
    pass


@dataclass
class CodistillLanguageModelingConfig(LanguageModelingConfig, CodistillConfig):
    pass


class CodistillHooks:
    """The hooks of a fairseq task that trains through the codistill core; put before the fairseq
    task class in the bases (its methods call the task's own through super())."""

    def __init__(self, cfg, *args, **kwargs):
        super().__init__(cfg, *args, **kwargs)
        self.codistill_cfg = cfg  # fairseq's legacy tasks (language_modeling) keep it as self.args
        self.index, self.n_models, self.period = cfg.model_index, cfg.n_models, cfg.exchange_period
        self.burn_in_updates = cfg.burn_in_updates
        self.alpha = AlphaSchedule(float(cfg.codistill_alpha), str(cfg.alpha_schedule), gamma=float(cfg.alpha_gamma))
        self.peers = [j for j in range(self.n_models) if j != self.index]
        self.directory = Path(cfg.codistill_dir) if cfg.codistill_dir else None
        self.store = SnapshotStore(self.directory / "exchange") if self.directory else None
        self.codistiller = None  # built at the first update: its teachers take the model's device and dtype
        self.teachers_active = False
        self.counter = CommCounter()
        self.epoch, self.update, self.updates_done = 1, 0, 0
        self.last_label_smoothing, self.lr = None, None
        self.elapsed_before, self.started = 0.0, time.monotonic()
        self.sums, self.phase = EvalSums(), "train"
        self.epoch_start = {}
        self.updates_per_epoch = None
        self.first_step = True
        self.model_cfg = None
        self.saved_step = None

    # -- fairseq hooks -------------------------------------------------------------------------
    def build_model(self, cfg, from_checkpoint=False):
        model = super().build_model(cfg, from_checkpoint)
        self.model_cfg = cfg
        return model

    def begin_epoch(self, epoch, model):
        super().begin_epoch(epoch, model)
        self.epoch = epoch

    def get_batch_iterator(self, dataset, **kwargs):
        training = dataset is self.datasets.get(getattr(self.codistill_cfg, "train_subset", "train"))
        if training and self.codistill_cfg.data_order_seed is not None:
            kwargs["seed"] = self.codistill_cfg.data_order_seed
        if training:
            # fairseq 0.12.3.1 orders the sentences it cuts into batches with numpy seed + the epoch the
            # iterator is built at: 1 in a fresh run, the checkpoint's epoch in a resumed one, whose
            # batches would then differ. Build them as a fresh run does; fairseq then restores the
            # iterator's epoch and position from the checkpoint (EpochBatchIterator.load_state_dict).
            kwargs["epoch"] = 1
        iterator = super().get_batch_iterator(dataset, **kwargs)
        if training:
            self.updates_per_epoch = len(iterator)
        return iterator

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False):
        if self.first_step:
            self.first_step = False
            self._start(update_num, model, criterion)
        self.update, self.updates_done, self.phase = update_num, update_num + 1, "train"
        self.lr = optimizer.get_lr()
        if self.saved_step is not None and self._is_leader():   # fairseq finished writing it
            # its sha256, which a resume checks the checkpoint against (translation/checkpoints.py)
            record_checkpoint(self._model_dir(), self.saved_step)
            if self.codistiller is not None:
                self.codistiller.mark_checkpointed(self.saved_step)
        self.saved_step = None
        self.epoch_start.setdefault(self.epoch, update_num)
        # fairseq calls train_step once per micro-batch of an update: prepare does its work once
        self.teachers_active = self.codistiller is not None and self.codistiller.prepare(update_num)
        if self.codistill_cfg.trace and self._is_leader():
            self._trace(model, update_num)
        result = super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            # the group's gradient all_reduce, as Sec. 3 counts it: 2 x the all-reduced gradients per device
            self.counter.charge_gradient_all_reduce(unwrapped(model), self.codistill_cfg.group_spans_nodes)
        return result

    def valid_step(self, sample, model, criterion):
        self.phase = "valid"
        return super().valid_step(sample, model, criterion)

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        self.sums.add(self.phase, logging_outputs)

    def post_validate(self, model, stats, agg):
        record = self._record(stats["num_updates"])
        if self.directory is not None and self._is_leader():
            append_record(self._model_dir() / "evals.jsonl", record)
            self._report(record)
        self.sums.reset()

    def state_dict(self):
        """Called while fairseq saves a checkpoint: the task's share of the run state goes beside it."""
        if self.directory is not None and self._is_leader():
            self._state_files().save(self.updates_done, {
                "step": self.updates_done, "elapsed": self._elapsed(),
                "inter_node_bits": self.counter.inter_node_bits, "intra_node_bits": self.counter.intra_node_bits,
                "codistiller": self.codistiller.state_dict() if self.codistiller else None})
            self.saved_step = self.updates_done  # durable once training goes on (see train_step)
        return super().state_dict()

    # -- codistillation --------------------------------------------------------------------------
    def scheduled_alpha(self, update):
        """The alpha schedule at `update` of the current epoch, without the burn-in: the
        Codistiller's alpha (its alpha_at adds the burn-in)."""
        return self.alpha.at(update, self.epoch - 1)

    def _build_codistiller(self, model, criterion):
        """The library's codistillation through the run directory's snapshot files, weighted by
        the task's alpha schedule; a teacher runs on the batch's net_input as fairseq's models do."""
        leader = self._is_leader()
        return Codistiller.through_files(
            unwrapped(model), self.store, self.index, self.n_models, self.period, alpha=self.scheduled_alpha,
            loss=str(self.codistill_cfg.distill_loss), temperature=self.codistill_cfg.distill_temperature,
            burn_in_steps=self.burn_in_updates,
            make_teacher=lambda peer: models.build_model(self.model_cfg, self),
            mode=str(self.codistill_cfg.snapshot_mode), timeout_s=self.codistill_cfg.exchange_timeout,
            counter=self.counter, publish=leader, crosses_nodes=True,
            prune=leader, run_teacher=lambda teacher, net_input: teacher(**net_input)[0],
            model_group=torch.distributed.group.WORLD if torch.distributed.is_initialized() else None)

    # -- bookkeeping -----------------------------------------------------------------------------
    def _is_leader(self):
        """Rank 0 of this model's group (each model group is its own fairseq world)."""
        return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0

    def _model_dir(self):
        folder = self.directory / f"model{self.index}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _state_files(self):
        return TaskStateFiles(self._model_dir() / "task_state")

    def _elapsed(self):
        return self.elapsed_before + time.monotonic() - self.started

    def _start(self, step, model, criterion):
        """First update of this process: a fresh run (step 0) or a resume from fairseq's
        checkpoint_last.pt at `step`. Drops what a crashed attempt wrote after that step."""
        if self.store is not None and self.period > 0 and self.peers:
            self.codistiller = self._build_codistiller(model, criterion)
        if self.directory is None:
            return
        if step > 0:
            state = self._state_files().load(step)
            self.elapsed_before = state["elapsed"]
            self.counter.inter_node_bits = state["inter_node_bits"]
            self.counter.intra_node_bits = state["intra_node_bits"]
            saved = codistiller_state(state, "exchange")   # a state file written before: its exchange's state
            if self.codistiller is not None and saved is not None and saved["exchange"] is not None:
                # The teachers are read again (they are not in fairseq's checkpoint); re-reading what the
                # interrupted run held is not new traffic.
                self.codistiller.load_state_dict(saved)
        if self._is_leader():
            keep_records(self._model_dir() / "evals.jsonl", lambda record: record["step"] <= step)
            keep_records(self._model_dir() / "trace.jsonl", lambda record: record["step"] < step)

    def _record(self, step):
        start = self.epoch_start.get(self.epoch, step)
        return eval_record(
            self.sums, step, epoch_fraction(self.epoch, start, self.updates_per_epoch, step), self.index,
            # the alpha of the last update trained (no epoch begins between it and this record)
            alpha=self.codistiller.alpha_at(self.update) if self.codistiller is not None else 0.0,
            label_smoothing=self.last_label_smoothing, lr=self.lr,
            teachers_from_step=self.codistiller.teachers_from_step() if self.codistiller else None,
            counter=self.counter, wall_time=self._elapsed())

    def _report(self, record):
        line = progress_line(record, self.codistill_cfg.progress_tag)
        fd = os.environ.get("CODISTILL_PROGRESS_FD")
        if fd:
            os.write(int(fd), line.encode())
        else:
            logger.info(line.strip())

    def _trace(self, model, step):
        entry = {"kind": "trace", "step": step, "own": param_hash(unwrapped(model)),
                 "rng": hashlib.sha1(torch.get_rng_state().numpy().tobytes()).hexdigest()[:12]}
        if self.teachers_active:
            entry["teachers"] = [param_hash(teacher) for teacher in self.codistiller.teachers]
            entry["teachers_from_step"] = self.codistiller.teachers_from_step()
        append_record(self._model_dir() / "trace.jsonl", entry)


@register_task("codistill_translation", dataclass=CodistillTranslationConfig)
class CodistillTranslationTask(CodistillHooks, TranslationTask):
    pass


@register_task("codistill_language_modeling", dataclass=CodistillLanguageModelingConfig)
class CodistillLanguageModelingTask(CodistillHooks, LanguageModelingTask):
    pass
