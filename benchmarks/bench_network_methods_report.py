"""Part 3c of benchmarks/results.md (PowerSGD, local SGD and DiLoCo on part 3's simulated network),
from what bench_network.py measured for them: time per update of every method at every link speed,
the bits counted against the formulas and the bytes on the wire, the plot of time per update against
link speed."""
import matplotlib.pyplot as plt

from codistill_experiments import step_model as sm
from .bench_network_methods import AVERAGING_PERIODS, TIMED_APART
from .tables import fmt_bits, legend_below, save, table

FIGURE_NAME = "network_methods"


def method_times(model, limit):
    """Time per update of every method of part 3 at `limit` (seconds): measured directly (all_reduce,
    predictions T=1, powersgd) or between + apart / period (checkpoints, localsgd, diloco)."""
    t = {r["method"]: r["seconds_per_step"] for r in model["rows"] if r["limit"] == limit}
    out = {"all_reduce": t["all_reduce"], "predictions T=1": t["predictions"]}
    out |= {f"checkpoints T={T}": t["checkpoints, compute only"] + t["checkpoints, exchange"] / T for T in (50, 625)}
    if "powersgd" in t:
        out["powersgd"] = t["powersgd"]
        for method in ("localsgd", "diloco"):
            out |= {f"{method} H={H}": t[f"{method}, compute only"] + t[f"{method}, {TIMED_APART[method]}"] / H
                    for H in AVERAGING_PERIODS}
    return out


def counted_bits(model, limit):
    """Bits per update per rank from the engine's counters (inter-node), and the bytes on the wire."""
    rows = {r["method"]: r for r in model["rows"] if r["limit"] == limit}
    out = {"powersgd": (rows["powersgd"]["counter_bits_per_step"], rows["powersgd"]["wire_bytes_per_step"])}
    for method in ("localsgd", "diloco"):
        apart = rows[f"{method}, {TIMED_APART[method]}"]
        out |= {f"{method} H={H}": (apart["counter_bits_per_step"] / H, apart["wire_bytes_per_step"] / H)
                for H in AVERAGING_PERIODS}
    return out


def expected_bits(model, rank):
    """The engine's convention: PowerSGD 2 x 32 x the elements it all_reduces; averaging 2 b_model / H."""
    sizes = model["sizes"]
    work = sm.Workload(model["label"], model["params"], 0.0, 0, matrices=tuple(zip(sizes[1:], sizes[:-1])))
    out = {"powersgd": 2 * 32 * sm.powersgd_elements(work, rank)[0]}
    return out | {f"{m} H={H}": 2 * 32 * model["params"] / H for m in ("localsgd", "diloco") for H in AVERAGING_PERIODS}


def section(part, targets):
    if "skipped" in part:
        return [f"Skipped: {part['skipped']}."]
    limits = list(part["limits"])
    measured = [m for m in part["models"] if any(r["method"] == "powersgd" for r in m["rows"])]
    if not measured:
        return ["Not measured in the part 3 of results.json (it predates the new methods)."]
    names = list(method_times(measured[0], limits[0]))
    body, bits_body = [], []
    for model in measured:
        expected = expected_bits(model, part["powersgd_rank"])
        for limit in limits:
            times = method_times(model, limit)
            body.append([model["label"], limit, *[f"{1000 * times[n]:,.0f} ({times['all_reduce'] / times[n]:.2f}x)"
                                                  for n in names]])
            counted = counted_bits(model, limit)
            bits_body.append([model["label"], limit, *[f"{fmt_bits(counted[n][0])} / "
                                                       f"{fmt_bits(expected[n])} / {8 * counted[n][1] / 1e6:.3g}"
                                                       for n in counted]])
            bits_cols = list(counted)
    return ["PowerSGD, local SGD and DiLoCo in the same namespaces and harness as the table above "
            f"(bench_network_methods.py): PowerSGD at rank {part['powersgd_rank']}, start_iter 2, so every measured "
            "update is compressed, its time measured directly; local SGD and DiLoCo with 2 groups of one rank, the "
            "updates between averagings and one averaging (DiLoCo: one outer step) timed apart, an update at "
            f"period H costing between + averaging / H, for H = {AVERAGING_PERIODS[0]} (localsgd.yaml's default, "
            f"ours) and H = {AVERAGING_PERIODS[1]} (diloco.yaml's, the DiLoCo paper's). Per cell: ms per update "
            "(speed-up over all_reduce, same per-rank batch).", "",
            table(["model", "limit", *names], body), "",
            "Bits per update per rank between the nodes: the engine's counter / the formula (PowerSGD: 2 x 32 x "
            "the elements torch's hook all_reduces, its rank-r factors of each weight matrix and the biases "
            "whole; averaging: 2 b_model / H) / Mbit on the wire (eth0 tx_bytes; gloo's ring of 2 sends b_model "
            "each way where the convention charges 2 b_model):", "",
            table(["model", "limit", *bits_cols], bits_body)]


def plot(part, path):
    link = part["link_bits_per_s"]
    models = [m for m in part["models"] if any(r["method"] == "powersgd" for r in m["rows"])]
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(4.6 * max(1, len(models)), 4.2), squeeze=False)
    if not models:
        axes[0, 0].text(0.5, 0.5, "not measured in this part 3", ha="center")
    for ax, model in zip(axes[0], models):
        times = {limit: method_times(model, limit) for limit in part["limits"]}
        rates = [link[limit] / 1e9 for limit in part["limits"]]
        for name in times[next(iter(times))]:
            style = "--" if name.startswith(("checkpoints", "predictions")) else "-"
            ax.plot(rates, [1000 * times[limit][name] for limit in part["limits"]], style, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{model['label']} parameters")
        ax.set_xlabel("measured link rate (Gbit/s)")
    axes[0, 0].set_ylabel("ms per update")
    if models:  # below the panels: inside one, it covered the all_reduce line of the 100M panel
        legend_below(fig, axes[0, 0])
    fig.suptitle("Time per update against link speed, two simulated nodes (veth + tc tbf), one gloo rank each")
    save(fig, path)

