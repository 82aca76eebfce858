"""Bits sent between servers per iteration, measured through the engine's own counters
(exchange.CommCounter, what every log record's comm_bits_inter_node holds) on real gloo ranks,
against the paper's Section 3 formulas:

    all_reduce                    2 b_model
    predictions every T updates   (n-1) b_pred B / T     (B: samples per device)
    checkpoints every T updates   (n-1) b_model / T

b_pred: the bits per example, 32 C in the paper; with compressed predictions (top k logits,
8-bit values) exchange.prediction_row_bits(C, k, bits).

Each model group sits on its own simulated node (scale.ranks_per_node), so the exchange between
groups is what crosses servers, as in the paper's Figure 1.

    python -m benchmarks.bench_bytes            # ResNet-50 twin, prints the table
"""
import math

import torch
import torch.distributed as dist

from codistill import prediction_row_bits
from codistill_experiments.config import typed_job
from codistill_experiments.training import engine

from .benchlib import (RESNET50_TWIN, TimedRank, bench_schedules, compose, count_params, layout, spawn,
                       twin_workload)

PREDICTION_PERIODS = (1, 5, 10, 100)        # Figure 1, predictions
CHECKPOINT_PERIODS = (625, 1250, 2500, 5000)  # Figure 1, checkpoints
# Compressed predictions at T = 1 (the frontier's points at paper scale, sweeps/frontier.yaml):
# 8-bit values, the top 100 of 1000 logits at 32 and 8 bits, the top logit at 8 bits.
COMPRESSED = ({"bits": 8}, {"bits": 32, "topk": 100}, {"bits": 8, "topk": 100}, {"bits": 8, "topk": 1})


def paper_cases():
    return ([{"method": "allreduce"}]
            + [{"method": "predictions", "period": t, "bits": 32} for t in PREDICTION_PERIODS]
            + [{"method": "predictions", "period": t, "bits": 16} for t in PREDICTION_PERIODS]
            + [{"method": "predictions", "period": 1, **compressed} for compressed in COMPRESSED]
            + [{"method": "checkpoints", "period": t} for t in CHECKPOINT_PERIODS])


def steps_for(period, at_least=20):
    """A whole number of periods (>= 2 exchanges, >= at_least updates): the average is exact."""
    return period * max(2, math.ceil(at_least / period))


def codistill_overrides(case, n):
    overrides = ["method=codistill", f"method.n={n}", f"method.period={case['period']}"]
    if case["method"] == "predictions":
        topk = [f"method.prediction_topk={case['topk']}"] if case.get("topk") else []
        return overrides + ["method.exchange=predictions", f"method.prediction_bits={case['bits']}", *topk]
    return overrides + ["method.exchange=checkpoints"]


def _allreduce_bits(rank, n, k, sizes, containers, steps=3):
    """DDP over all n*k ranks as one model (the paper's all_reduce on the same servers)."""
    world = n * k
    workload = twin_workload(sizes, batch=4, n_batches=steps)  # the gradient's size does not depend on the batch
    timed = TimedRank(containers["allreduce"], layout(1, world, k, rank), workload, batch=4)
    timed.run(steps)
    return timed.state.counter, steps


def _exchange_bits(rank, n, k, sizes, case, container, batch_per_device):
    """Drives the engine's exchange object (built by engine.build_rank_state, as in training) over
    `steps` updates. Predictions: the logits of a real forward pass of the model on a batch of
    B samples. Checkpoints: the stale teachers run on an empty batch: the bits of a checkpoint
    exchange do not depend on it, and the forward cost is measured by bench_overhead."""
    cfg = typed_job(container)
    workload = twin_workload(sizes, batch=batch_per_device, n_batches=1)
    state = engine.build_rank_state(cfg, layout(n, k, k, rank), workload, torch.device("cpu"),
                                    bench_schedules(cfg, batch_per_device * k))
    inputs = workload.train_set.inputs
    if case["method"] == "checkpoints":
        inputs = inputs[:0]
    with torch.no_grad():
        logits = state.model(inputs)
    steps = steps_for(case["period"])
    for step in range(steps):
        state.codistiller.teachers_logits(step, inputs, logits)
    return state.counter, steps


def _measure_rank(rank, world, n, k, sizes, batch_per_model, cases, containers):
    rows = []
    for index, case in enumerate(cases):
        if case["method"] == "allreduce":
            counter, steps = _allreduce_bits(rank, n, k, sizes, containers)
        else:
            counter, steps = _exchange_bits(rank, n, k, sizes, case, containers[index], batch_per_model // k)
        rows.append({**case, "steps": steps, "inter_node_bits": counter.inter_node_bits,
                     "intra_node_bits": counter.intra_node_bits})
        dist.barrier()
    return rows


def measure(sizes, batch_per_model, cases, n=2, k=1):
    """Runs `cases` on n*k real gloo ranks (n model groups of k ranks, one group per node) and
    returns, per case, every rank's counters: [{case..., steps, inter_node_bits, ...}] per rank."""
    containers = {"allreduce": compose(["method=allreduce", f"scale.ranks_per_model={n * k}",
                                        f"scale.ranks_per_node={k}"])}
    for index, case in enumerate(cases):
        if case["method"] != "allreduce":
            containers[index] = compose([*codistill_overrides(case, n), f"scale.ranks_per_model={k}",
                                         f"scale.ranks_per_node={k}"])
    return spawn(n * k, _measure_rank, n, k, list(sizes), batch_per_model, cases, containers)


def paper_formula(case, n, b_model, classes, batch_per_device):
    """Section 3 of the paper, bits per iteration and device."""
    if case["method"] == "allreduce":
        return 2 * b_model
    if case["method"] == "predictions":
        b_pred = prediction_row_bits(classes, case.get("topk"), case["bits"])
        return (n - 1) * b_pred * batch_per_device / case["period"]
    return (n - 1) * b_model / case["period"]


def table(sizes, batch_per_model, n=2, k=1, cases=None):
    """Measured vs formula, with the ratio to all_reduce, for each case (rank 0's counters; every
    rank's must agree)."""
    cases = cases or paper_cases()
    per_rank = measure(sizes, batch_per_model, cases, n, k)
    b_model = 32 * count_params(sizes)
    rows = []
    for case_rows in zip(*per_rank):
        bits = {row["inter_node_bits"] for row in case_rows}
        if len(bits) != 1:
            raise RuntimeError(f"ranks disagree on the bits sent for {case_rows[0]}: {sorted(bits)}")
        row = case_rows[0]
        measured = row["inter_node_bits"] / row["steps"]
        formula = paper_formula(row, n, b_model, sizes[-1], batch_per_model // k)
        rows.append({**row, "n": n, "k": k, "batch_per_model": batch_per_model, "measured_bits": measured,
                     "formula_bits": formula, "error_pct": 100 * (measured - formula) / formula})
    allreduce = next(row["measured_bits"] for row in rows if row["method"] == "allreduce")
    for row in rows:
        row["fewer_than_allreduce"] = allreduce / row["measured_bits"]
    return rows


def run(progress=print):
    """The ResNet-50 twin: 2-way, 256 samples per model, one rank per model (B = 256 per device);
    then the paper's server layout scaled down (2 ranks per model and node, B = 128)."""
    progress(f"bytes: ResNet-50 twin ({count_params(RESNET50_TWIN):,} parameters, 1000 outputs), 2 nodes x 1 rank")
    rows = table(RESNET50_TWIN, batch_per_model=256, n=2, k=1)
    progress("bytes: 2 nodes x 2 ranks (ranks of a model group share a node)")
    rows += table(RESNET50_TWIN, batch_per_model=256, n=2, k=2,
                  cases=[{"method": "allreduce"}, {"method": "predictions", "period": 10, "bits": 32},
                         {"method": "checkpoints", "period": 1250}])
    return {"model_params": count_params(RESNET50_TWIN), "sizes": list(RESNET50_TWIN), "rows": rows}


def print_rows(rows):
    print(f"{'n x k':>6} {'method':>12} {'T':>5} {'bits':>4} {'top k':>5} {'measured':>12} {'formula':>12} "
          f"{'err %':>7} {'x fewer':>9}")
    for r in rows:
        print(f"{r['n']}x{r['k']:<4} {r['method']:>12} {r.get('period', ''):>5} {r.get('bits', 32):>4} "
              f"{r.get('topk') or '':>5} "
              f"{r['measured_bits']:>12.4g} {r['formula_bits']:>12.4g} {r['error_pct']:>7.3f} "
              f"{r['fewer_than_allreduce']:>9.1f}")


if __name__ == "__main__":
    print_rows(run()["rows"])
