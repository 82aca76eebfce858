"""Part 1 of benchmarks/results.md (bits per update, engine counters against the paper's formulas),
from what bench_bytes.py measured: the table, the targets, the bits at equal top-1 from the committed
frontier runs, the plot."""
import matplotlib
import matplotlib.pyplot as plt

from figures.paths import COMMITTED
from figures.report import frontier_at_equal_top1

from .tables import fmt_bits, save, table


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
    lines.append(table(["layout", "method", "T", "bits/value", "top k", "B per device", "updates",
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
