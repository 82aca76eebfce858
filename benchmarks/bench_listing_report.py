"""Part 10 of benchmarks/results.md (how long a sweep takes to compose before anything is queued),
from what bench_listing.py measured, and its plot."""
import matplotlib.pyplot as plt
import numpy as np

from .tables import save, table

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
