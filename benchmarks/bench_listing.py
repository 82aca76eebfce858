"""How long a sweep takes to compose before anything runs or is queued: `python src/run.py -m
sweep=<name> scale=<scale> dry_run=true` in a fresh process, for a small and a large sweep at both
scales. The sweeper (src/hydra_plugins/codistill_sweeper) composes and checks every job with Hydra
before it launches any, so a researcher waits this long before the first job is queued, and the
test suite pays it for every sweep it lists.

    python -m benchmarks.bench_listing [--rounds 2]
    python -m benchmarks.bench --parts listing   # as part 10 of make bench, into results.md
"""
import argparse
import re
import subprocess
import sys
import tempfile
import time

import matplotlib.pyplot as plt
import numpy as np

from figures import registry

from .bench_reproduce import children_cpu_seconds
from .benchlib import ROOT, machine, median, run_py_environment
from .tables import save, table

SWEEPS = ("fig2", "frontier")   # 33 and 111 jobs at either scale
SCALES = ("mini", "paper")


def timed_listing(sweep, scale):
    """(jobs listed, wall seconds, CPU seconds of the process and its children) of one dry run."""
    if scale not in (registry.sweep_scales(sweep) or ()):
        raise RuntimeError(f"the sweep {sweep} has no job at scale {scale}: a dry run would compose nothing")
    with tempfile.TemporaryDirectory() as results_root:
        command = [sys.executable, "src/run.py", "-m", f"sweep={sweep}", f"scale={scale}", "dry_run=true",
                   f"results_root={results_root}"]
        environment = run_py_environment()
        cpu_before, started = children_cpu_seconds(), time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True)
        seconds, cpu_seconds = time.perf_counter() - started, children_cpu_seconds() - cpu_before
    if done.returncode != 0:
        raise RuntimeError(f"the dry run of {sweep} at {scale} failed:\n{done.stderr[-2000:]}")
    jobs = int(re.search(rf"sweep {sweep}: (\d+) jobs at scale {scale}", done.stdout).group(1))
    return jobs, seconds, cpu_seconds


def measure(rounds=2, progress=print):
    """Per (sweep, scale): the jobs listed and the median wall and CPU seconds over `rounds` dry runs."""
    listings = []
    for sweep in SWEEPS:
        for scale in SCALES:
            runs = [timed_listing(sweep, scale) for _ in range(rounds)]
            jobs = runs[0][0]
            listings.append({"sweep": sweep, "scale": scale, "jobs": jobs,
                             "seconds": median([wall for _, wall, _ in runs]),
                             "cpu_seconds": median([cpu for _, _, cpu in runs]),
                             "rounds": [[wall, cpu] for _, wall, cpu in runs]})
            progress(f"listing: {sweep} at {scale}, {jobs} jobs, {listings[-1]['cpu_seconds']:.1f} CPU-s")
    return listings


def run(progress=print, rounds=2):
    """Part 10 of `make bench` (benchmarks/bench.py)."""
    return {"machine": machine(), "listings": measure(rounds, progress)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args(argv)
    for listing in measure(arguments.rounds):
        print(f"{listing['sweep']:>10} at {listing['scale']:<5}: {listing['jobs']:4d} jobs, {listing['seconds']:6.1f} s, "
              f"{listing['cpu_seconds']:6.1f} CPU-s, {listing['cpu_seconds'] / listing['jobs']:.3f} CPU-s a job")


# Part 10 of results.md, and its plot.

FIGURE_NAME = "listing"


def section(part, _targets):
    rows = [[listing["sweep"], listing["scale"], listing["jobs"], f"{listing['seconds']:.1f}",
             f"{listing['cpu_seconds']:.1f}", f"{listing['cpu_seconds'] / listing['jobs']:.3f}",
             ", ".join(f"{wall:.1f} / {cpu:.1f}" for wall, cpu in listing["rounds"])]
            for listing in part["listings"]]
    per_job, start_up = np.polyfit([listing["jobs"] for listing in part["listings"]],
                                   [listing["cpu_seconds"] for listing in part["listings"]], 1)
    return ["`python src/run.py -m sweep=<sweep> scale=<scale> dry_run=true` in a fresh process: Hydra "
            "composes every job of the sweep and the sweeper checks each before anything would run or be "
            "queued. The CPU time is the process's and its children's, start-up (Python, torch, Hydra) "
            "included; medians over the rounds.", "",
            table(["sweep", "scale", "jobs", "wall (s)", "CPU (s)", "CPU per job (s)", "rounds (wall / CPU s)"],
                  rows), "",
            f"A line through CPU seconds against jobs listed (all rows): {per_job:.3f} CPU-s per job composed and "
            f"{start_up:.1f} CPU-s of start-up, so a sweep's jobs, not the start-up, are what costs. "
            "The sweeper reads each config file once per sweep and hands every composition its own copy of "
            "it (src/hydra_plugins/codistill_sweeper); what remains per job is Hydra's own composition: "
            "merging the defaults list and parsing the interpolations. The test suite lists about 1,700 "
            "jobs this way (tests/test_sweeps.py)."]


def plot(part, path):
    listings = part["listings"]
    labels = [f"{listing['sweep']}\n{listing['scale']} ({listing['jobs']} jobs)" for listing in listings]
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    ax.bar(labels, [listing["cpu_seconds"] / listing["jobs"] for listing in listings], color="tab:blue")
    ax.set_ylabel("CPU seconds per job listed")
    ax.set_title("Sweep listing (dry run): CPU per job, start-up included", fontsize=10)
    save(fig, path)


if __name__ == "__main__":
    main()
