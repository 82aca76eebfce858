"""The mini pipeline on this machine's cores: one representative sweep run with
launcher=local_parallel at 1 and 2 jobs at once (fresh results folders, timed, the load average
beside it), and the expected `make reproduce-all` time on 2, 8 and 16 cores from the committed
logs' per-run wall times (a scheduling estimate, below).

The estimate: sweeps run one after another in reproduce-all's order, each run once (in the first
sweep that lists it). Within a sweep, jobs of r ranks run cores // r at a time (at least 1),
each group of one width after the other, as launcher=local_parallel does; a free slot takes the
next job in the sweep's order. A run logged in t seconds with r ranks on this 2-core machine
did t x min(r, 2) core-seconds of work, and takes that over min(r, cores) cores elsewhere: CPU
bound, ranks scaling perfectly, no memory-bandwidth contention, no start-up outside the logged
time (the measured sweeps show what that leaves out).

    python -m benchmarks.bench_reproduce [--sweep anil_fig2a] [--jobs 1 2] [--no-sweep]
"""
import argparse
import heapq
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codistill_experiments.jobs import cores as cores_here
from codistill_experiments.jobs import jobs_on_cores
from codistill_experiments.runlog import read_records
from codistill_experiments.time_split import VARIABLE
from figures.paths import COMMITTED
from figures.reproduce_all import sweeps_at

from .benchlib import ROOT, run_py_environment

LOGGED_CORES = 2   # the committed mini logs were run here, one job at a time
SWEEP = "anil_fig2a"   # 12 short runs of 2 ranks: both widths of scheduling show in minutes


def run_record(path):
    """(ranks of its job, logged wall seconds) of a run's log; None when it has no end record."""
    records = read_records(path)
    header, end = records[0], records[-1]
    if end.get("kind") != "end" or end.get("wall_time") is None:
        return None
    return int(header["config"]["world_size"]), float(end["wall_time"])


def log_of(root, run_id):
    for name in ("metrics.jsonl.gz", "metrics.jsonl"):
        path = Path(root) / "runs" / run_id / name
        if path.is_file():
            return path
    return None


def sweep_runs(root=COMMITTED, scale="mini"):
    """[(sweep, [(run id, ranks, logged seconds)])] in reproduce-all's order, each run in the first
    sweep listing it; runs without a finished log are left out (counted in `missing`)."""
    chosen, _ = sweeps_at(scale)
    seen, sweeps, missing = set(), [], 0
    for sweep in chosen:
        manifest = Path(root) / "sweeps" / sweep / f"{scale}.json"
        if not manifest.is_file():
            continue
        runs = []
        for entry in json.loads(manifest.read_text()):
            if entry["run_id"] in seen:
                continue
            seen.add(entry["run_id"])
            path = log_of(root, entry["run_id"])
            record = run_record(path) if path else None
            if record is None:
                missing += 1
                continue
            runs.append((entry["run_id"], *record))
        sweeps.append((sweep, runs))
    return sweeps, missing


def makespan(jobs, slots):
    """Seconds for jobs (durations, in order) on `slots` workers, each taking the next job when free."""
    free = [0.0] * slots
    for duration in jobs:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def sweep_seconds(runs, cores, jobs_at_once=None):
    """One sweep on `cores` cores: its groups of one width one after another."""
    total = 0.0
    for ranks in sorted({ranks for _, ranks, _ in runs}, key=[r for _, r, _ in runs].index):
        work = [seconds * min(ranks, LOGGED_CORES) / min(ranks, cores) for _, r, seconds in runs if r == ranks]
        total += makespan(work, jobs_at_once or jobs_on_cores(ranks, cores))
    return total


def estimate(cores_list=(2, 8, 16), root=COMMITTED):
    sweeps, missing = sweep_runs(root)
    runs = [run for _, sweep in sweeps for run in sweep]
    ranks = {}
    for _, r, _ in runs:
        ranks[r] = ranks.get(r, 0) + 1
    return {"sweeps": len(sweeps), "runs": len(runs), "runs_without_log": missing,
            "runs_by_ranks": {str(r): n for r, n in sorted(ranks.items())},
            "logged_seconds": sum(seconds for _, _, seconds in runs),
            "one_at_a_time_seconds": sum(sweep_seconds(sweep, LOGGED_CORES, 1) for _, sweep in sweeps),
            "by_cores": {str(cores): sum(sweep_seconds(sweep, cores) for _, sweep in sweeps) for cores in cores_list}}


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_split(folder):
    """{"wall": {phase: seconds}, "cpu": {phase: seconds}, "ranks": n}: every rank's split
    (codistill_experiments/time_split.py) summed over the ranks of the sweep's runs."""
    total = {"wall": {}, "cpu": {}, "ranks": 0}
    for path in sorted(Path(folder).glob("*.json")):
        split = json.loads(path.read_text())
        total["ranks"] += 1
        for clock in ("wall", "cpu"):
            for phase, seconds in split[clock].items():
                total[clock][phase] = total[clock].get(phase, 0.0) + seconds
    return total


def timed_sweep(sweep, jobs, results):
    """Runs `sweep` at mini scale into the fresh folder `results`, `jobs` at once; its wall time,
    the CPU time of everything it started (every process, every thread), the load average before
    and after, the runs' own logged wall times, and where the ranks' time went (time_split)."""
    command = [sys.executable, "src/run.py", "-m", f"sweep={sweep}", "scale=mini", "launcher=local_parallel",
               f"launcher.jobs_at_once={jobs}"]
    split_folder = Path(results) / "time-split"
    environment = run_py_environment(CODISTILL_RESULTS=str(results), **{VARIABLE: str(split_folder)})
    load_before, cpu_before, started = os.getloadavg(), children_cpu_seconds(), time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
    seconds, load_after = time.perf_counter() - started, os.getloadavg()
    cpu_seconds = children_cpu_seconds() - cpu_before
    manifest = json.loads((Path(results) / "sweeps" / sweep / "mini.json").read_text())
    records = [run_record(path) for entry in manifest if (path := log_of(results, entry["run_id"]))]
    finished = [record for record in records if record]
    return {"jobs_at_once": jobs, "seconds": seconds, "returncode": done.returncode, "load_before": load_before,
            "load_after": load_after, "runs": len(manifest), "finished": len(finished),
            "runs_logged_seconds": sum(seconds for _, seconds in finished), "cpu_seconds": cpu_seconds,
            "cpu_utilisation": cpu_seconds / (seconds * cores_here()), "time_split": time_split(split_folder),
            "ranks": sorted({ranks for ranks, _ in finished}), "output_tail": (done.stdout + done.stderr)[-1500:]}


def sweep_timings(sweep=SWEEP, jobs_list=(1, 2), progress=print):
    rows = []
    for jobs in jobs_list:
        with tempfile.TemporaryDirectory(prefix=f"bench_reproduce_{jobs}_") as results:
            rows.append(timed_sweep(sweep, jobs, results))
        row = rows[-1]
        progress(f"reproduce: sweep {sweep}, {jobs} job(s) at once: {row['seconds']:.0f} s, {row['finished']}/"
                 f"{row['runs']} runs finished (exit {row['returncode']}; load {row['load_before'][0]:.1f} -> "
                 f"{row['load_after'][0]:.1f})")
    return {"sweep": sweep, "cores": cores_here(), "rows": rows,
            "committed_logged_seconds": committed_seconds(sweep)}


def committed_seconds(sweep, root=COMMITTED, scale="mini"):
    """The logged wall seconds of every run the sweep lists in the committed logs (shared runs included)."""
    manifest = json.loads((Path(root) / "sweeps" / sweep / f"{scale}.json").read_text())
    records = [run_record(path) for entry in manifest if (path := log_of(root, entry["run_id"]))]
    return sum(record[1] for record in records if record)


def run(sweep=SWEEP, jobs_list=(1, 2), measure_sweep=True, progress=print):
    result = {"estimate": estimate()}
    by_cores = result["estimate"]["by_cores"]
    progress("reproduce: expected `make reproduce-all` " + ", ".join(
        f"{cores} cores {seconds / 60:.0f} min" for cores, seconds in by_cores.items()))
    if measure_sweep:
        result["sweep"] = sweep_timings(sweep, jobs_list, progress)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweep", default=SWEEP)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-sweep", action="store_true", help="the estimate only")
    arguments = parser.parse_args()
    print(json.dumps(run(arguments.sweep, arguments.jobs, not arguments.no_sweep), indent=1))
