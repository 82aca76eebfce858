"""Figures pipeline: figures/logs/collect.py's collect() on generated log trees of 100, 1,000 and 10,000
runs of 100 records each (header, 50 evaluations x 2 models, end: the current metrics.jsonl
format, records made by the engine's evaluation.records itself) in a temporary folder, each measured in a fresh
subprocess: wall time and peak resident memory. Then `make figures` on the committed results,
when the repository has both: cold (figures/out removed: every id drawn) and again with nothing
changed (no id drawn), with the load average beside each. Then the sweeps on this machine's
cores (bench_reproduce.py): one sweep at 1 and 2 jobs at once, and the expected
`make reproduce-all` time on 2, 8 and 16 cores from the committed logs.

The trees are synthetic and deleted afterwards: no result of this script is a run's log.

    python -m benchmarks.bench_collect [--runs 100 1000 10000]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from omegaconf import OmegaConf

from codistill import CommCounter
from codistill_experiments import runlog
from codistill_experiments.jobs import cores
from codistill_experiments.run_schedules import build_schedules
from codistill_experiments.training import evaluation as engine_evaluation

from . import bench_reproduce
from .benchlib import ROOT, compose
from .tables import save, table

SWEEP = "bench_collect"
EVALUATIONS, MODELS = 50, 2  # 100 eval records per run


def run_body(container):
    """The eval and end lines of one 2-model run's log, as the engine writes them."""
    cfg = OmegaConf.create(container)
    schedules = build_schedules(cfg.schedule, cfg.method, 32, steps_per_epoch=37)
    counter, lines = CommCounter(), []
    generator = torch.Generator().manual_seed(0)
    for evaluation in range(1, EVALUATIONS + 1):
        table = torch.rand(MODELS, engine_evaluation.N_STATS, generator=generator, dtype=torch.float64) * 100 + 1
        counter.charge(37 * 32 * 10 * 32, crosses_nodes=True)
        step = evaluation * 37
        lines += [json.dumps(record) for record in engine_evaluation.records(table, step, schedules, counter, 0.1 * step, 32)]
    lines.append(json.dumps({"kind": "end", "steps": EVALUATIONS * 37, "wall_time": 0.1 * EVALUATIONS * 37}))
    return "\n".join(lines) + "\n"


def make_tree(root, n_runs):
    """n_runs run directories and the sweep manifest naming them; returns the bytes written."""
    container = compose(["method=codistill", "sweep_id=" + SWEEP, f"results_root={root}"])
    header = runlog.header(container)
    body = run_body(container)
    entries, written = [], 0
    for index in range(n_runs):
        overrides = ["method=codistill", f"method.period={1 + index // 3}", f"seed={index % 3}"]
        run_id = f"mini-codistill-bench{index:07d}"
        header.update(run_id=run_id, seed=index % 3)
        header["config"]["seed"] = index % 3
        header["config"]["method"]["period"] = 1 + index // 3
        text = json.dumps(header) + "\n" + body
        directory = Path(root) / "runs" / run_id
        directory.mkdir(parents=True)
        (directory / runlog.METRICS_FILE).write_text(text)
        written += len(text)
        entries.append({"run_id": run_id, "overrides": overrides})
    manifest = Path(root) / "sweeps" / SWEEP / "mini.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps(entries))
    return written


# VmHWM: the peak resident memory of this process image (ru_maxrss would carry the forking
# parent's peak across exec).
MEASURE = """
import json, sys, time
def peak_mb():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) / 1024
from figures.logs import collect
baseline = peak_mb()
started, cpu = time.perf_counter(), time.process_time()
records, status = collect.collect({root!r}, {sweep!r}, "mini")
seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({{"seconds": seconds, "cpu_seconds": cpu_seconds, "rows": len(records), "runs": len(status),
                  "finished": int((status["state"] == "finished").sum()),
                  "baseline_rss_mb": baseline, "peak_rss_mb": peak_mb()}}))
"""


def measure(root):
    code = MEASURE.format(root=str(root), sweep=SWEEP)   # run from the repository root: figures is a package there
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def available_memory_mb():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def collect_scaling(run_counts, progress=print):
    rows = []
    for n_runs in run_counts:
        if rows:  # memory grows about linearly: do not start a tree this machine cannot hold
            last = rows[-1]
            needed = (last["peak_rss_mb"] - last["baseline_rss_mb"]) * n_runs / last["n_runs"]
            if needed > 0.8 * available_memory_mb():
                rows.append({"n_runs": n_runs, "skipped": f"would need ~{needed:.0f} MB, "
                                                          f"{available_memory_mb():.0f} MB available"})
                progress(f"collect: {n_runs} runs skipped: {rows[-1]['skipped']}")
                continue
        with tempfile.TemporaryDirectory(prefix="bench_collect_") as root:
            started = time.perf_counter()
            written = make_tree(root, n_runs)
            progress(f"collect: generated {n_runs} runs ({written / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")
            result = measure(root)
        if result["finished"] != n_runs or result["rows"] != n_runs * EVALUATIONS * MODELS:
            raise RuntimeError(f"collect read {result['finished']} finished runs and {result['rows']} records "
                               f"of {n_runs} runs x {EVALUATIONS * MODELS}")
        rows.append({"n_runs": n_runs, "records": result["rows"], "log_mb": written / 1e6, **result})
        progress(f"collect: {n_runs} runs: {result['seconds']:.1f} s ({result['cpu_seconds']:.1f} s CPU), "
                 f"peak {result['peak_rss_mb']:.0f} MB (imports alone {result['baseline_rss_mb']:.0f} MB)")
    return rows


def timed_make_figures(venv):
    load_before, started = os.getloadavg(), time.perf_counter()
    # The drawing is timed, not an install: `setup` is taken as done (make -o) even where a
    # dependency file is newer than the venv's stamp.
    done = subprocess.run(["make", "figures", f"VENV={venv}", "-o", f"{venv}/.installed"], cwd=ROOT,
                          capture_output=True, text=True)
    return {"seconds": time.perf_counter() - started, "returncode": done.returncode, "load_before": load_before,
            "load_after": os.getloadavg(), "output_tail": (done.stdout + done.stderr)[-2000:]}


def make_figures(progress=print):
    """`make figures` on the committed results when the Makefile has it and there are any: cold
    (figures/out removed, every id drawn, one process per core), then again with nothing changed."""
    makefile = (ROOT / "Makefile").read_text()
    committed = ROOT / "paper" / "logs"
    if "\nfigures:" not in makefile:
        return {"skipped": "the Makefile has no `figures` target yet"}
    if not committed.is_dir() or not any(committed.rglob("metrics.jsonl*")):
        return {"skipped": f"no committed results under {committed.relative_to(ROOT)} yet"}
    venv = Path(sys.executable).parent.parent   # the environment running this benchmark
    shutil.rmtree(ROOT / "figures" / "out", ignore_errors=True)
    cold = timed_make_figures(venv)
    progress(f"collect: `make figures` from scratch took {cold['seconds']:.1f} s (exit {cold['returncode']})")
    unchanged = timed_make_figures(venv)
    progress(f"collect: `make figures` with nothing changed took {unchanged['seconds']:.1f} s "
             f"(exit {unchanged['returncode']})")
    return {**cold, "cores": cores(), "unchanged": unchanged}


def run(run_counts=(100, 1000, 10000), progress=print):
    rows = collect_scaling(run_counts, progress)
    return {"records_per_run": EVALUATIONS * MODELS, "rows": rows, "make_figures": make_figures(progress),
            "reproduce": bench_reproduce.run(progress=progress)}


# Part 5 of results.md: the table, the targets, the cause of a miss, the plot.

COLLECT_WHY = {
    "scaling": (
        "Cause: collect() keeps every parsed log in memory until it returns (peak memory grows with the tree: see "
        "the table), and Python's cyclic garbage collector, whose full passes walk every live object, runs longer "
        "as that heap grows; per run it also flattens the config through pandas.json_normalize and builds a "
        "DataFrame before one concat and merge. Fix (figures/logs/collect.py): flatten configs with a plain recursive "
        "function, freeze the collector (gc.freeze) while parsing, and keep only the columns figures read."),
    "make_figures": (
        "Cause: drawing, not reading: matplotlib's layout and saving of every id, each figure as PDF and PNG, "
        "take most of the CPU time, spread over one process per core; other processes' load on the 2 cores "
        "(load average beside the time) takes the rest of the wall clock. Fix: rerun on an idle machine; "
        "else save fewer formats or draw less per figure."),
    "unchanged": (
        "Cause: the check itself: importing figures.registry (pandas) and hashing every log and code file an "
        "id reads, under the load shown. Fix: compare file sizes and times before hashing contents."),
}
COLD_S, UNCHANGED_S = 15, 5   # `make figures` from scratch, and with nothing changed, on 2 cores


def load(run):
    return f"load average {run['load_before'][0]:.1f} before, {run['load_after'][0]:.1f} after"


def minutes(seconds):
    return f"{seconds / 60:.0f} min" if seconds >= 600 else f"{seconds / 60:.1f} min"


PHASES = ("setup", "training", "evaluation", "logging", "checkpoint", "end")


def time_split_lines(sweep):
    """Where the sweep's wall time went at 1 job at once: outside the ranks (Hydra, validation,
    starting the ranks, imports) and, inside them, each phase's share and how busy its CPU was."""
    row = next((row for row in sweep["rows"] if row["jobs_at_once"] == 1 and "time_split" in row), None)
    if row is None or not row["time_split"]["ranks"] or len(row["ranks"]) != 1:
        return []
    split, ranks = row["time_split"], row["ranks"][0]
    inside = sum(split["wall"].values()) / ranks   # the ranks of a run run side by side
    outside = row["seconds"] - inside
    body = [["outside the ranks (sweep start, each run's Hydra job, validation, starting its ranks)",
             f"{outside:.1f}", f"{outside / row['seconds']:.1%}", ""]]
    for phase in PHASES:
        wall = split["wall"].get(phase, 0.0) / ranks
        busy = split["cpu"].get(phase, 0.0) / split["wall"][phase] if split["wall"].get(phase) else 0.0
        body.append([phase, f"{wall:.1f}", f"{wall / row['seconds']:.1%}", f"{busy:.0%}"])
    return ["", f"Where the 1-job sweep's {row['seconds']:.0f} s went ({split['ranks']} ranks' own clocks, "
            "codistill_experiments/time_split.py; a phase's seconds are its ranks' mean, 'CPU busy' its ranks' CPU "
            "seconds over their wall seconds: below 100 % a rank waited, in training mostly for its peer in a "
            f"collective). The sweep's processes used {row['cpu_seconds']:.0f} CPU seconds, "
            f"{row['cpu_utilisation']:.0%} of the cores over its wall time.", "",
            table(["phase", "seconds", "share of the sweep", "CPU busy"], body)]


def reproduce_lines(part):
    """The sweep timed at 1 and 2 jobs at once, and the expected `make reproduce-all` times."""
    reproduce = part.get("reproduce")
    if not reproduce:
        return ["", "Sweeps on this machine's cores: not measured (an older results.json; rerun part collect)."]
    lines = []
    sweep = reproduce.get("sweep")
    if sweep:
        body = [[row["jobs_at_once"], f"{row['seconds']:.0f}", f"{row['finished']}/{row['runs']}",
                 f"{row['runs_logged_seconds']:.0f}",
                 f"{row['cpu_utilisation']:.0%}" if "cpu_utilisation" in row else "not measured",
                 f"{row['load_before'][0]:.1f} / {row['load_after'][0]:.1f}", row["returncode"]]
                for row in sweep["rows"]]
        lines += ["", f"Sweep `{sweep['sweep']}` at mini scale ({', '.join(map(str, sweep['rows'][0]['ranks']))}-rank "
                  f"jobs) with launcher=local_parallel, into a fresh results folder each time, on {sweep['cores']} "
                  f"cores shared with whatever else ran (load average before / after; a load above the cores means "
                  f"other processes took part of them). Its runs took {sweep['committed_logged_seconds']:.0f} s in "
                  "all in the committed logs (one at a time).", "",
                  table(["jobs at once", "seconds", "runs finished", "runs' own logged seconds",
                         "CPU utilisation (of all cores)", "load average", "exit"], body)]
        lines += time_split_lines(sweep)
        by_jobs = {row["jobs_at_once"]: row for row in sweep["rows"]}
        if 1 in by_jobs and 2 in by_jobs and 2 * max(by_jobs[2]["ranks"]) > sweep["cores"]:
            one, two = by_jobs[1], by_jobs[2]
            lines += ["", f"At 2 jobs at once {2 * max(two['ranks'])} ranks shared {sweep['cores']} cores: the runs' "
                      f"own time was {two['runs_logged_seconds'] / one['runs_logged_seconds']:.1f}x that at 1 job, the "
                      f"sweep's {two['seconds'] / one['seconds']:.2f}x. Hence the default, cores // ranks per job "
                      f"({max(1, sweep['cores'] // max(two['ranks']))} here): more jobs than that share the cores "
                      "among more ranks (and memory) for no gain."]
    estimate = reproduce["estimate"]
    body = [[cores, minutes(seconds), f"{estimate['one_at_a_time_seconds'] / seconds:.1f}x"]
            for cores, seconds in estimate["by_cores"].items()]
    lines += ["", f"Expected `make reproduce-all` (mini) from the committed logs' per-run wall times: "
              f"{estimate['runs']} runs of {estimate['sweeps']} sweeps (ranks per job: "
              f"{', '.join(f'{n} x {r}' for r, n in estimate['runs_by_ranks'].items())}), "
              f"{minutes(estimate['logged_seconds'])} one at a time. A scheduling estimate "
              "(benchmarks/bench_reproduce.py): sweeps one after another, within a sweep cores // ranks jobs at "
              "once, a run's logged time x its ranks on this 2-core machine spread over min(ranks, cores) cores; "
              "start-up outside the logged time and memory-bandwidth contention are left out.", "",
              table(["cores", "expected time", "against one at a time"], body)]
    return lines


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
        unchanged = figures.get("unchanged")
        lines += ["", f"`make figures` from the committed results, figures/out removed (every id drawn, "
                  f"one process per core, {figures.get('cores', '?')} cores): {figures['seconds']:.1f} s (exit "
                  f"{figures['returncode']}; {load(figures) if 'load_before' in figures else 'load not recorded'})"
                  + (f"; again with nothing changed (no id drawn): {unchanged['seconds']:.1f} s (exit "
                     f"{unchanged['returncode']}; {load(unchanged)})." if unchanged else ".")]
        met = figures["seconds"] < COLD_S and figures["returncode"] == 0
        targets.append((f"5. pipeline: `make figures` from the committed results, from scratch, < {COLD_S} s",
                        f"{figures['seconds']:.1f} s", met, None if met else COLLECT_WHY["make_figures"]))
        if unchanged:
            met = unchanged["seconds"] < UNCHANGED_S and unchanged["returncode"] == 0
            targets.append((f"5. pipeline: `make figures` with nothing changed < {UNCHANGED_S} s",
                            f"{unchanged['seconds']:.1f} s", met, None if met else COLLECT_WHY["unchanged"]))
        else:
            targets.append((f"5. pipeline: `make figures` with nothing changed < {UNCHANGED_S} s", "not measured",
                            False, "Cause: an older results.json. Fix: rerun part collect."))
    return lines + reproduce_lines(part)


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--no-make-figures", action="store_true")
    arguments = parser.parse_args()
    rows = collect_scaling(arguments.runs)
    print(json.dumps(rows, indent=1))
    if not arguments.no_make_figures:
        print(json.dumps(make_figures(), indent=1))
