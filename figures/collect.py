"""Collect: the runs of a sweep into one tidy pandas table, read from the runs' metrics.jsonl only.

A sweep's manifest (<results>/sweeps/<sweep>/<scale>.json, written when the sweep launched)
names the runs its figure needs. Each run is reported as finished, unfinished (no end record),
missing (no log), unreadable (no header, a damaged line before the last, a damaged gzip file) or
failed (an end record saying so, e.g. a diverged run: no result, never among the records); a
torn last line (a crash mid-write) is dropped and said so (the reader is codistill_experiments.runlog's, the
one the engine resumes with), and a run that another sweep ran first (same job, same run id) is
reported as shared from that sweep. Logs may be plain (`metrics.jsonl`) or gzipped
(`metrics.jsonl.gz`, the committed form: paper/logs/).

    python -m figures.collect [--results paper/logs] [--scale mini] [ids ...]   # status per figure
"""
import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from codistill_experiments.runlog import METRICS_FILE, DamagedLog, is_failed, parse_log

REPO = Path(__file__).resolve().parents[1]

COMMITTED = REPO / "paper" / "logs"   # the committed mini-scale logs figures and the report read by default
LOG_NAMES = (METRICS_FILE, METRICS_FILE + ".gz")
STATES = ("finished", "unfinished", "missing", "unreadable", "failed")
HEADER_KEYS = ("run_id", "seed", "scale", "scale_note", "config")


class ManifestMissing(FileNotFoundError):
    pass


def manifest_path(results_root, sweep_id, scale):
    return Path(results_root) / "sweeps" / sweep_id / f"{scale}.json"


def manifest(results_root, sweep_id, scale):
    path = manifest_path(results_root, sweep_id, scale)
    if not path.exists():
        raise ManifestMissing(f"{path} not found: run the sweep first "
                              f"(python src/run.py -m sweep={sweep_id} scale={scale})")
    return json.loads(path.read_text())


NOT_SETTING = {"seed", "results_root", "sweep", "launcher", "dry_run"}   # keys that do not make a setting


def setting_of(overrides):
    """A job's overrides without its seed (and where it ran): the point of a figure that seeds repeat."""
    return " ".join(sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in NOT_SETTING)) or "(defaults)"


def seed_of(overrides):
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "seed":
            return int(value)
    return None


@dataclass
class RunLog:
    """What one run directory's log holds and what is wrong with it."""
    state: str                       # one of STATES
    header: dict = None
    records: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def _log_path(directory):
    for name in LOG_NAMES:
        path = Path(directory) / name
        if path.exists():
            return path
    return None


_READ = {}   # (path, size, mtime) -> RunLog: figures that share runs (fig8/fig9, ...) parse each log once


def read_log(directory):
    """Parses a run directory's metrics log line by line. A bad last line is a torn write and is
    dropped (noted); a bad line followed by good ones means the file is damaged: unreadable."""
    path = _log_path(directory)
    if path is None:
        return RunLog("missing", notes=["no metrics.jsonl"])
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _READ:
        _READ[key] = _parse_log(path)
    return _READ[key]


def _parse_log(path):
    try:
        contents = parse_log(path)
    except DamagedLog as damage:
        where = f"damaged line {damage.line} of {damage.total}" if damage.line else f"{path.name}: {damage}"
        return RunLog("unreadable", notes=[where])
    except OSError as error:
        return RunLog("unreadable", notes=[f"{path.name}: {error}"])
    parsed, notes = contents.records, ["torn last line dropped"] if contents.torn else []
    if not parsed or parsed[0].get("kind") != "header":
        return RunLog("unreadable", notes=["no header record"] + notes)
    absent = [key for key in HEADER_KEYS if key not in parsed[0]]
    if absent:
        return RunLog("unreadable", notes=[f"header without {', '.join(absent)}"] + notes)
    end = parsed[-1] if parsed[-1].get("kind") == "end" else None
    if end is not None and is_failed(end):   # no result: never counted as finished
        return RunLog("failed", parsed[0], parsed[1:], notes + [str(end.get("reason", "failed"))])
    if end is None:
        notes.append(f"no end record (last step {max([r.get('step', 0) for r in parsed[1:]] or [0])})")
    return RunLog("finished" if end else "unfinished", parsed[0], parsed[1:], notes)


def _flat_config(config):
    return pd.json_normalize(config, sep=".").iloc[0].to_dict()


def run_columns(header):
    return {"run_id": header["run_id"], "seed": header["seed"], "scale": header["scale"],
            "scale_note": header["scale_note"], "run_sweep_id": header.get("sweep_id"),
            "git_commit": header.get("git_commit"),
            **{f"cfg.{k}": v for k, v in _flat_config(header["config"]).items()}}


def collect(results_root, sweep_id, scale, kinds=("eval",)):
    """Returns (records, status). records: one row per (finished run, record of `kinds`, model)
    with the run's `cfg.*` config columns and its `setting` (overrides without the seed); status:
    one row per run the sweep's manifest names (state, seed, setting, shared_from, notes)."""
    runs, frames, status = [], [], []
    for entry in manifest(results_root, sweep_id, scale):
        log = read_log(Path(results_root) / "runs" / entry["run_id"])
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


def main(argv=None):
    from . import registry

    parser = argparse.ArgumentParser(description="status of every figure's runs, read from the logs")
    parser.add_argument("ids", nargs="*", help="figure/table ids (default: all)")
    parser.add_argument("--results", default=str(COMMITTED))
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    parser.add_argument("--csv", help="also write every collected record of these ids to this CSV file")
    args = parser.parse_args(argv)
    tables = []
    for spec in registry.select(args.ids):
        data = registry.load(spec, args.results, args.scale)
        print("\n".join(data.status_lines()))
        if args.csv and not data.records.empty:
            tables.append(data.records.assign(figure=spec.id))
    if args.csv:
        pd.concat(tables).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
