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
import tempfile
import time
from pathlib import Path

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
    result = {"workload": name, "updates": len(starts["engine"]), "warmup_updates": warmup}
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
