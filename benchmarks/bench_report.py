"""benchmarks/results.md and figures/out/bench_*.png from the numbers bench.py measured
(benchmarks/results.json): tables, targets marked met or missed, and for a missed target its
cause and what would fix it."""
import sys
from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

# Parts 4 and 5 live in their own files (they use the helpers below).
import bench_collect_report  # noqa: E402
import bench_loop_report  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_MD = HERE / "results.md"
FIGURES = ROOT / "figures" / "out"
CHECKPOINT_PERIODS = (50, 625)


def fmt_bits(bits):
    return f"{bits:.4g}"


def mark(met):
    return "**met**" if met else "**missed**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def load_note(part):
    before, after = part["load_before"], part["load_after"]
    return (f"_{part['seconds']:.0f} s; load average {before[0]:.1f} before, {after[0]:.1f} after "
            f"(on {{cores}} cores: above {{cores}}, other processes were competing for the CPUs)._")


def legend_below(fig, ax, ncol=4):
    """One legend for the whole figure, from `ax`'s lines, below the panels (save keeps it)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=7, bbox_to_anchor=(0.5, 0.0))


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # keeps a legend placed below the panels
    plt.close(fig)


# ---------------------------------------------------------------- 1. bytes
def bytes_section(part, targets):
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
                     r.get("bits", 32), r["batch_per_model"] // r["k"] if r["method"] == "predictions" else "",
                     r["steps"], fmt_bits(r["measured_bits"]), fmt_bits(r["formula_bits"]), f"{r['error_pct']:+.3f}",
                     f"{r['fewer_than_allreduce']:,.0f}x"])
    lines.append(table(["layout", "method", "T", "bits/value", "B per device", "updates", "measured bits/update",
                        "formula", "error %", "fewer bits than all_reduce"], body))
    worst = max(abs(r["error_pct"]) for r in rows)
    t10 = next(r for r in rows if r["method"] == "predictions" and r.get("period") == 10 and r.get("bits") == 32
               and r["k"] == 1)
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
    lines += ["", "What the counters count: the paper's bandwidth-optimal model of each collective on the "
              "tensor handed to it (all_reduce 2|x|, all_gather over m ranks (m-1)|x|). What gloo really puts on "
              "the wire is measured in part 3 (the veth's tx_bytes)."]
    return lines


def equal_top1_lines():
    """The frontier's bits at equal top-1 from the committed logs (figures/findings.py)."""
    if str(ROOT) not in sys.path:   # the figures package lives at the repository root, not installed
        sys.path.insert(0, str(ROOT))
    from figures.paths import COMMITTED
    from figures.report import frontier_at_equal_top1

    return frontier_at_equal_top1(COMMITTED) or ["(no frontier logs committed)"]


def plot_bytes(part, path):
    rows = [r for r in part["rows"] if r["k"] == 1]
    labels = [("all_reduce" if r["method"] == "allreduce" else
               f"{'pred' if r['method'] == 'predictions' else 'ckpt'} T={r['period']}"
               + (" 16-bit" if r.get("bits") == 16 else "")) for r in rows]
    colors = {"allreduce": "tab:red", "predictions": "tab:blue", "checkpoints": "tab:green"}
    fig, ax = plt.subplots(figsize=(10, 4.2))
    x = range(len(rows))
    ax.bar(x, [r["measured_bits"] for r in rows], label="measured (engine counters)",
           color=[matplotlib.colors.to_rgba(colors[r["method"]], 0.55 if r.get("bits") == 16 else 1.0) for r in rows])
    ax.scatter(x, [r["formula_bits"] for r in rows], marker="_", s=400, color="black", zorder=3,
               label="paper Sec. 3 formula")
    ax.set_yscale("log")
    ax.set_xticks(list(x), labels, rotation=45, ha="right")
    ax.set_ylabel("bits per update per device")
    ax.set_title(f"Bits per update, ResNet-50 twin ({part['model_params']:,} params), 2-way, 256 samples per model")
    ax.legend()
    save(fig, path)


# ---------------------------------------------------------------- 2. overhead
def overhead_why(part, method):
    times, rounds = part["per_round"], range(part["rounds"])
    load = f"the load average went from {part['load_before'][0]:.1f} to {part['load_after'][0]:.1f} during this part"
    synchronised = part["ratio_to_independent"]["independent_synchronised"]
    if synchronised > 1.05:
        sync = (f"Independent training plus nothing but a 4-byte all_reduce per update cost {synchronised:.3f}x "
                "independent in the same run: meeting at every update costs that much by itself here, since each "
                "rank then waits for the slower one and other processes deschedule them at random. ")
    else:
        sync = (f"Synchronising alone (the diagnostic row, {synchronised:.3f}x) cost nothing measurable in this run. ")
    if method == "predictions":
        return ("Cause: " + sync + f"The logits themselves are 128 KB per update; {load}. Fix: an idle machine, one "
                "core per rank; in training, a period T > 1 removes the per-update synchronisation point "
                "(paper Sec. 3).")
    share = lambda key: median([times[key][i] / times["independent"][i] for i in rounds])  # noqa: E731
    residual = [(times["checkpoints_between"][i] - times["teacher_forward"][i] - times["independent"][i])
                / times["independent"][i] for i in rounds]
    exchange = median([times["checkpoint_exchange"][i] / part["checkpoint_period"] / times["independent"][i]
                       for i in rounds])
    return (f"Cause: per round, an update between exchanges cost {share('checkpoints_between'):.2f}x independent, of "
            f"which the teacher's forward pass explains {share('teacher_forward'):.2f}; the exchange adds "
            f"{exchange:.2f} per update at T = 50 (the all_gathers of the 102 MB parameter vector and the copies "
            "into and out of the exchange's buffers, on the same two cores). The rest of an update between "
            "exchanges ranged from " + f"{min(residual):+.2f} to {max(residual):+.2f} of an independent update "
            f"across rounds and was not isolated further; {load}. " + sync + "Fix: a longer period (the "
            "paper's T >= 625), and an idle machine to judge 5 %.")


OVERHEAD_ROWS = [("independent", "independent (2 models, nothing exchanged)"),
                 ("predictions", "predictions, T = 1"),
                 ("checkpoints", "checkpoints, T = 50 (between + exchange / 50)"),
                 ("all_reduce", "all_reduce (1 model on both ranks)"),
                 ("checkpoints_between", "  checkpoints: an update between exchanges"),
                 ("checkpoint_exchange", "  checkpoints: one exchange (parameters all_gathered)"),
                 ("teacher_forward", "  checkpoints: the teacher's forward pass"),
                 ("independent_synchronised", "diagnostic: independent + a 4-byte all_reduce per update")]


def overhead_section(part, targets):
    step, ratio = part["median_step_s"], part["ratio_to_independent"]
    body = [[label, f"{1000 * step[name]:.1f}", f"{ratio[name]:.3f}x" if name in ratio else "",
             ", ".join(f"{1000 * v:.0f}" for v in part["per_round"][name])] for name, label in OVERHEAD_ROWS]
    lines = [f"2 gloo ranks on this machine (one thread each), ResNet-50 twin, batch {part['batch_per_rank']} per "
             f"rank, engine.train_step in {part['rounds']} interleaved rounds (windows of {part['steps_per_window']} "
             "updates; the checkpoint exchange timed once per round). Median over rounds.",
             "", table(["method", "ms per update (median)", "vs independent (median of per-round ratios)",
                        "per round (ms)"], body), "",
             f"The teacher's forward pass is {100 * part['forward_share_of_checkpoint_step']:.1f} % of a checkpoint "
             f"update; checkpoints minus that forward: {part['checkpoints_minus_forward_ratio']:.3f}x independent.",
             "", "With other processes on the machine (load average below) the per-round times spread widely (last "
             "column) and these ratios move by several per cent between runs of this command; the diagnostic row "
             "shows what synchronising the ranks at every update costs by itself under the same conditions."]
    met = ratio["predictions"] <= 1.05
    targets.append(("2. overhead: predictions (T = 1) <= 1.05x independent", f"{ratio['predictions']:.3f}x", met,
                    None if met else overhead_why(part, "predictions")))
    met = part["checkpoints_minus_forward_ratio"] <= 1.05
    targets.append(("2. overhead: checkpoints (T = 50) <= 1.05x independent + the teacher's forward",
                    f"{part['checkpoints_minus_forward_ratio']:.3f}x (forward share "
                    f"{100 * part['forward_share_of_checkpoint_step']:.1f} %)", met,
                    None if met else overhead_why(part, "checkpoints")))
    return lines


def plot_overhead(part, path):
    step = part["median_step_s"]
    names = ["independent", "predictions", "checkpoints", "all_reduce"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.bar(names, [1000 * step[n] for n in names], color="tab:blue")
    ax.bar(["checkpoints"], [1000 * step["teacher_forward"]], color="tab:orange", label="of which: teacher forward")
    ax.set_ylabel("ms per update (median over rounds)")
    ax.set_title(f"Engine overhead, 2 gloo ranks, ResNet-50 twin, batch {part['batch_per_rank']}/rank")
    ax.legend()
    save(fig, path)


# ---------------------------------------------------------------- 3. network
def network_numbers(model, limits):
    times = {(r["method"], r["limit"]): r for r in model["rows"]}
    out = {}
    for limit in limits:
        t = lambda method: times[method, limit]["seconds_per_step"]  # noqa: E731
        between, exchange = t("checkpoints, compute only"), t("checkpoints, exchange")
        numbers = {"all_reduce": t("all_reduce"), "all_reduce_compute": t("all_reduce, compute only"),
                   "predictions": t("predictions"), "predictions_compute": t("predictions, compute only"),
                   "checkpoints_between": between, "checkpoints_exchange": exchange,
                   "wire": {m: times[m, limit]["wire_bytes_per_step"] for m in
                            ("all_reduce", "predictions", "checkpoints, exchange")},
                   "packets": {m: times[m, limit].get("wire_packets_per_step") for m in
                               ("all_reduce", "predictions", "checkpoints, exchange")},
                   "counter": {m: times[m, limit]["counter_bits_per_step"] for m in
                               ("all_reduce", "predictions", "checkpoints, exchange")}}
        for period in CHECKPOINT_PERIODS:
            numbers[f"checkpoints_T{period}"] = between + exchange / period
        out[limit] = numbers
    return out


def network_section(part, targets):
    if "skipped" in part:
        targets.append(("3. slow network", "not run: " + part["skipped"], False,
                        "Cause: the benchmark needs root for network namespaces and tc. Fix: run `make bench` as root."))
        return [f"Skipped: {part['skipped']}."]
    limits = list(part["limits"])
    link = part.get("link_bits_per_s", {})
    lines = ["Two network namespaces joined by a veth pair, one gloo rank in each, egress shaped by tc tbf on both "
             "sides (netem is not available: bandwidth only, no added latency). Batch "
             f"{part['batch_per_rank']} per rank; each method's update is timed right beside the same update "
             "without its collective (its compute-only time). Checkpoints: the updates between exchanges and the "
             "exchange are timed apart; an update at period T costs between + exchange / T. "
             + (f"A window holds {part['window_s']:g} s of updates, at least {part['min_steps']} where one takes under "
                f"{part['long_step_s']:g} s. " if "window_s" in part else "")
             + "Measured link "
             "throughput (one large broadcast): " + ", ".join(f"{k} {v / 1e6:,.0f} Mbit/s" for k, v in link.items())
             + ".", ""]
    body, wire_body, extra_rows = [], [], []
    pred_target = None
    for model in part["models"]:
        numbers = network_numbers(model, limits)
        b_model = 32 * model["params"]
        for limit in limits:
            n = numbers[limit]
            ar_rel = n["all_reduce"] / n["all_reduce_compute"]
            pr_rel = n["predictions"] / n["predictions_compute"]
            ck = {T: n[f"checkpoints_T{T}"] for T in CHECKPOINT_PERIODS}
            body.append([model["label"], limit, f"{1000 * n['all_reduce_compute']:.0f}", f"{1000 * n['all_reduce']:.0f}",
                         f"{ar_rel:.2f}x", f"{1000 * n['predictions']:.0f}", f"{pr_rel:.2f}x",
                         *[f"{1000 * ck[T]:.0f} ({ck[T] / n['checkpoints_between']:.2f}x)" for T in CHECKPOINT_PERIODS],
                         f"{1000 * n['checkpoints_exchange']:.0f}",
                         f"{n['all_reduce'] / n['predictions']:.2f}x",
                         *[f"{n['all_reduce'] / ck[T]:.2f}x" for T in CHECKPOINT_PERIODS]])
            wire, packets = n["wire"], n["packets"]
            wire_body.append([model["label"], limit] + [
                f"{wire[m] / 1e6:.3f} / {n['counter'][m] / 8e6:.3f}" for m in ("all_reduce", "predictions",
                                                                              "checkpoints, exchange")]
                + [f"{wire['all_reduce'] / packets['all_reduce']:,.0f}" if packets["all_reduce"] else ""])
            rate = part["limits"][limit]
            if rate:
                extra = n["all_reduce"] - n["all_reduce_compute"]
                expected = b_model / rate
                extra_rows.append((model["label"], limit, extra, expected, link.get(limit), n["checkpoints_exchange"]))
            if model["label"].startswith("25") and limit == "1gbit":
                pred_target = pr_rel
    lines.append(table(["model", "limit", "compute only (ms)", "all_reduce (ms)", "vs compute", "predictions T=1 (ms)",
                        "vs compute", *[f"checkpoints T={T} (ms, vs compute)" for T in CHECKPOINT_PERIODS],
                        "one checkpoint exchange (ms)", "speed-up predictions", *[f"speed-up ckpt T={T}" for T in
                                                                                   CHECKPOINT_PERIODS]], body))
    lines += ["", "_compute only_ is all_reduce's (the bare model, no DDP); each method's own compute-only time is "
              "in results.json. Speed-up: all_reduce's time per update over the codistillation method's, same "
              "per-rank batch (all_reduce trains one model on both ranks, codistillation two).", "",
              "Bytes each rank put on the wire per update (eth0 tx_bytes, MB) / the engine's counter (MB):", "",
              table(["model", "limit", "all_reduce", "predictions", "checkpoint exchange",
                     "all_reduce: bytes per packet sent"], wire_body), "",
              "For 2 ranks gloo's all_reduce sends b_model each way (a ring moves 2(m-1)/m b_model per rank); the "
              "engine, like the paper, charges 2 b_model (the large-m bound). all_gather matches its charge."]
    extra_body, worst = [], 0.0
    for label, limit, extra, expected, measured_rate, exchange in extra_rows:
        ratio = extra / expected
        worst = max(worst, abs(ratio - 1))
        on_link = expected * part["limits"][limit] / measured_rate if measured_rate else None
        extra_body.append([label, limit, f"{1000 * expected:.0f}", f"{1000 * extra:.0f}", f"{ratio:.2f}",
                           f"{extra / on_link:.2f}" if on_link else "", f"{1000 * exchange:.0f}",
                           f"{exchange / expected:.2f}"])
    lines += ["", "Time against bytes / bandwidth. b_model / rate: the bits one rank sends per all_reduce (and per "
              "checkpoint exchange) over the nominal rate. all_reduce's extra time is its update minus the same "
              "update without DDP; the checkpoint exchange is timed alone (parameters to the wire, the "
              "all_gather, loading the teacher), as the commit that measured this part did it; part 3b times "
              "the exchange of its own commit.", "",
              table(["model", "limit", "b_model / rate (ms)", "all_reduce extra (ms)", "ratio",
                     "ratio (measured link rate)", "checkpoint exchange (ms)", "ratio"], extra_body)]
    collectives = part.get("collectives")
    if collectives:
        size_mb = collectives["params"] * 4 / 1e6
        lines += ["", f"The same {size_mb:.0f} MB tensor through three collectives, each one call (ms):", "",
                  table(["limit", "all_reduce", "all_gather, one call", "isend + irecv"],
                        [[limit, *[f"{1000 * t[c]:.0f}" for c in ("all_reduce", "all_gather", "isend_irecv")]]
                         for limit, t in collectives["seconds"].items()]), "",
                  "One gloo all_gather (or send/recv pair) of the whole vector moves the two directions about one "
                  "after the other (~2x bytes/bandwidth at 1 Gbit/s), where all_reduce's pipelined segments keep "
                  "both busy; the checkpoint exchange therefore sends its vector in chunks (part 3b)."]
    met = pred_target is not None and pred_target <= 1.1
    targets.append(("3. network: predictions within 1.1x of compute-only at 1 Gbit/s, 25.6M model",
                    f"{pred_target:.3f}x" if pred_target else "n/a", met, None if met else network_why("predictions", part, extra_rows)))
    met = worst <= 0.15
    targets.append(("3. network: all_reduce's extra time within 15 % of bytes/bandwidth",
                    f"worst deviation {100 * worst:.0f} %", met, None if met else network_why("allreduce", part, extra_rows)))
    return lines


def network_why(kind, part, extra_rows):
    if kind == "predictions":
        return ("Cause: as in part 2, one exchange per update synchronises the ranks at every update, and a rank "
                "descheduled by other processes stalls its peer; the logits (128 KB) take about 1 ms at 1 Gbit/s. "
                "Fix: an idle machine, or T > 1.")
    link = part.get("link_bits_per_s", {})
    on_link = [extra / (expected * part["limits"][limit] / link[limit]) for _, limit, extra, expected, _, _ in
               extra_rows if link.get(limit)]
    slow, fast = list(part["limits"])[-1], list(part["limits"])[-2]
    more = max(network_numbers(model, [slow])[slow]["wire"]["all_reduce"]
               / network_numbers(model, [fast])[fast]["wire"]["all_reduce"] for model in part["models"]) - 1
    return ("Cause: the target divides by the nominal rate. tbf counts every byte of a frame against it, and the "
            f"same all_reduce puts up to {100 * more:.0f} % more bytes on the wire at {slow} than at {fast}: on a "
            "slow link TCP sends MTU-sized packets, each with its own headers (bytes per packet column), where a "
            "fast veth carries 64 KB offloaded segments; so the payload rate is below nominal (measured link rate "
            f"in the section's first paragraph). Over the measured link rate the ratios are {min(on_link):.2f} to "
            f"{max(on_link):.2f}; the largest residuals are on the 1M model, whose 32-320 ms transfers were not "
            "broken down further. Fix: judge against the measured payload rate, or shape at the rate plus header "
            "overhead.")


def plot_network(part, path):
    limits = list(part["limits"])
    models = part["models"]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.8), sharey=True)
    for ax, model in zip(axes if len(models) > 1 else [axes], models):
        numbers = network_numbers(model, limits)
        series = {"all_reduce": [numbers[l]["all_reduce"] / numbers[l]["all_reduce_compute"] for l in limits],
                  "predictions T=1": [numbers[l]["predictions"] / numbers[l]["predictions_compute"] for l in limits]}
        for T in CHECKPOINT_PERIODS:
            series[f"checkpoints T={T}"] = [numbers[l][f"checkpoints_T{T}"] / numbers[l]["checkpoints_between"]
                                           for l in limits]
        for name, values in series.items():
            ax.plot(limits, values, marker="o", label=name)
        ax.set_yscale("log")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_title(f"{model['label']} parameters")
        ax.set_xlabel("bandwidth limit")
    (axes[0] if len(models) > 1 else axes).set_ylabel("time per update / compute-only")
    (axes[-1] if len(models) > 1 else axes).legend(fontsize=8)
    fig.suptitle("Simulated two-node network (veth + tc tbf), one gloo rank per node")
    save(fig, path)


# ---------------------------------------------------------------- 4. loop, 5. collect: bench_loop_report.py,
# bench_collect_report.py


# ---------------------------------------------------------------- the report
SECTIONS = [("bytes", "1. Bits per update: engine counters vs the paper's formulas", bytes_section, plot_bytes),
            ("overhead", "2. Engine overhead per update (CPU, gloo)", overhead_section, plot_overhead),
            ("network", "3. Simulated slow network", network_section, plot_network),
            ("loop", "4. Training loop: engine vs a plain PyTorch loop", bench_loop_report.loop_section,
             bench_loop_report.plot_loop),
            ("collect", "5. Figures pipeline: collect at scale", bench_collect_report.collect_section,
             bench_collect_report.plot_collect)]
# parts 3b, 3c (part 3's other methods) and 6 live in their own files; they use the helpers above
import bench_network_methods, bench_sharded, step_model_report  # noqa: E401,E402

SECTIONS[3:3] = [("sharded", "3b. Checkpoint exchanges alone, one and two ranks per node", bench_sharded.section,
                  bench_sharded.plot), ("network", "3c. PowerSGD, local SGD and DiLoCo on the same network",
                                        bench_network_methods.section, bench_network_methods.plot)]
SECTIONS.append(("stepmodel", "6. Step-time model past one machine", step_model_report.section,
                 step_model_report.plot))


def remeasured_lines(results):
    """Which parts were measured again after the run above, by what, when and at which commit."""
    lines = []
    for run in results.get("remeasured", []):
        m = run["machine"]
        lines.append(f"Measured again since, replacing those parts: {', '.join(run['parts'])}, by `{run['command']}` on "
                     f"{m['date']}, commit {m['git_commit']} ({run['total_seconds'] / 60:.1f} min).")
    return [*lines, ""] if lines else []


def write(results):
    sns.set_theme(style="whitegrid")
    FIGURES.mkdir(parents=True, exist_ok=True)
    m = results["machine"]
    lines = ["# Benchmark results", "",
             f"Written by `{results['command']}` (benchmarks/bench.py) on {m['date']}, commit {m['git_commit']}: "
             f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, "
             f"torch {m['torch']}, no GPU. Total {results['total_seconds'] / 60:.1f} min. Raw numbers: "
             "benchmarks/results.json; plots: figures/out/bench_*.png (made by the same command).", "",
             *remeasured_lines(results),
             "These measure this implementation on this machine (CPU, gloo, shape twins of the paper's models on "
             "generated data): they are not the paper's numbers.", ""]
    targets, written, body = [], [], []
    for key, title, section, plot in SECTIONS:
        part = results["parts"].get(key)
        body += [f"## {title}", ""]
        if part is None:
            body += ["Not run in this invocation.", ""]
            continue
        body += section(part, targets)
        if "seconds" in part:
            body += ["", load_note(part).format(cores=m["cores"])]
        if "skipped" not in part:
            path = FIGURES / f"bench_{getattr(plot, 'figure_name', key)}.png"
            plot(part, path)
            written.append(path)
            body += ["", f"Plot: `figures/out/{path.name}`."]
        body.append("")
    lines += ["## Targets", "", table(["target", "measured", "status"],
                                      [[name, value, mark(met)] for name, value, met, _ in targets]), ""]
    missed = [(name, why) for name, _, met, why in targets if not met]
    if missed:
        lines += ["### Why a target was missed, and what would fix it", ""]
        lines += [f"- **{name}.** {why}" for name, why in missed]
        lines.append("")
    lines += body
    RESULTS_MD.write_text("\n".join(lines).rstrip() + "\n")
    return [RESULTS_MD, *written]
