"""Training loop: samples per second of the engine (engine.train_rank: all_reduce, one rank, its
sampler, loader, schedules and bookkeeping) against plain_loop.train, for the same model, data,
batch and optimizer, alternating engine and plain runs (each in a forked process, one thread).

Rates are taken between the starts of update `warmup` and of the last update, so neither the
set-up nor the final evaluation and state save of the engine is counted. The engine runs in a
forked process with its own one-rank gloo group, as a launched rank does. Two workloads:
the mini scale's own (digits MLP, batch 32: the engine's per-update overhead at its most visible)
and the ResNet-50 twin on generated data (batch 32).

    python benchmarks/bench_loop.py [--rounds 5]
"""
import argparse
import contextlib
import dataclasses
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf

from benchlib import RESNET50_TWIN, compose, count_params, layout, median, spawn, twin_workload
import plain_loop
from codistill import engine
from codistill.workloads import build_workload

BATCH = 32


def _engine_overrides(epochs, results_root):
    return ["method=allreduce", "scale.ranks_per_model=1", f"schedule.epochs={epochs}",
            "schedule.lr.warmup_epochs=0", "schedule.lr.milestones=[]", f"eval_every_epochs={epochs}",
            "launcher.threads_per_rank=1", f"results_root={results_root}"]


def _engine_rank(rank, world, container, workload):
    """engine.train_rank on this one-rank gloo group with `workload`; returns (wall clock, process
    CPU time) at the start of every update (engine.train_step wrapped with a clock, nothing else
    changed)."""
    starts = []
    original_step = engine.train_step

    def clocked_step(*args, **kwargs):
        starts.append((time.perf_counter(), time.process_time()))
        return original_step(*args, **kwargs)

    engine.train_step, engine.build_workload = clocked_step, lambda cfg: workload
    with tempfile.TemporaryDirectory() as run_directory:
        engine.train_rank(container, layout(1, 1, 1, 0), Path(run_directory), torch.device("cpu"))
    return starts


def _engine_breakdown_rank(rank, world, container, workload, warmup):
    """One more engine run, instrumented (kept apart from the timed rounds): CPU microseconds per
    update inside engine.train_step, in fetching the next batch from the engine's DataLoader, and
    in total, over the same window of updates."""
    steps, fetches = [], []
    original_step, original_loader = engine.train_step, engine.DataLoader

    def clocked_step(*args, **kwargs):
        started = time.process_time()
        result = original_step(*args, **kwargs)
        steps.append((started, time.process_time()))
        return result

    class ClockedLoader(original_loader):
        def __iter__(self):
            batches = super().__iter__()
            while True:
                started = time.process_time()
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                fetches.append(time.process_time() - started)
                yield batch

    engine.train_step, engine.DataLoader, engine.build_workload = clocked_step, ClockedLoader, lambda cfg: workload
    with tempfile.TemporaryDirectory() as run_directory:
        engine.train_rank(container, layout(1, 1, 1, 0), Path(run_directory), torch.device("cpu"))
    window = range(warmup, len(steps) - 1)  # update i's share: from its start to update i+1's start
    return {"loop_total_us": 1e6 * (steps[-1][0] - steps[warmup][0]) / len(window),
            "loop_train_step_us": 1e6 * sum(steps[i][1] - steps[i][0] for i in window) / len(window),
            "loop_next_batch_us": 1e6 * sum(fetches[i + 1] for i in window) / len(window)}


def _plain_rank(rank, world, workload, epochs, lr, momentum, weight_decay, seed):
    model = workload.make_model(seed)
    data = workload.train_set
    return plain_loop.train(model, data.inputs, data.targets, BATCH, epochs, lr, momentum, weight_decay)


def engine_starts(container, workload):
    """Runs the engine in a forked process of its own (a fresh gloo group, like a launched rank)."""
    [starts] = spawn(1, _engine_rank, container, workload)
    return starts


def plain_starts(workload, epochs, cfg):
    """The plain loop, in a forked process too (the same conditions as the engine's: a forked
    process runs a few per cent slower than its parent, copy-on-write pages being touched)."""
    lr = cfg.schedule.lr.base * BATCH / cfg.schedule.lr.reference_batch  # what the engine's schedule gives
    [starts] = spawn(1, _plain_rank, workload, epochs, lr, cfg.schedule.momentum,
                     cfg.schedule.weight_decay["values"][0], engine.model_seed(cfg.seed, 0))
    return starts


def samples_per_second(starts, warmup, clock):
    """clock 0: wall clock; 1: CPU time of this process (what other processes' load barely moves)."""
    return BATCH * (len(starts) - 1 - warmup) / (starts[-1][clock] - starts[warmup][clock])


def _cpu_us(function, calls):
    """CPU microseconds per call of function() called `calls` times in a row."""
    started = time.process_time()
    for _ in range(calls):
        function()
    return (time.process_time() - started) / calls * 1e6


def _fastest_alternating(functions, calls, repeats=30):
    """{name: the least CPU microseconds per call over `repeats` alternating measurements}: the
    minimum is the closest to what the code costs when nothing else interferes (timeit's advice)."""
    best = {name: float("inf") for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            best[name] = min(best[name], _cpu_us(function, calls))
    return best


def _attribution_rank(rank, world, container, workload):
    """Where the engine's extra time per update goes: its DataLoader over the coordinated sampler
    against plain tensor indexing, and engine.train_step against the plain loop's update, both on
    the same model, optimizer and batch, alternated (least CPU time per call)."""
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from codistill.sampling import CoordinatedBatchSampler
    from codistill.schedules import build_schedules

    cfg = OmegaConf.create(container)
    data = workload.train_set
    sampler = CoordinatedBatchSampler(len(data), BATCH, 1, 0, 0)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=workload.collate, num_workers=0)
    loader_iter, order = iter(loader), torch.randperm(len(data))

    def next_batch():
        nonlocal loader_iter
        try:
            return next(loader_iter)
        except StopIteration:
            loader_iter = iter(loader)
            return next(loader_iter)

    def index_batch():
        index = order[:BATCH]
        return data.inputs[index], data.targets[index]

    state = engine.build_rank_state(cfg, layout(1, 1, 1, 0), workload, torch.device("cpu"))
    schedules = build_schedules(cfg.schedule, cfg.method, BATCH, len(sampler))
    optimizer = torch.optim.SGD(state.model.parameters(), lr=schedules.lr(0), momentum=cfg.schedule.momentum,
                                weight_decay=schedules.weight_decay(0))
    precision = engine.Precision(False, torch.device("cpu"))
    inputs, targets = index_batch()
    step = iter(range(10**9))

    # The same engine.train_step, unchanged, given (a) the run's config as plain Python values
    # instead of an OmegaConf DictConfig, then (b) also a precision object without the autocast
    # and loss-scaler wrappers: what each costs per update.
    plain_cfg = SimpleNamespace(method=OmegaConf.to_container(cfg.method))
    plain_state = dataclasses.replace(state, cfg=plain_cfg)

    class BarePrecision:
        autocast = staticmethod(contextlib.nullcontext)

        @staticmethod
        def backward_and_step(loss, optimizer):
            loss.backward()
            optimizer.step()

    def engine_update(state=state, precision=precision):
        engine.train_step(state, optimizer, precision, schedules, next(step), (inputs, targets), None)

    def plain_update():
        loss = F.cross_entropy(state.model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    batches = _fastest_alternating({"engine_batch_us": next_batch, "plain_batch_us": index_batch}, calls=100)
    plain_us = _cpu_us(plain_update, 3)
    calls = max(3, int(1e4 / plain_us))  # ~10 ms per measurement
    repeats = int(min(30, max(5, 20e6 / (4 * calls * plain_us))))  # at most ~20 s in all
    updates = _fastest_alternating({"engine_update_us": engine_update,
                                    "engine_update_plain_config_us": lambda: engine_update(plain_state),
                                    "engine_update_plain_config_bare_precision_us":
                                        lambda: engine_update(plain_state, BarePrecision),
                                    "plain_update_us": plain_update}, calls, repeats)
    return {**batches, **updates}


def compare(name, workload, epochs, rounds, warmup, progress):
    with tempfile.TemporaryDirectory() as results_root:
        container = compose(_engine_overrides(epochs, results_root))
    cfg = OmegaConf.create(container)
    rates = {(loop, clock): [] for loop in ("engine", "plain") for clock in ("wall", "cpu")}
    for round_index in range(rounds):
        starts = {"engine": engine_starts(container, workload), "plain": plain_starts(workload, epochs, cfg)}
        if len(starts["plain"]) != len(starts["engine"]):
            raise RuntimeError(f"{name}: the engine ran {len(starts['engine'])} updates, the plain loop "
                               f"{len(starts['plain'])}")
        for loop, clock in rates:
            rates[loop, clock].append(samples_per_second(starts[loop], warmup, ("wall", "cpu").index(clock)))
        progress(f"loop: {name}, round {round_index + 1}/{rounds}: engine {rates['engine', 'wall'][-1]:.0f}, "
                 f"plain {rates['plain', 'wall'][-1]:.0f} samples/s")
    breakdowns = []
    for _ in range(max(1, rounds // 2)):  # each instrumented engine run right beside a plain run
        [breakdown] = spawn(1, _engine_breakdown_rank, container, workload, warmup)
        plain_us = 1e6 * BATCH / samples_per_second(plain_starts(workload, epochs, cfg), warmup, 1)
        breakdowns.append({**breakdown, "loop_plain_total_us": plain_us})
    [attribution] = spawn(1, _attribution_rank, container, workload)
    result = {"workload": name, "updates": len(starts["engine"]), "warmup_updates": warmup,
              "attribution_cpu_us": {**attribution, **{key: median([b[key] for b in breakdowns])
                                                       for key in breakdowns[0]}}}
    for clock in ("wall", "cpu"):
        engine_rate, plain_rate = median(rates["engine", clock]), median(rates["plain", clock])
        result[clock] = {"engine_samples_per_s": engine_rate, "plain_samples_per_s": plain_rate,
                         "ratio": engine_rate / plain_rate, "rounds": {loop: rates[loop, clock] for loop in
                                                                        ("engine", "plain")}}
    return result


def run(rounds=5, twin_rounds=3, progress=print):
    with tempfile.TemporaryDirectory() as results_root:
        digits = build_workload(OmegaConf.create(compose(_engine_overrides(1, results_root))["workload"]))
    twin = twin_workload(RESNET50_TWIN, BATCH, n_batches=10)
    return {"batch": BATCH, "twin_params": count_params(RESNET50_TWIN), "rows": [
        compare("digits MLP (mini scale)", digits, epochs=40, rounds=rounds, warmup=37, progress=progress),
        compare("ResNet-50 twin, generated data", twin, epochs=4, rounds=twin_rounds, warmup=5,
                progress=progress)]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    for row in run(parser.parse_args().rounds)["rows"]:
        for clock in ("wall", "cpu"):
            numbers = row[clock]
            print(f"{row['workload']} ({clock}): engine {numbers['engine_samples_per_s']:.0f} samples/s, plain "
                  f"{numbers['plain_samples_per_s']:.0f} samples/s, ratio {numbers['ratio']:.3f}")
