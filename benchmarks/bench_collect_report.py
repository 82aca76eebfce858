"""Part 5 of benchmarks/results.md (figures/logs/collect.py at scale), from what bench_collect.py
measured: the table, the targets, the cause of a miss, the plot."""
import matplotlib.pyplot as plt

from .tables import save, table

COLLECT_WHY = {
    "scaling": (
        "Cause: collect() keeps every parsed log in memory until it returns (peak memory grows with the tree: see "
        "the table), and Python's cyclic garbage collector, whose full passes walk every live object, runs longer "
        "as that heap grows; per run it also flattens the config through pandas.json_normalize and builds a "
        "DataFrame before one concat and merge. Fix (figures/logs/collect.py): flatten configs with a plain recursive "
        "function, freeze the collector (gc.freeze) while parsing, and keep only the columns figures read."),
    "make_figures": (
        "Cause: drawing, not reading: matplotlib's layout and saving of 28 figures, each as PDF and PNG, take "
        "most of it (cProfile of `python -m figures.registry` on 255 committed runs: savefig 25 of 57 s, reading "
        "and aggregating the logs a few s), on this virtual machine, which ran 20-50 % slower on 2026-11-23 "
        "than when `make figures` took 15.5 s here. Fix: draw the figures in parallel processes (they are "
        "independent), or only those whose logs changed."),
}


def section(part, targets):
    rows = part["rows"]
    body = []
    for row in rows:
        if "skipped" in row:
            body.append([f"{row['n_runs']:,}", "", "", "skipped: " + row["skipped"], "", ""])
            continue
        body.append([f"{row['n_runs']:,}", f"{row['records']:,}", f"{row['log_mb']:.0f}", f"{row['seconds']:.1f}",
                     f"{row['cpu_seconds']:.1f}", f"{row['peak_rss_mb']:,.0f} (imports {row['baseline_rss_mb']:.0f})"])
    lines = [f"figures/logs/collect.py `collect()` on generated trees ({part['records_per_run']} eval records per run, "
             "the engine's own record format, one sweep manifest naming every run), each in a fresh subprocess "
             "(peak memory: VmHWM). The trees are freshly written, so reads come from the page cache.", "",
             table(["runs", "records", "log MB", "seconds", "CPU seconds", "peak memory MB"], body)]
    by_runs = {row["n_runs"]: row for row in rows if "skipped" not in row}
    if 1000 in by_runs and 10000 in by_runs:
        ratio = by_runs[10000]["seconds"] / by_runs[1000]["seconds"]
        met = ratio <= 12
        targets.append(("5. pipeline: 10,000-run collect within 12x the 1,000-run time", f"{ratio:.1f}x", met,
                        None if met else COLLECT_WHY["scaling"]))
    else:
        targets.append(("5. pipeline: 10,000-run collect within 12x the 1,000-run time", "not measured", False,
                        "Cause: the 10,000-run tree was skipped (see the table). Fix: more memory."))
    figures = part["make_figures"]
    if "skipped" in figures:
        lines += ["", f"`make figures` from committed results: not measured: {figures['skipped']}."]
        targets.append(("5. pipeline: `make figures` from the committed results < 30 s", "not measured", False,
                        f"Cause: {figures['skipped']} when this ran. Fix: rerun `make bench` once they are."))
    else:
        met = figures["seconds"] < 30 and figures["returncode"] == 0
        lines += ["", f"`make figures` from the committed results: {figures['seconds']:.1f} s (exit "
                  f"{figures['returncode']})."]
        targets.append(("5. pipeline: `make figures` from the committed results < 30 s", f"{figures['seconds']:.1f} s",
                        met, None if met else COLLECT_WHY["make_figures"]))
    return lines


def plot(part, path):
    rows = [row for row in part["rows"] if "skipped" not in row]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    runs = [row["n_runs"] for row in rows]
    left.loglog(runs, [row["seconds"] for row in rows], marker="o", label="wall")
    left.loglog(runs, [row["cpu_seconds"] for row in rows], marker="s", label="CPU")
    left.loglog(runs, [rows[0]["seconds"] * n / runs[0] for n in runs], ls="--", color="gray", label="linear")
    left.set_xlabel("runs (100 records each)")
    left.set_ylabel("collect() seconds")
    left.legend()
    right.loglog(runs, [row["peak_rss_mb"] for row in rows], marker="o")
    right.set_xlabel("runs")
    right.set_ylabel("peak memory (MB)")
    fig.suptitle("figures/logs/collect.py on generated log trees")
    save(fig, path)
