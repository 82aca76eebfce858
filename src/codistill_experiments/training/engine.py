"""The training loop of one rank: n model groups trained at once, all_reduce inside a group (DDP),
codistillation between groups (Algorithm 1 of the paper) through the library's Codistiller. With
method.transport=files each model group is its own job (model_jobs.py): its world holds its own
ranks only, and its teachers come through files."""
import contextlib
import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from codistill import Codistiller, CommCounter, SnapshotStore, make_process_groups
from codistill.internals import ProcessGroups, flat_parameters, param_hash

from .. import model_jobs, run_state, runlog
from ..baselines.methods import build_method, sampling_layout
from ..divergence import divergence
from ..progress import Progress
from ..run_schedules import run_schedules
from ..seeds import model_seed
from ..time_split import TimeSplit
from ..workloads import build_workload
from . import two_phase
from .evaluation import N_STATS, TRAIN_CE, TRAIN_DISTILL, TrainLosses, evaluate, gather_stats, records, save_predictions
from .sampling import (
    CoordinatedBatchSampler,
    EvalShardSampler,
    batch_source,
    data_subset,
    held_out_split,
    loader_options,
    model_shard,
)
from .supervised import SupervisedLoss


def model_spec(cfg, group):
    """Model group `group`'s own settings: its index (the multi-view split it sees) and
    workload.models[group] when given (e.g. its architecture, Figs. 14-15)."""
    models = cfg.workload.models
    return {"index": group, **(dict(models[group]) if models else {})}


def order_seed(cfg, group):
    base = cfg.data.order_seed if cfg.data.order_seed is not None else cfg.seed
    return base if cfg.method.coordinated_sampling else base * 1000 + group


@dataclass
class RankState:
    cfg: object
    layout: object
    device: torch.device
    groups: object
    model: torch.nn.Module
    trainable: torch.nn.Module  # the model, or its DDP wrapper
    initial_params: torch.Tensor
    counter: CommCounter
    codistiller: Codistiller = None   # None: the method does not codistil (all_reduce, independent, methods.py's)
    method: object = None             # methods.py: wraps the model, may hook the optimizer, has state
    supervised: SupervisedLoss = None  # the supervised term (supervised.py); build_rank_state sets it
    logged: dict = None               # what every eval record of this run adds (two_phase: teacher_steps)


_NO_AUTOCAST = contextlib.nullcontext()


class Precision:
    """workload.amp: float16 autocast with loss scaling on GPU, bfloat16 autocast on CPU.
    Without it, plain float32 with no autocast context and no scaler calls at all: even disabled,
    they cost ~8 us per update, 2 % of a digits MLP's update (measured with benchmarks' part 4).
    The scaler exists either way (disabled): its state_dict is part of a saved state.
    clip_norm (schedule.clip_norm): between the backward pass and the step, the gradient of the
    optimizer's parameters is rescaled to that norm at most (torch's clip_grad_norm_, unscaled
    first under loss scaling); after DDP's all_reduce, so every rank of a model clips alike."""

    def __init__(self, enabled, device, clip_norm=None):
        self.enabled, self.device_type, self.clip_norm = enabled, device.type, clip_norm
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        # as a run's header names it: the autocast dtype with loss scaling on GPU, else float32
        self.name = (("float16 autocast, loss scaling" if device.type == "cuda" else "bfloat16 autocast")
                     if enabled else "float32")
        self.scaler = torch.amp.GradScaler(device.type, enabled=enabled and device.type == "cuda")
        self.scaling = self.scaler.is_enabled()

    def autocast(self):
        if not self.enabled:
            return _NO_AUTOCAST
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward_and_step(self, loss, optimizer):
        if not self.scaling:  # what a disabled scaler's scale/step/update amount to
            loss.backward()
            self.clip(optimizer)
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        if self.clip_norm is not None:
            self.scaler.unscale_(optimizer)
            self.clip(optimizer)
        self.scaler.step(optimizer)
        self.scaler.update()

    def clip(self, optimizer):
        if self.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]],
                                           self.clip_norm)


@dataclass(frozen=True)
class LoopSettings:
    """What the training loop needs from the config, read once as plain values (an OmegaConf
    lookup costs microseconds: nothing in the loop reads the config per update)."""
    total_steps: int
    steps_per_epoch: int
    eval_every: int        # updates between evaluations (and committed states)
    channels_last: bool
    amp: bool
    loader_workers: int
    clip_norm: float = None   # schedule.clip_norm: None, no clipping


def updates_between_evaluations(every_epochs, steps_per_epoch):
    """eval_every_epochs in updates: the nearest whole number, at least one. A fraction lets runs whose
    epochs differ in updates be evaluated at the same updates (the frontier's codistilled models, whose
    epoch of their own data is 8 of all_reduce's)."""
    return max(1, round(every_epochs * steps_per_epoch))


def loop_settings(cfg, schedules):
    workload = cfg.workload
    return LoopSettings(total_steps=schedules.total_steps, steps_per_epoch=schedules.steps_per_epoch,
                        eval_every=updates_between_evaluations(cfg.eval_every_epochs, schedules.steps_per_epoch),
                        channels_last=workload.get("channels_last", False),   # the GPU workloads have these keys
                        amp=workload.get("amp", False), loader_workers=workload.loader_workers,
                        clip_norm=cfg.schedule.clip_norm)


def train_step(state, optimizer, precision, schedules, step, batch, trace):
    """One update of this rank's model (Algorithm 1, line 4). Returns its (supervised, distill)
    losses, detached, on the device (no host synchronisation per update); distill is None when
    the update had no teachers."""
    inputs, targets = batch
    lr, weight_decay = schedules.lr(step), schedules.weight_decay(step)
    for group in optimizer.param_groups:
        group["lr"], group["weight_decay"] = lr, weight_decay
    with precision.autocast():
        logits = state.trainable(inputs)
        codistiller = state.codistiller
        teachers = codistiller.teachers_logits(step, inputs, logits) if codistiller else []
        if trace:
            write_trace(trace, state, step, bool(teachers), inputs)
        loss = supervised = state.supervised(logits, targets)
        distill = None
        if teachers:
            weighted, distill = codistiller.distillation(step, logits, teachers)
            loss = supervised + weighted
    optimizer.zero_grad(set_to_none=True)
    precision.backward_and_step(loss, optimizer)
    return supervised.detach(), None if distill is None else distill.detach()


def model_job_groups(layout):
    """The process groups of a rank whose world is its own model group (method.transport=files):
    DDP over that world, no peers in it."""
    return ProcessGroups(group=dist.group.WORLD, peers=None,
                         group_spans_nodes=layout.spans_nodes(layout.group_ranks(layout.group_index)),
                         peers_span_nodes=True)


def build_rank_state(cfg, layout, workload, device, schedules, run_directory=None, train_set=None):
    """This rank's model, process groups, bit counter, method, codistillation and supervised
    term. schedules: the run's (run_schedules), whose alpha the codistillation applies: a
    benchmark that builds a rank here trains the alpha its run would, workload.alpha_scale
    included. run_directory: where a file transport keeps its snapshots (method.transport=files).
    train_set: whose class frequencies a unigram label smoothing prior is (by default the
    workload's training set; train_rank passes the one it trains on, before data.split's shards)."""
    groups = (model_job_groups(layout) if model_jobs.uses_files(cfg)
              else make_process_groups(layout, timedelta(seconds=cfg.launcher.collective_timeout_s)))
    group = layout.group_index
    init_group = sampling_layout(cfg.method, layout).group_index  # local SGD, DiLoCo: model 0's init
    if cfg.method.name == "two_phase":   # a student starts from none of its teachers' initialisations
        init_group += layout.n_groups
    init_seed = cfg.init_seed if cfg.init_seed is not None else model_seed(cfg.seed, init_group)
    memory_format = torch.channels_last if cfg.workload.get("channels_last", False) else torch.preserve_format
    model = workload.make_model(init_seed, model_spec(cfg, group)).to(device, memory_format=memory_format)
    # batch statistics over the model's whole batch, not each GPU's share (torch's SyncBatchNorm
    # runs on GPUs only: a CPU run keeps each rank's own statistics)
    batchnorm_group = (groups.group if cfg.workload.get("sync_batchnorm", False) and layout.ranks_per_group > 1
                       and device.type == "cuda" else None)
    if batchnorm_group is not None:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group=batchnorm_group)
    counter = CommCounter()
    method = build_method(cfg.method, layout, groups, counter)
    return RankState(cfg, layout, device, groups, model, method.wrap(model), flat_parameters(model).clone(), counter,
                     codistiller=build_codistiller(cfg, layout, groups, counter, model, workload, memory_format,
                                                   schedules.alpha, run_directory, batchnorm_group),
                     method=method,
                     supervised=SupervisedLoss.from_config(cfg.supervised, workload.num_classes,
                                                           workload.train_set if train_set is None else train_set),
                     # the teachers have finished before a student starts: their updates, read once
                     logged={"teacher_steps": two_phase.teacher_steps(cfg)} if cfg.method.name == "two_phase" else {})


def build_codistiller(cfg, layout, groups, counter, model, workload, memory_format, alpha, run_directory=None,
                      batchnorm_group=None):
    """The run's codistillation from method.* (None when its method does not codistil).
    alpha: the run's alpha schedule (a function of the update). batchnorm_group: the process group
    the model's batch norms synchronise over (SyncBatchNorm), which its teachers' then do too."""
    method = cfg.method
    if method.name not in ("codistill", "two_phase"):
        return None

    def make_teacher(peer):
        teacher = workload.make_model(0, model_spec(cfg, peer)).to(memory_format=memory_format)
        if batchnorm_group is not None:
            # A teacher normalises as the peer it stands for trained: with the statistics of the whole
            # batch of this model's ranks (the same batch as the peer's under coordinated sampling),
            # not with one GPU's share of it.
            teacher = torch.nn.SyncBatchNorm.convert_sync_batchnorm(teacher, process_group=batchnorm_group)
        return teacher

    if method.name == "two_phase":
        return two_phase.distill_from_teachers(cfg, model, make_teacher, alpha, counter)
    if model_jobs.uses_files(cfg):
        # separate jobs start when the queue lets them: a wait counts from the peer's start
        store = SnapshotStore(model_jobs.exchange_directory(run_directory), start_timeout_s=method.peer_start_timeout_s)
        return Codistiller.through_files(
            model, store, layout.group_index, layout.n_groups,
            period=method.period, alpha=alpha, loss=method.loss,
            temperature=method.temperature, burn_in_steps=method.burn_in_steps,
            make_teacher=make_teacher, mode=method.snapshot_mode, timeout_s=method.snapshot_timeout_s,
            counter=counter, publish=layout.rank_in_group == 0, crosses_nodes=True, prune=True, model_group=groups.group)
    return Codistiller(model, layout, exchange=method.exchange, period=method.period,
                       alpha=alpha,
                       loss=method.loss, temperature=method.temperature, burn_in_steps=method.burn_in_steps,
                       prediction_bits=method.prediction_bits, make_teacher=make_teacher,
                       groups=groups, counter=counter, prediction_topk=method.prediction_topk,
                       checkpoint_bits=method.checkpoint_bits, checkpoint_delta_fraction=method.checkpoint_delta_fraction,
                       peer_check_every=peer_check_every(model))


def peer_check_every(model):
    """The library's peer check on GPUs, where its one small all_gather per exchange is a sliver
    of an update; off on CPU, where gloo's all_gather costs about a millisecond, a large share of
    a mini update (benchmarks/bench_peer_check.py), and the tests check the mini runs' peers."""
    return 100 if next(model.parameters()).device.type == "cuda" else None


def trace_path(directory, layout):
    """trace=true: each rank's per-update record (trace-model<i>.jsonl for a model's first rank)."""
    rank = f"-rank{layout.rank_in_group}" if layout.rank_in_group else ""
    return directory / f"trace-model{layout.group_index}{rank}.jsonl"


def write_trace(handle, state, step, teachers_used, inputs):
    """One update's record: hashes of the model's parameters, of the inputs it trains on and of
    its teachers, and their ages."""
    entry = {"step": step, "own": param_hash(state.model),
             "inputs": hashlib.sha1(inputs.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]}
    if teachers_used and state.codistiller.teachers:
        entry["teachers"] = [param_hash(t) for t in state.codistiller.teachers]
        entry["teachers_from_step"] = state.codistiller.teachers_from_step()
    if state.codistiller and state.codistiller.teachers:
        entry["teacher_ages"] = state.codistiller.teacher_ages(step)
    handle.write(json.dumps(entry) + "\n")


def build_optimizer(schedule, parameters, lr, weight_decay):
    """schedule.optimizer: SGD with the schedule's momentum, Adagrad (Anil et al. 2018 Sec. 3.1,
    Criteo: momentum unused), or AdamW (beta1 the schedule's momentum, beta2 0.95 as DiLoCo's). train_step
    sets both optimizers' lr and weight_decay at every update
    from the schedules; their state_dicts are what a resumed run restores."""
    if schedule.optimizer == "adagrad":
        return torch.optim.Adagrad(parameters, lr=lr, weight_decay=weight_decay)
    if schedule.optimizer == "adamw":   # the peers' inner optimizer on language models (DiLoCo, SparseLoCo)
        return torch.optim.AdamW(parameters, lr=lr, betas=(schedule.momentum, 0.95), weight_decay=weight_decay)
    return torch.optim.SGD(parameters, lr=lr, momentum=schedule.momentum, weight_decay=weight_decay)


def training_data(cfg, workload, group, n_groups):
    """(the training set of the run, model group `group`'s training samples, the evaluation set):
    data.holdout's split, then data.fraction's subset, then with data.split=disjoint the group's
    shard of that subset (the same for every rank of the group)."""
    train_set, eval_set = held_out_split(workload.train_set, workload.val_set, cfg.data)
    train_set = data_subset(train_set, cfg.data)
    own = model_shard(train_set, group, n_groups, cfg.data.subset_seed) if cfg.data.split == "disjoint" else train_set
    return train_set, own, eval_set


def group_state(state, optimizer, precision, step, elapsed):
    """Everything of this model group that a resumed run needs (saved by the group's leader).
    "codistiller" holds the Codistiller's state_dict (the stale teachers of a checkpoint exchange,
    the bits), None without one; the bits are also kept beside it (the counter is the method's too)."""
    saved = {"step": step, "elapsed": elapsed, "model": state.model.state_dict(),
             "optimizer": optimizer.state_dict(), "scaler": precision.scaler.state_dict(),
             "codistiller": state.codistiller.state_dict() if state.codistiller else None,
             "method": state.method.state_dict(), "rng": torch.get_rng_state(),
             "inter_node_bits": state.counter.inter_node_bits, "intra_node_bits": state.counter.intra_node_bits}
    if state.device.type == "cuda":   # dropout and other GPU draws: a resumed GPU run continues their stream
        saved["cuda_rng"] = torch.cuda.get_rng_state(state.device)
    return saved


def restore(state, optimizer, precision, saved):
    """Loads a group state, read onto the CPU (run_state.load_group_state), into this rank; returns
    (step, elapsed seconds) it was saved at. What lives on the device gets there here: the model and
    the teachers copy into their parameters, the optimizer moves its state to its parameters', the
    method moves its own (methods.py); the RNG states stay CPU tensors, as torch takes them."""
    state.model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    precision.scaler.load_state_dict(saved["scaler"])
    if state.codistiller:
        state.codistiller.load_state_dict(run_state.codistiller_state(saved, "teachers"))
    state.method.load_state_dict(saved.get("method") or {})
    state.counter.inter_node_bits = saved["inter_node_bits"]
    state.counter.intra_node_bits = saved["intra_node_bits"]
    torch.set_rng_state(saved["rng"])
    if "cuda_rng" in saved and state.device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda_rng"], state.device)
    return saved["step"], saved["elapsed"]


def resume(directory, state, optimizer, precision, step):
    """Restores this rank from its group's state committed at `step` in `directory`; returns
    (step, elapsed seconds)."""
    return restore(state, optimizer, precision, run_state.load_group_state(directory, state.layout.group_index, step))


def save_and_commit(directory, state, optimizer, precision, step, elapsed):
    """Every group's leader saves its state in `directory` (the run's, or a model job's), then the
    world's rank 0 commits the step. A model job tells its peers it may resume from there (they
    keep the snapshots it would read again)."""
    layout = state.layout
    if layout.rank_in_group == 0:
        run_state.save_group_state(directory, layout.group_index, step,
                                   group_state(state, optimizer, precision, step, elapsed))
    dist.barrier()
    if dist.get_rank() == 0:
        run_state.commit(directory, step)
        if model_jobs.uses_files(state.cfg) and state.codistiller:
            state.codistiller.mark_checkpointed(step)


def stop_failed(state, log, trace, failed):
    """Ends a run that cannot give a result: rank 0 writes the failed end record, then every rank
    returns once it is on disk (src/run.py reads it and exits non-zero)."""
    if trace:
        trace.close()
    if log:
        log.write(failed)
        log.close()
    dist.barrier()
    return state


def job_records(evaluation, state, step):
    """The records this job logs of an evaluation (`records`: every model's, or a model job's own):
    a model job (method.transport=files) adds each teacher's age and the time (the run's log is assembled from
    them: model_jobs.py). Ensemble and churn need the peers' outputs, which a model job has not. A
    two_phase student's records carry its teachers' updates (`teacher_steps`)."""
    if state.logged:
        evaluation = [{**record, **state.logged} for record in evaluation]
    if not model_jobs.uses_files(state.cfg):
        return evaluation
    ages = state.codistiller.teacher_ages(step - 1) if state.codistiller else None
    return [{**record, "val_top1_mean_over_models": None, "teacher_ages": ages, "time": time.time()}
            for record in evaluation]


def train_rank(cfg, layout, run_directory, device):
    """Trains this rank's share of the run described by `cfg` (the typed config of a validated job:
    config.typed_job), resuming from the last committed state when there is one: the run's, or with
    method.transport=files its model's (this rank's world is then its model group)."""
    config = OmegaConf.to_container(cfg)   # the resolved config as run ids and log headers hold it
    clock = TimeSplit(f"{runlog.run_id(config)}-rank{dist.get_rank()}")
    files = model_jobs.uses_files(config)
    directory = model_jobs.model_directory(run_directory, layout.group_index) if files else run_directory
    leader = dist.get_rank() == 0   # of this world: the run's rank 0, or a model job's first rank
    torch.manual_seed(cfg.seed)
    workload = build_workload(cfg.workload)
    whole_train_set, train_set, eval_set = training_data(cfg, workload, layout.group_index, layout.n_groups)
    batch_per_model = int(cfg.scale.batch_per_rank) * layout.ranks_per_group
    sampled = sampling_layout(cfg.method, layout)  # local SGD, DiLoCo: all_reduce's global batch
    sampled_batch = int(cfg.scale.batch_per_rank) * sampled.ranks_per_group
    sampler = CoordinatedBatchSampler(len(train_set), sampled_batch, sampled.ranks_per_group,
                                      sampled.rank_in_group, order_seed(cfg, sampled.group_index))
    if len(sampler) == 0:
        raise ValueError(f"a batch of {sampled_batch} per model is larger than the training set "
                         f"({len(train_set)} samples): lower scale.batch_per_rank or batch_scale")
    val_loader = DataLoader(eval_set, batch_sampler=EvalShardSampler(
        len(eval_set), layout.ranks_per_group, layout.rank_in_group, cfg.workload.eval_batch),
        collate_fn=workload.collate, **loader_options(cfg.workload.loader_workers, device))
    schedules = run_schedules(cfg, sampled_batch, len(sampler))
    state = build_rank_state(cfg, layout, workload, device, schedules, run_directory=run_directory,
                             train_set=whole_train_set)
    settings = loop_settings(cfg, schedules)
    batches = batch_source(workload, train_set, sampler, settings, device)
    optimizer = build_optimizer(cfg.schedule, state.model.parameters(), schedules.lr(0), schedules.weight_decay(0))
    state.method.attach(optimizer)
    precision = Precision(settings.amp, device, settings.clip_norm)
    step, elapsed = 0, 0.0
    resume_step = run_state.committed_step(directory)
    if resume_step is not None:
        step, elapsed = resume(directory, state, optimizer, precision, resume_step)
    log = progress = None
    environment = runlog.run_environment(device.type, dist.get_backend(), precision.name,
                                         torch.cuda.device_count() if device.type == "cuda" else None) if leader else None
    if leader and files:
        log = model_jobs.open_model_log(directory, config, layout.group_index, resume_step, environment)
    elif leader:
        log = (runlog.MetricsLog.resume(run_directory, config, step, environment=environment)
               if resume_step is not None else runlog.MetricsLog(run_directory, [runlog.header(config, environment)]))
    if leader:
        name = runlog.run_id(config) + (f" model {layout.group_index}" if files else "")
        progress = Progress(name, directory, schedules.total_steps, schedules.steps_per_epoch,
                            batch_per_model * (1 if files else layout.n_groups), step)
    trace = None
    if cfg.trace:
        trace = open(trace_path(directory, layout), "a" if step else "w")
    steps_per_epoch, total_steps, eval_every = settings.steps_per_epoch, settings.total_steps, settings.eval_every
    pause_s = float(cfg.update_pause_s)
    started = time.perf_counter() - elapsed
    stats = torch.zeros(N_STATS, dtype=torch.float64)
    train_losses = TrainLosses(device)
    failed = None
    clock.lap("setup")
    for epoch in range(step // steps_per_epoch, math.ceil(total_steps / steps_per_epoch)):
        sampler.set_epoch(epoch, start_batch=step - epoch * steps_per_epoch)
        for batch in batches:
            if step >= total_steps:
                break
            train_losses.add(*train_step(state, optimizer, precision, schedules, step, batch, trace))
            step += 1
            state.method.after_update(step)
            if pause_s:
                time.sleep(pause_s)
            if progress:
                progress.update(step)
            if step % eval_every == 0 or step == total_steps:
                clock.lap("training")
                train_losses.drain_into(stats)
                evaluate(state, val_loader, stats)
                table = gather_stats(state, stats)
                clock.lap("evaluation")
                wall_time = time.perf_counter() - started
                diverged = divergence(table[:, [TRAIN_CE, TRAIN_DISTILL]], (step - 1) // eval_every * eval_every,
                                      step, cfg)
                if diverged:   # every rank sees the same table: all stop here, nothing is committed
                    failed = {"kind": "end", "status": "failed", "reason": diverged, "steps": step,
                              "wall_time": wall_time}
                    break
                if log:
                    evaluation = job_records(list(records(
                        table, step, schedules, state.counter, wall_time, batch_per_model,
                        [layout.group_index] if files else None,
                        alpha=state.codistiller.alpha_at if state.codistiller else None)), state, step)
                    for record in evaluation:
                        log.write(record)
                    progress.evaluation(evaluation)
                if trace:
                    trace.flush()
                clock.lap("logging")
                save_and_commit(directory, state, optimizer, precision, step, wall_time)
                clock.lap("checkpoint")
                stats.zero_()
        if failed:
            break
    clock.lap("training")
    if failed:
        stop_failed(state, log, trace, failed)
    else:
        if trace:
            trace.close()
        if layout.rank_in_group == 0:
            final_weights = run_state.final_weights_path(run_directory, layout.group_index)
            run_state.save_torch(state.model.state_dict(), final_weights)
        if cfg.save_predictions:
            save_predictions(state, val_loader, len(eval_set),
                             run_directory / f"predictions-model{layout.group_index}.npy")
        dist.barrier()
        if log:
            wall_time = time.perf_counter() - started
            log.write({"kind": "end", "steps": step, "wall_time": wall_time})
            log.close()
            progress.finished(wall_time)
    if leader and files:
        model_jobs.assemble_run_log(config, run_directory)
    clock.lap("end")
    clock.write()
    return state
