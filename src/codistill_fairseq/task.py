"""`codistill_translation`: fairseq's translation task, plus what a codistilled model needs.

- Checkpoint exchange (codistill/snapshots.py): every `exchange_period` updates the model's group leader
  writes its parameters under <codistill_dir>/exchange/model<i>/, and every rank loads its peers'
  snapshots into stale teacher copies (lock-step: step floor(s/T)*T exactly; async: the newest);
  the criterion runs the teachers on the model's own batch.
- Coordinated sampling (`data_order_seed`): every model reads the training data in the same order
  while its parameters are initialised (and its dropout drawn) from its own `--seed`.
- The run's records: after each validation the group leader appends one `eval` record to
  <codistill_dir>/model<i>/evals.jsonl (exact sums over the group's ranks, not smoothed meters).
- Resume: fairseq restores the model and optimizer from checkpoint_last.pt; what the task adds
  (bits received, elapsed time, teachers' steps) is written beside each checkpoint in
  <codistill_dir>/model<i>/task_state/step<s>.json and read back on the first update.
"""
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from fairseq import models
from fairseq.dataclass import ChoiceEnum
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationConfig, TranslationTask

from codistill.snapshots import MODES, PeerReader, SnapshotStore, tensor_bits

logger = logging.getLogger(__name__)
SUMS = ("loss", "ce_loss", "nll_loss", "distill", "ntokens", "nsentences", "sample_size")


@dataclass
class CodistillTranslationConfig(TranslationConfig):
    codistill_dir: Optional[str] = field(default=None, metadata={
        "help": "directory shared by the codistilled models (snapshots, per-model records)"})
    model_index: int = field(default=0, metadata={"help": "this model's index i in 0..n-1"})
    n_models: int = field(default=1, metadata={"help": "n: models trained together"})
    exchange_period: int = field(default=0, metadata={
        "help": "T: exchange checkpoints every T updates (0: no exchange, no distillation)"})
    exchange_mode: ChoiceEnum(MODES) = field(default="lockstep", metadata={
        "help": "lockstep: read the peers' snapshot of step floor(s/T)*T, waiting for it; async: the newest"})
    exchange_timeout: float = field(default=1800.0, metadata={
        "help": "seconds to wait for a peer's snapshot before failing"})
    burn_in_updates: int = field(default=0, metadata={"help": "no exchange and alpha = 0 before this update"})
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


def parameters_of(model):
    return {name: p.detach() for name, p in unwrapped(model).named_parameters()}


def tensors_hash(tensors):
    digest = hashlib.sha1()
    for name in sorted(tensors):
        digest.update(tensors[name].detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def _append_line(path, record):
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _write_json(path, value):
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value))
    os.replace(temporary, path)


def _task_state_files(folder):
    return [(int(path.stem[len("step"):]), path) for path in folder.glob("step*.json")]


def _keep_lines(path, keep):
    """Rewrites a JSON-lines file with the records for which keep(record) holds (a torn last line,
    left by a crash, is dropped)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if keep(record):
            kept.append(line + "\n")
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(kept))
    os.replace(temporary, path)


@register_task("codistill_translation", dataclass=CodistillTranslationConfig)
class CodistillTranslationTask(TranslationTask):
    def __init__(self, cfg, src_dict, tgt_dict):
        super().__init__(cfg, src_dict, tgt_dict)
        self.index, self.n_models, self.period = cfg.model_index, cfg.n_models, cfg.exchange_period
        self.mode, self.burn_in_updates = str(cfg.exchange_mode), cfg.burn_in_updates
        self.peers = [j for j in range(self.n_models) if j != self.index]
        self.directory = Path(cfg.codistill_dir) if cfg.codistill_dir else None
        self.store = SnapshotStore(self.directory / "exchange") if self.directory else None
        self.reader = (PeerReader(self.store, self.peers, self.period, self.mode, cfg.exchange_timeout)
                       if self.store is not None and self.period > 0 and self.peers else None)
        self.epoch, self.update, self.updates_done = 1, 0, 0
        self.last_alpha, self.last_label_smoothing, self.lr = None, None, None
        self.teachers = []
        self.teachers_active = False
        self.bits_received, self.allreduce_bits, self.elapsed_before = 0, 0, 0.0
        self.started = time.monotonic()
        self.published_step = None
        self.sums = {phase: dict.fromkeys(SUMS, 0.0) for phase in ("train", "valid")}
        self.train_updates, self.phase = 0, "train"
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
        training = dataset is self.datasets.get(self.cfg.train_subset)
        if training and self.cfg.data_order_seed is not None:
            kwargs["seed"] = self.cfg.data_order_seed
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
            self._start(update_num)
        self.update, self.updates_done, self.phase = update_num, update_num + 1, "train"
        self.lr = optimizer.get_lr()
        if self.saved_step is not None and self.store is not None and self._is_leader():
            self.store.mark_checkpointed(self.index, self.saved_step)  # fairseq finished writing it
        self.saved_step = None
        self.epoch_start.setdefault(self.epoch, update_num)
        self.teachers_active = False
        if self.reader is not None:
            self._exchange(model, update_num)
        if self.cfg.trace and self._is_leader():
            self._trace(model, update_num)
        result = super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)
        if torch.distributed.is_initialized() and torch.distributed.get_world_size() > 1:
            # the group's gradient all_reduce, as Sec. 3 counts it: 2 x the all-reduced gradients per device
            self.allreduce_bits += 2 * sum(p.numel() * p.element_size() * 8
                                           for p in unwrapped(model).parameters() if p.requires_grad)
        return result

    def valid_step(self, sample, model, criterion):
        self.phase = "valid"
        return super().valid_step(sample, model, criterion)

    def reduce_metrics(self, logging_outputs, criterion):
        super().reduce_metrics(logging_outputs, criterion)
        sums = self.sums[self.phase]
        for key in SUMS:
            sums[key] += float(sum(log.get(key, 0) for log in logging_outputs))
        if self.phase == "train":
            self.train_updates += 1

    def post_validate(self, model, stats, agg):
        record = self._record(stats["num_updates"])
        if self.directory is not None and self._is_leader():
            _append_line(self._model_dir() / "evals.jsonl", record)
            self._report(record)
        self.sums = {phase: dict.fromkeys(SUMS, 0.0) for phase in ("train", "valid")}
        self.train_updates = 0

    def state_dict(self):
        """Called while fairseq saves a checkpoint: the task's share of the run state goes beside it
        (the newest three are kept)."""
        if self.directory is not None and self._is_leader():
            state = {"step": self.updates_done, "bits_received": self.bits_received,
                     "allreduce_bits": self.allreduce_bits, "elapsed": self._elapsed(),
                     "teacher_steps": self.reader.steps if self.reader else None}
            folder = self._model_dir() / "task_state"
            folder.mkdir(parents=True, exist_ok=True)
            _write_json(folder / f"step{self.updates_done}.json", state)
            for _, old in sorted(_task_state_files(folder))[:-3]:
                old.unlink(missing_ok=True)
            self.saved_step = self.updates_done  # durable once training goes on (see train_step)
        return super().state_dict()

    # -- teachers --------------------------------------------------------------------------------
    def teacher_logits(self, sample):
        if not self.teachers_active:
            return []
        with torch.no_grad():
            return [teacher(**sample["net_input"])[0] for teacher in self.teachers]

    def _make_teachers(self, model):
        reference = next(unwrapped(model).parameters())
        devices = [reference.device] if reference.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the student's own random stream is untouched
            self.teachers = [models.build_model(self.model_cfg, self).to(device=reference.device, dtype=reference.dtype)
                             for _ in self.peers]
        for teacher in self.teachers:
            teacher.eval().requires_grad_(False)

    def _load_teacher(self, slot, step, tensors):
        # a copy: fairseq's load_state_dict upgrades the dict it is given in place (adds tied weights)
        missing, unexpected = self.teachers[slot].load_state_dict(dict(tensors), strict=False)
        names = {name for name, _ in self.teachers[slot].named_parameters()}
        if unexpected or names & set(missing):
            raise RuntimeError(f"model {self.peers[slot]}'s snapshot of update {step} does not fit this model "
                               f"(missing {sorted(names & set(missing))}, unexpected {unexpected})")

    def _exchange(self, model, step):
        if step % self.period == 0 and self.published_step != step:
            if self._is_leader():
                self.store.publish(self.index, step, parameters_of(model))
                self._prune()
            self.published_step = step
        if step < self.burn_in_updates:
            return
        if not self.teachers:
            self._make_teachers(model)
        for slot, source, tensors, counted in self.reader.refresh(step):
            if counted:
                self.bits_received += tensor_bits(tensors)
            self._load_teacher(slot, source, tensors)
        self.teachers_active = True

    def _prune(self):
        """Removes this model's snapshots that no peer can need any more: a peer restarts at its
        last checkpoint c at the earliest and then reads steps from floor(c/T)*T on."""
        oldest_resume = min(self.store.checkpointed(model) for model in range(self.n_models))
        self.store.prune(self.index, oldest_resume // self.period * self.period)

    # -- bookkeeping -----------------------------------------------------------------------------
    def _is_leader(self):
        """Rank 0 of this model's group (each model group is its own fairseq world)."""
        return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0

    def _model_dir(self):
        folder = self.directory / f"model{self.index}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _elapsed(self):
        return self.elapsed_before + time.monotonic() - self.started

    def _start(self, step):
        """First update of this process: a fresh run (step 0) or a resume from fairseq's
        checkpoint_last.pt at `step`. Drops what a crashed attempt wrote after that step."""
        if self.directory is None:
            return
        if step > 0:
            state = self._task_state(step)
            self.bits_received, self.elapsed_before = state["bits_received"], state["elapsed"]
            self.allreduce_bits = state["allreduce_bits"]
            if self.reader is not None and state["teacher_steps"] is not None:
                # The teachers are read again (they are not in fairseq's checkpoint); re-reading what the
                # interrupted run held is not new traffic.
                self.reader.resume(state["teacher_steps"])
        if self._is_leader():
            _keep_lines(self._model_dir() / "evals.jsonl", lambda record: record["step"] <= step)
            _keep_lines(self._model_dir() / "trace.jsonl", lambda record: record["step"] < step)

    def _task_state(self, step):
        folder = self._model_dir() / "task_state"
        saved = sorted(_task_state_files(folder)) if folder.exists() else []
        usable = [path for saved_step, path in saved if saved_step <= step]
        if not usable:
            raise RuntimeError(f"resuming at update {step} but {folder} holds no task state of that update or before")
        return json.loads(usable[-1].read_text())

    def _epoch_fraction(self, step):
        start = self.epoch_start.get(self.epoch, step)
        if not self.updates_per_epoch:
            return float(self.epoch)
        return self.epoch - 1 + (step - start) / self.updates_per_epoch

    def _record(self, step):
        train, valid = self.sums["train"], self.sums["valid"]
        per_token = lambda sums, key: sums[key] / sums["ntokens"] / math.log(2) if sums["ntokens"] else None  # noqa
        per_sample = lambda sums, key: sums[key] / sums["sample_size"] if sums["sample_size"] else None  # noqa
        val_nll = per_token(valid, "nll_loss")
        return {
            "kind": "eval",
            "step": step,
            "epoch": self._epoch_fraction(step),
            "model": self.index,
            "train_loss": per_token(train, "nll_loss"),
            "train_smoothed_loss": per_sample(train, "ce_loss") / math.log(2) if train["sample_size"] else None,
            "train_distill_loss": per_sample(train, "distill"),
            "val_nll": val_nll,
            "val_loss": val_nll,
            "val_ppl": 2.0 ** val_nll if val_nll is not None else None,
            "alpha": self.last_alpha if self.n_models > 1 and self.period > 0 else 0.0,
            "label_smoothing": self.last_label_smoothing,
            "lr": self.lr,
            "tokens_per_update": train["ntokens"] / self.train_updates if self.train_updates else None,
            "teachers_from_step": list(self.reader.steps) if self.reader and self.teachers else None,
            "comm_bits_inter_node": self.bits_received + (self.allreduce_bits if self.cfg.group_spans_nodes else 0),
            "comm_bits_intra_node": 0 if self.cfg.group_spans_nodes else self.allreduce_bits,
            "wall_time": self._elapsed(),
        }

    def _report(self, record):
        line = (f"{self.cfg.progress_tag}model {self.index}: update {record['step']} (epoch {record['epoch']:.2f}) "
                f"val_nll {record['val_nll']:.3f} train_loss {record['train_loss'] or float('nan'):.3f} "
                f"alpha {record['alpha'] or 0:.3g} bits {record['comm_bits_inter_node']:.3g}\n")
        fd = os.environ.get("CODISTILL_PROGRESS_FD")
        if fd:
            os.write(int(fd), line.encode())
        else:
            logger.info(line.strip())

    def _trace(self, model, step):
        entry = {"step": step, "own": tensors_hash(parameters_of(model)),
                 "rng": hashlib.sha1(torch.get_rng_state().numpy().tobytes()).hexdigest()[:12]}
        if self.teachers_active:
            entry["teachers"] = [tensors_hash(parameters_of(t)) for t in self.teachers]
            entry["teachers_from_step"] = list(self.reader.steps)
        _append_line(self._model_dir() / "trace.jsonl", entry)
