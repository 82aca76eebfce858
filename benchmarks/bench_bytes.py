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

import matplotlib
import matplotlib.pyplot as plt
import torch
import torch.distributed as dist

from codistill import prediction_row_bits
from codistill_experiments.config import typed_job
from codistill_experiments.training import engine
from figures.paths import COMMITTED
from figures.report import frontier_at_equal_top1

from .benchlib import RESNET50_TWIN, TimedRank, bench_schedules, compose, count_params, layout, spawn, twin_workload
from .tables import fmt_bits, save
from .tables import table as markdown_table

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


# Part 1 of results.md: the table, the targets, the bits at equal top-1 from the committed frontier runs,
# the plot.

def section(part, targets):
    rows = part["rows"]
    lines = [f"Model: the engine's residual MLP with widths {part['sizes']} = **{part['model_params']:,} "
             "parameters, 1000 outputs** (ResNet-50's exact count and output size; b_model = "
             f"{32 * part['model_params']:.4g} bits, the paper rounds to 8e8). 2-way, 256 samples per model. "
             "Bits counted by `exchange.CommCounter` (what each log record's `comm_bits_inter_node` holds) on "
             "real gloo ranks, averaged over a whole number of periods; formula: paper Sec. 3 with B = samples "
             "per device. Checkpoint teachers ran on an empty batch here (the bits do not depend on it; "
             "their compute is in part 2).", ""]
    body = []
    for r in rows:
        body.append([f"{r['n']} nodes x {r['k']} rank{'s' if r['k'] > 1 else ''}", r["method"], r.get("period", ""),
                     r.get("bits", 32), r.get("topk") or "",
                     r["batch_per_model"] // r["k"] if r["method"] == "predictions" else "",
                     r["steps"], fmt_bits(r["measured_bits"]), fmt_bits(r["formula_bits"]), f"{r['error_pct']:+.3f}",
                     f"{r['fewer_than_allreduce']:,.0f}x"])
    lines.append(markdown_table(["layout", "method", "T", "bits/value", "top k", "B per device", "updates",
                        "measured bits/update", "formula", "error %", "fewer bits than all_reduce"], body))
    worst = max(abs(r["error_pct"]) for r in rows)
    t10 = next(r for r in rows if r["method"] == "predictions" and r.get("period") == 10 and r.get("bits") == 32
               and not r.get("topk") and r["k"] == 1)
    targets.append(("1. bytes: measured = formula within 1 %", f"worst {worst:.3f} %", worst <= 1.0, None))
    targets.append(("1. bytes: predictions at T = 10 >= 1000x fewer bits than all_reduce",
                    f"{t10['fewer_than_allreduce']:,.0f}x per update (at equal top-1: part 1's last table)",
                    t10["fewer_than_allreduce"] >= 1000, None))
    lines += ["", "These ratios are per update, between a codistillation exchange and an all_reduce of the same "
              "model: they say nothing of accuracy. **At equal top-1**, from the committed mini frontier runs "
              "(paper/logs, `make figure ID=frontier`; not measured by this benchmark): the fewest bits per update "
              "with which each method reaches all_reduce's top-1 within the mini margin while beating the alpha = 0 "
              "control (two models that never communicate) beyond the noise:", "", *equal_top1_lines()]
    half = [r for r in rows if r.get("bits") == 16]
    if half:
        lines += ["", "16-bit logits (`method.prediction_bits=16`, float16 on the wire) halve the prediction "
                  "bits exactly; tests/test_bench_bytes.py checks that the distillation term moves only by "
                  "float16 rounding (bounded per element by 2^-11 |logit|)."]
    if any(r.get("topk") or r.get("bits") == 8 for r in rows):
        lines += ["", "Compressed predictions (`method.prediction_topk`, `method.prediction_bits=8`: each example's "
                  "top k logits with their 16-bit class indices, or int8 values with a float32 scale per example) "
                  "are counted on the tensors sent; the formula's b_pred is `exchange.prediction_row_bits` "
                  "(docs/frontier.md, \"Compressed predictions\", gives the accuracy they reach at mini scale)."]
    lines += ["", "What the counters count: the paper's bandwidth-optimal model of each collective on the "
              "tensor handed to it (all_reduce 2|x|, all_gather over m ranks (m-1)|x|). What gloo really puts on "
              "the wire is measured in part 3 (the veth's tx_bytes)."]
    return lines


def equal_top1_lines():
    """The frontier's bits at equal top-1 from the committed logs (figures/report.py)."""
    return frontier_at_equal_top1(COMMITTED) or ["(no frontier logs committed)"]


def plot(part, path):
    rows = [r for r in part["rows"] if r["k"] == 1]
    labels = [("all_reduce" if r["method"] == "allreduce" else
               f"{'pred' if r['method'] == 'predictions' else 'ckpt'} T={r['period']}"
               + (f" top {r['topk']}" if r.get("topk") else "")
               + (f" {r['bits']}-bit" if r.get("bits") in (16, 8) else "")) for r in rows]
    colors = {"allreduce": "tab:red", "predictions": "tab:blue", "checkpoints": "tab:green"}
    fig, ax = plt.subplots(figsize=(10, 4.2))
    x = range(len(rows))
    ax.bar(x, [r["measured_bits"] for r in rows], label="measured (engine counters)",
           color=[matplotlib.colors.to_rgba(colors[r["method"]], 0.55 if r.get("bits") in (16, 8) or r.get("topk")
                                            else 1.0) for r in rows])
    ax.scatter(x, [r["formula_bits"] for r in rows], marker="_", s=400, color="black", zorder=3,
               label="paper Sec. 3 formula")
    ax.set_yscale("log")
    ax.set_xticks(list(x), labels, rotation=45, ha="right")
    ax.set_ylabel("bits per update per device")
    ax.set_title(f"Bits per update, ResNet-50 twin ({part['model_params']:,} params), 2-way, 256 samples per model")
    ax.legend()
    save(fig, path)


if __name__ == "__main__":
    print_rows(run()["rows"])
