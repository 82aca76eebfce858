"""Collect: every run of a sweep into one tidy pandas table, read from the runs' metrics.jsonl only.

A sweep's manifest (<results>/sweeps/<sweep>/<scale>.json, written when the sweep launched)
names the runs it needs; each is reported as finished, unfinished or missing.
"""
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from codistill.runlog import METRICS_FILE, read_records  # noqa: E402


def manifest(results_root, sweep_id, scale):
    path = Path(results_root) / "sweeps" / sweep_id / f"{scale}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the sweep first "
                                f"(python src/run.py -m sweep={sweep_id} scale={scale})")
    return json.loads(path.read_text())


def _flat_config(config):
    return pd.json_normalize(config, sep=".").iloc[0].to_dict()


def load_run(directory):
    """(run-level dict, list of eval records) of one run directory; None if it has no log."""
    path = Path(directory) / METRICS_FILE
    if not path.exists():
        return None
    lines = read_records(path)
    if not lines or lines[0].get("kind") != "header":
        return None
    head = lines[0]
    run = {"run_id": head["run_id"], "seed": head["seed"], "scale": head["scale"],
           "scale_note": head["scale_note"], "finished": lines[-1].get("kind") == "end",
           **{f"cfg.{k}": v for k, v in _flat_config(head["config"]).items()}}
    return run, [line for line in lines if line.get("kind") == "eval"]


def collect(results_root, sweep_id, scale):
    """Returns (records, status): records is one row per (run, eval step, model) of finished runs
    with the run's config columns; status is one row per run the sweep needs."""
    rows, status = [], []
    for entry in manifest(results_root, sweep_id, scale):
        loaded = load_run(Path(results_root) / "runs" / entry["run_id"])
        if loaded is None:
            status.append({"run_id": entry["run_id"], "state": "missing"})
            continue
        run, evals = loaded
        status.append({"run_id": run["run_id"], "state": "finished" if run["finished"] else "unfinished"})
        if run["finished"]:
            rows += [{**run, **record} for record in evals]
    return pd.DataFrame(rows), pd.DataFrame(status)


def report_status(status, sweep_id):
    counts = status["state"].value_counts().to_dict()
    print(f"{sweep_id}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    for _, row in status[status["state"] != "finished"].iterrows():
        print(f"  {row['state']}: {row['run_id']}")
