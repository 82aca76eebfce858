"""The cost of every sweep at mini scale (`make reproduce-all`: at most 90 minutes on 2 cores),
from the logs: the training wall time (each run's `end` record) of every run that a mini manifest
names, each run once, as `make reproduce-all` runs a job shared by several sweeps once. A lower
bound on the reproduction's wall time, which also spends each job's start-up and the drawing
(docs/mini-scale.md, "The cost of every sweep", gives what was measured)."""
import pandas as pd

from ..logs.manifests import manifests
from .runs import SCALE, Check, load_sweep, missing

EVERY = "every mini sweep"
MAX_MINUTES = 90.0
COST = {"reproduce_all_cost": "cost: every sweep at mini scale (minutes of training)"}


def check_every_sweep(results):
    bound = f"<= {MAX_MINUTES:g}"
    sweeps = [load_sweep(results, path.parent.name, kinds=("end",)) for path in manifests(results, SCALE)]
    if not sweeps:
        return missing("reproduce_all_cost", bound, "no mini sweep manifests")
    unfinished = [sweep.id for sweep in sweeps if sweep.not_finished()]
    if unfinished:
        check = missing("reproduce_all_cost", bound, f"runs missing or unfinished in {', '.join(unfinished)}")
        check.needs = tuple(unfinished)
        return check
    ends = pd.concat([sweep.records for sweep in sweeps if not sweep.records.empty]).drop_duplicates("run_id")
    minutes = ends["wall_time"].sum() / 60
    return Check("reproduce_all_cost", bound, minutes, f"{minutes:.0f} ({len(ends)} runs of {len(sweeps)} sweeps, "
                 "training only)", minutes <= MAX_MINUTES)
