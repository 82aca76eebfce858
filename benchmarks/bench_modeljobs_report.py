"""Part 7 of benchmarks/results.md (a model job killed and rejoining, mini), from what
bench_modeljobs.py measured: the tables and reading of figures/kill_rejoin.py (the reproduction
report shows the same), and the plot of lost time and final top-1."""
import matplotlib.pyplot as plt

from figures import kill_rejoin

from .tables import save

FIGURE_NAME = "modeljobs"


def section(part, targets):
    return [kill_rejoin.setup_line(part), "", *kill_rejoin.tables(part), "", kill_rejoin.reading(part)]


def plot(part, path):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    lost = {"survivor (model 0)": "survivor", "killed model (model 1)": "killed_model", "all_reduce": "allreduce"}
    stats = [kill_rejoin.over_seeds(part, lambda s, key=key: kill_rejoin.lost_times(s)[key]) for key in lost.values()]
    left.bar([name.replace(" (", "\n(") for name in lost], [m for m, _ in stats], yerr=[s for _, s in stats],
             capsize=4, color=["tab:blue", "tab:orange", "tab:gray"])
    left.axhline(0, color="black", lw=0.8)
    left.set_ylabel("seconds lost to the kill")
    left.set_title(f"killed mid-run, restarted {part['delay_s']:g} s later")
    arms = [("model jobs,\nmodel 0 (survivor)", "files", 0), ("model jobs,\nmodel 1 (killed)", "files", 1),
            ("all_reduce", "allreduce", 0)]
    width = 0.38
    for offset, (label, suffix) in ((-width / 2, ("uninterrupted", "")), (width / 2, ("killed", "_killed"))):
        stats = [kill_rejoin.over_seeds(part, lambda s, run=run, m=m: s[run + suffix]["top1"][m]) for _, run, m in arms]
        right.bar([i + offset for i in range(len(arms))], [m for m, _ in stats], width, yerr=[s for _, s in stats],
                  capsize=4, label=label)
    right.set_xticks(range(len(arms)), [label for label, _, _ in arms])
    values = [s[run + suffix]["top1"][m] for s in part["seeds"] for _, run, m in arms for suffix in ("", "_killed")]
    right.set_ylim(min(values) - 1, max(values) + 1)   # bars from 0 would hide differences of tenths of a point
    right.set_ylabel("final top-1 (%)")
    right.legend(fontsize=8)
    fig.suptitle("Mini: a model job killed and rejoining vs all_reduce killed (mean ± std over seeds)")
    save(fig, path)
