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

import torch
from omegaconf import OmegaConf

from codistill import CommCounter
from codistill_experiments import runlog
from codistill_experiments.jobs import cores
from codistill_experiments.run_schedules import build_schedules
from codistill_experiments.training import evaluation as engine_evaluation

from . import bench_reproduce

from .benchlib import ROOT, compose

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--no-make-figures", action="store_true")
    arguments = parser.parse_args()
    rows = collect_scaling(arguments.runs)
    print(json.dumps(rows, indent=1))
    if not arguments.no_make_figures:
        print(json.dumps(make_figures(), indent=1))
