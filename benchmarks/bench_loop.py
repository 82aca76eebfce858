"""Training loop: samples per second of the engine (engine.train_rank: all_reduce, one rank, its
sampler, batches, schedules and bookkeeping) against plain_loop.train, for the same model, data,
batch and optimizer, alternating engine and plain runs (each in a forked process, one thread).

Rates are taken between the starts of update `warmup` and of the last update, so neither the
set-up nor the final evaluation and state save of the engine is counted. The engine runs in a
forked process with its own one-rank gloo group, as a launched rank does. Three workloads: the
default mini vision workload (clusters_resnet, its own batch of 256), digits with an MLP (batch
32: the engine's fixed cost per update at its most visible) and the ResNet-50 twin on generated
data (batch 32).

    python -m benchmarks.bench_loop [--rounds 5]
"""
import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from codistill_experiments.config import typed_job
from codistill_experiments.run_schedules import run_schedules
from codistill_experiments.seeds import model_seed
from codistill_experiments.training import engine
from codistill_experiments.training.sampling import CoordinatedBatchSampler
from codistill_experiments.workloads import build_workload

from . import plain_loop
from .benchlib import RESNET50_TWIN, compose, count_params, layout, median, spawn, twin_workload

CPU = torch.device("cpu")


def _engine_overrides(workload_overrides, epochs, results_root):
    """One rank of all_reduce at a constant LR and weight decay (what the plain loop uses)."""
    return [*workload_overrides, "method=allreduce", "scale.ranks_per_model=1", f"schedule.epochs={epochs}",
            "schedule.lr.warmup_epochs=0", "schedule.lr.milestones=[]", "schedule.weight_decay.milestones=[]",
            f"eval_every_epochs={epochs}", "launcher.threads_per_rank=1", f"results_root={results_root}"]


def _engine_rank(rank, world, container, workload):
    """engine.train_rank on this one-rank gloo group with `workload`; returns (wall clock, CPU
    seconds: plain_loop.cpu_seconds, the process and its ended children) at the start of every
    update (engine.train_step wrapped with a clock, nothing else changed)."""
    starts = []
    original_step = engine.train_step

    def clocked_step(*args, **kwargs):
        starts.append((time.perf_counter(), plain_loop.cpu_seconds()))
        return original_step(*args, **kwargs)

    engine.train_step, engine.build_workload = clocked_step, lambda cfg: workload
    with tempfile.TemporaryDirectory() as run_directory:
        engine.train_rank(typed_job(container), layout(1, 1, 1, 0), Path(run_directory), CPU)
    return starts


class ClockedBatches:
    """An engine batch source whose every next batch is clocked (CPU seconds into `fetches`)."""

    def __init__(self, source, fetches):
        self.source, self.fetches = source, fetches

    def __iter__(self):
        batches = iter(self.source)
        while True:
            started = time.process_time()
            try:
                batch = next(batches)
            except StopIteration:
                return
            self.fetches.append(time.process_time() - started)
            yield batch


def _engine_breakdown_rank(rank, world, container, workload, warmup):
    """One more engine run, instrumented (kept apart from the timed rounds): CPU microseconds per
    update inside engine.train_step, in fetching the next batch from the engine's batch source,
    and in total, over the same window of updates."""
    steps, fetches = [], []
    original_step, original_source = engine.train_step, engine.batch_source

    def clocked_step(*args, **kwargs):
        started = time.process_time()
        result = original_step(*args, **kwargs)
        steps.append((started, time.process_time()))
        return result

    engine.train_step, engine.build_workload = clocked_step, lambda cfg: workload
    engine.batch_source = lambda *args: ClockedBatches(original_source(*args), fetches)
    with tempfile.TemporaryDirectory() as run_directory:
        engine.train_rank(typed_job(container), layout(1, 1, 1, 0), Path(run_directory), CPU)
    window = range(warmup, len(steps) - 1)  # update i's share: from its start to update i+1's start
    return {"loop_total_us": 1e6 * (steps[-1][0] - steps[warmup][0]) / len(window),
            "loop_train_step_us": 1e6 * sum(steps[i][1] - steps[i][0] for i in window) / len(window),
            "loop_next_batch_us": 1e6 * sum(fetches[i + 1] for i in window) / len(window)}


def plain_settings(container, workload):
    """(batch, epochs, lr, momentum, weight decay, model seed) for the plain loop: what the
    engine's own schedules give this job, and as many updates."""
    cfg = typed_job(container)
    batch = int(cfg.scale.batch_per_rank)
    steps_per_epoch = len(workload.train_set) // batch
    schedules = run_schedules(cfg, batch, steps_per_epoch)
    if schedules.total_steps % steps_per_epoch:
        raise ValueError(f"{schedules.total_steps} updates are not whole epochs of {steps_per_epoch}")
    return dict(batch=batch, epochs=schedules.total_steps // steps_per_epoch, lr=schedules.lr(0),
                momentum=cfg.schedule.momentum, weight_decay=schedules.weight_decay(0),
                seed=model_seed(cfg.seed, 0))


def _plain_rank(rank, world, workload, settings):
    model = workload.make_model(settings["seed"])
    data = workload.train_set
    return plain_loop.train(model, data.inputs, data.targets, settings["batch"], settings["epochs"],
                            settings["lr"], settings["momentum"], settings["weight_decay"])


def engine_starts(container, workload):
    """Runs the engine in a forked process of its own (a fresh gloo group, like a launched rank)."""
    [starts] = spawn(1, _engine_rank, container, workload)
    return starts


def plain_starts(workload, settings):
    """The plain loop, in a forked process too (the same conditions as the engine's: a forked
    process runs a few per cent slower than its parent, copy-on-write pages being touched)."""
    [starts] = spawn(1, _plain_rank, workload, settings)
    return starts


def samples_per_second(starts, warmup, clock, batch):
    """clock 0: wall clock; 1: CPU time of the loop's process and its children (what other
    processes' load barely moves: the ratio judged)."""
    return batch * (len(starts) - 1 - warmup) / (starts[-1][clock] - starts[warmup][clock])


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


def endless(source, sampler):
    """next() over a batch source, epoch after epoch."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from source
        epoch += 1


def _attribution_rank(rank, world, container, workload):
    """Where the engine's extra time per update goes, in isolation: the engine's next batch (its
    batch source over the coordinated sampler), a DataLoader over the same sampler (what the
    engine used before, and still uses for data read from files) and plain tensor indexing; then
    engine.train_step against the plain loop's update on the same model, optimizer and batch,
    alternated (least CPU time per call)."""
    cfg = typed_job(container)
    batch, data = int(cfg.scale.batch_per_rank), workload.train_set
    sampler = CoordinatedBatchSampler(len(data), batch, 1, 0, 0)
    settings = engine.loop_settings(cfg, run_schedules(cfg, batch, len(sampler)))
    engine_batches = endless(engine.batch_source(workload, data, sampler, settings, CPU), sampler)
    loader_sampler = CoordinatedBatchSampler(len(data), batch, 1, 0, 0)
    loader = torch.utils.data.DataLoader(data, batch_sampler=loader_sampler, collate_fn=workload.collate)
    loader_batches, order = endless(loader, loader_sampler), torch.randperm(len(data))
    firsts = itertools.cycle(range(0, len(data) - batch + 1, batch))

    def index_batch():
        """The plain loop's fetch, walking the permutation as it does (not the same cached rows)."""
        index = order[next(firsts):][:batch]
        return data.inputs[index], data.targets[index]

    schedules = run_schedules(cfg, batch, len(sampler))
    state = engine.build_rank_state(cfg, layout(1, 1, 1, 0), workload, CPU, schedules)
    optimizer = torch.optim.SGD(state.model.parameters(), lr=schedules.lr(0), momentum=cfg.schedule.momentum,
                                weight_decay=schedules.weight_decay(0))
    precision = engine.Precision(False, CPU)
    inputs, targets = index_batch()
    step = iter(range(10**9))

    def engine_update():
        engine.train_step(state, optimizer, precision, schedules, next(step), (inputs, targets), None)

    def plain_update():
        loss = F.cross_entropy(state.model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    batches = _fastest_alternating({"engine_batch_us": lambda: next(engine_batches),
                                    "loader_batch_us": lambda: next(loader_batches),
                                    "plain_batch_us": index_batch}, calls=100)
    plain_us = _cpu_us(plain_update, 3)
    calls = max(3, int(1e4 / plain_us))  # ~10 ms per measurement
    repeats = int(min(30, max(5, 20e6 / (2 * calls * plain_us))))  # at most ~20 s in all
    updates = _fastest_alternating({"engine_update_us": engine_update, "plain_update_us": plain_update},
                                   calls, repeats)
    return {**batches, **updates}


def compare(name, workload, container, rounds, warmup, progress):
    settings = plain_settings(container, workload)
    batch = settings["batch"]
    rates = {(loop, clock): [] for loop in ("engine", "plain") for clock in ("wall", "cpu")}
    for round_index in range(rounds):
        starts = {"engine": engine_starts(container, workload), "plain": plain_starts(workload, settings)}
        if len(starts["plain"]) != len(starts["engine"]):
            raise RuntimeError(f"{name}: the engine ran {len(starts['engine'])} updates, the plain loop "
                               f"{len(starts['plain'])}")
        for loop, clock in rates:
            rates[loop, clock].append(samples_per_second(starts[loop], warmup, ("wall", "cpu").index(clock), batch))
        progress(f"loop: {name}, round {round_index + 1}/{rounds}: engine {rates['engine', 'wall'][-1]:.0f}, "
                 f"plain {rates['plain', 'wall'][-1]:.0f} samples/s")
    breakdowns = []
    for _ in range(max(1, rounds // 2)):  # each instrumented engine run right beside a plain run
        [breakdown] = spawn(1, _engine_breakdown_rank, container, workload, warmup)
        plain_us = 1e6 * batch / samples_per_second(plain_starts(workload, settings), warmup, 1, batch)
        breakdowns.append({**breakdown, "loop_plain_total_us": plain_us})
    [attribution] = spawn(1, _attribution_rank, container, workload)
    result = {"workload": name, "batch": batch, "updates": len(starts["engine"]), "warmup_updates": warmup,
              "attribution_cpu_us": {**attribution, **{key: median([b[key] for b in breakdowns])
                                                       for key in breakdowns[0]}}}
    for clock in ("wall", "cpu"):
        # The ratio: the median of each round's (an engine run and the plain run right after it, under
        # the same load), steadier than the ratio of medians when other processes come and go.
        paired = [e / p for e, p in zip(rates["engine", clock], rates["plain", clock])]
        result[clock] = {"engine_samples_per_s": median(rates["engine", clock]),
                         "plain_samples_per_s": median(rates["plain", clock]), "ratio": median(paired),
                         "rounds": {loop: rates[loop, clock] for loop in ("engine", "plain")}}
    return result


def job(workload_overrides, epochs):
    """The engine's job (a validated config) and its workload, built as the engine would."""
    with tempfile.TemporaryDirectory() as results_root:
        container = compose(_engine_overrides(workload_overrides, epochs, results_root))
    return container, build_workload(typed_job(container).workload)


def run(rounds=9, twin_rounds=3, progress=print):
    # clusters_resnet: 110,000 samples, 429 updates of 256 per epoch; 5 schedule epochs x its
    # epoch_scale 0.2 = 1 epoch.
    clusters, clusters_workload = job(["workload=clusters_resnet"], epochs=5)
    digits, digits_workload = job(["workload=digits_mlp"], epochs=40)
    twin, _ = job(["workload=digits_mlp", "scale.batch_per_rank=32"], epochs=4)
    return {"twin_params": count_params(RESNET50_TWIN), "rows": [
        compare("clusters ResNet (default mini workload)", clusters_workload, clusters, rounds, warmup=30,
                progress=progress),
        compare("digits MLP", digits_workload, digits, rounds, warmup=37, progress=progress),
        compare("ResNet-50 twin, generated data", twin_workload(RESNET50_TWIN, 32, n_batches=10), twin,
                twin_rounds, warmup=5, progress=progress)]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    for row in run(parser.parse_args().rounds)["rows"]:
        for clock in ("wall", "cpu"):
            numbers = row[clock]
            print(f"{row['workload']} ({clock}): engine {numbers['engine_samples_per_s']:.0f} samples/s, plain "
                  f"{numbers['plain_samples_per_s']:.0f} samples/s, ratio {numbers['ratio']:.3f}")
