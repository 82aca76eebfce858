"""One run's metrics log, read from metrics.jsonl only: finished, unfinished (no end record),
missing (no log), unreadable (no header, a damaged line before the last, a damaged gzip file) or
failed (an end record saying so, e.g. a diverged run: no result). A torn last line (a crash
mid-write) is dropped and said so; the reader is codistill_experiments.runlog's, the one the
engine resumes with. Logs may be plain (`metrics.jsonl`) or gzipped (`metrics.jsonl.gz`, the
committed form: paper/logs/)."""
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from codistill_experiments.runlog import METRICS_FILE, DamagedLog, is_failed, parse_log

LOG_NAMES = (METRICS_FILE, METRICS_FILE + ".gz")
STATES = ("finished", "unfinished", "missing", "unreadable", "failed")
HEADER_KEYS = ("run_id", "seed", "scale", "scale_note", "config")


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
    """The run-level columns of a run's records: its identity, scale and every config value (cfg.*)."""
    return {"run_id": header["run_id"], "seed": header["seed"], "scale": header["scale"],
            "scale_note": header["scale_note"], "run_sweep_id": header.get("sweep_id"),
            "git_commit": header.get("git_commit"),
            **{f"cfg.{k}": v for k, v in _flat_config(header["config"]).items()}}
