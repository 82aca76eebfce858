"""The runs of a sweep into one tidy pandas table, read from the runs' metrics logs only.

A sweep's manifest (figures/logs/manifests.py) names the runs its figure needs. Each run is
reported as finished, unfinished, missing, unreadable or failed (figures/logs/run_logs.py: failed
runs have no result and are never among the records), and a run that another sweep ran first
(same job, same run id) is reported as shared from that sweep.
"""
from collections import OrderedDict
from pathlib import Path

import pandas as pd

from .manifests import manifest, seed_of, setting_of
from .run_logs import STATES, read_log, run_columns

# (sweep, scale, kinds, each manifest entry with the RunLog read for it) -> (records, status).
# read_log hands out one RunLog per unchanged log file, so the same logs give the same objects (a
# missing log is a new object each time, all alike); an entry keeps its RunLogs alive, so that a
# key's object ids are never those of newer objects.
_COLLECTED = OrderedDict()
_KEPT = 64   # sweeps x kinds: what one process (the report, a test file) reads again


def collect(results_root, sweep_id, scale, kinds=("eval",)):
    """Returns (records, status). records: one row per (finished run, record of `kinds`, model)
    with the run's `cfg.*` config columns and its `setting` (overrides without the seed); status:
    one row per run the sweep's manifest names (state, seed, setting, shared_from, notes).
    Collecting the same logs again hands out copies of the tables built the first time (figures,
    claims and verdicts read the same sweeps many times; building a table is a pandas frame per run)."""
    entries = [(entry, read_log(Path(results_root) / "runs" / entry["run_id"]))
               for entry in manifest(results_root, sweep_id, scale)]
    key = (sweep_id, scale, tuple(kinds),
           tuple((entry["run_id"], tuple(entry["overrides"]), log.state if log.state == "missing" else id(log))
                 for entry, log in entries))
    if key not in _COLLECTED:
        _COLLECTED[key] = (entries, _tables(entries, sweep_id, kinds))
        while len(_COLLECTED) > _KEPT:
            _COLLECTED.popitem(last=False)
    _COLLECTED.move_to_end(key)
    records, status = _COLLECTED[key][1]
    return records.copy(), status.copy()


def _tables(entries, sweep_id, kinds):
    runs, frames, status = [], [], []
    for entry, log in entries:
        setting = setting_of(entry["overrides"])
        run_sweep = log.header.get("sweep_id") if log.header else None
        shared = run_sweep if run_sweep and run_sweep != sweep_id else None
        seed = log.header["seed"] if log.header else seed_of(entry["overrides"])
        status.append({"run_id": entry["run_id"], "seed": seed, "setting": setting, "state": log.state,
                       "shared_from": shared, "notes": "; ".join(log.notes)})
        kept = [record for record in log.records if record.get("kind") in kinds]
        if log.state == "finished" and kept:
            runs.append({**run_columns(log.header), "setting": setting})
            frames.append(pd.DataFrame(kept).assign(run_id=entry["run_id"]))
    columns = ["run_id", "seed", "setting", "state", "shared_from", "notes"]
    if not frames:
        return pd.DataFrame(), pd.DataFrame(status, columns=columns)
    records = pd.DataFrame(runs).merge(pd.concat(frames, ignore_index=True), on="run_id", validate="one_to_many")
    return records, pd.DataFrame(status, columns=columns)


def seed_table(status):
    """One row per setting: the seeds finished and those that are not (missing, unfinished,
    unreadable), from a collect() status table."""
    rows = []
    for setting, runs in status.groupby("setting", sort=False):
        row = {"setting": setting}
        for state in STATES:
            row[state] = sorted(int(s) for s in runs.loc[runs["state"] == state, "seed"].dropna())
        rows.append(row)
    return pd.DataFrame(rows, columns=["setting", *STATES])


def status_lines(status, sweep_id):
    """Human-readable status of one sweep's runs: counts, then every run that is not plainly
    finished here, and every setting with fewer than three finished seeds."""
    counts = status["state"].value_counts().to_dict()
    shared = status["shared_from"].notna().sum()
    lines = [f"{sweep_id}: " + ", ".join(f"{counts[s]} {s}" for s in STATES if s in counts)
             + (f" ({shared} shared from other sweeps)" if shared else "")]
    for _, row in status.iterrows():
        if row["state"] != "finished" or row["notes"]:
            lines.append(f"  {row['state']}: {row['run_id']} seed {row['seed']}"
                         + (f" ({row['notes']})" if row["notes"] else ""))
    for origin, runs in status[status["shared_from"].notna()].groupby("shared_from"):
        lines.append(f"  shared from sweep {origin}: {len(runs)} run(s)")
    for _, row in seed_table(status).iterrows():
        if 0 < len(row["finished"]) < 3:
            lines.append(f"  fewer than 3 seeds finished for [{row['setting']}]: seeds {row['finished']}")
    return lines
