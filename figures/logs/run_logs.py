"""One run's metrics log, read from metrics.jsonl only: finished, unfinished (no end record),
missing (no log), unreadable (no header, a damaged line before the last, a damaged gzip file) or
failed (an end record saying so, e.g. a diverged run: no result). A torn last line (a crash
mid-write) is dropped and said so; the reader is codistill_experiments.runlog's, the one the
engine resumes with. Logs may be plain (`metrics.jsonl`) or gzipped (`metrics.jsonl.gz`, the
committed form: paper/logs/).

A run whose models are independent jobs (method.transport=files) has its log only once its last
model has ended (codistill_experiments/model_jobs.py); until then each model's own log
(model<i>/metrics.jsonl) says how far it is, and the run is unfinished with a note per model."""
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from codistill_experiments import runlog
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
    dropped (noted); a bad line followed by good ones means the file is damaged: unreadable. A run
    of independent model jobs whose log is not complete is unfinished, with a note per model."""
    path = _log_path(directory)
    log = RunLog("missing", notes=["no metrics.jsonl"]) if path is None else _cached(path)
    if log.state not in ("missing", "unfinished"):
        return log
    # Read afresh each time, not cached with the run's log: the models' logs grow while it does not change.
    models = model_logs(directory)
    if not models:
        return log
    headers = [records[0] for records in models.values()
               if isinstance(records, list) and records and records[0].get("kind") == "header"]
    n = headers[0]["config"]["method"]["n"] if headers and "config" in headers[0] else max(models) + 1
    progress = [model_progress(model, models.get(model)) for model in range(n)]
    if path is not None:
        notes = log.notes
    elif all(ended for _, ended in progress):
        notes = ["every model has ended: rerunning the sweep assembles the run's log"]
    else:
        notes = ["the run's log is assembled once every model has ended"]
    return replace(log, state="unfinished", header=log.header or (headers[0] if headers else None),
                   notes=[*notes, *(note for note, _ in progress)])


def _cached(path):
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _READ:
        _READ[key] = _parse_log(path)
    return _READ[key]


def model_logs(directory):
    """{model index: its log's records, or the DamagedLog raised reading it} of a run whose models
    are independent jobs; {} for any other run."""
    found = {}
    for path in Path(directory).glob(f"model*/{METRICS_FILE}"):
        match = re.fullmatch(r"model(\d+)", path.parent.name)
        if match:
            try:
                found[int(match.group(1))] = parse_log(path).records
            except DamagedLog as damage:
                found[int(match.group(1))] = damage
    return dict(sorted(found.items()))


def model_progress(model, records):
    """(note, ended) of one model of a run of independent model jobs, from its log's records (None:
    no log yet; a DamagedLog): the last update and epoch it evaluated, whether it has ended, and
    how many times it was resumed (a "start" record with `last_seen`: model_jobs.open_model_log)."""
    if records is None:
        return f"model {model}: not started", False
    if isinstance(records, DamagedLog):
        where = f"line {records.line} of {records.total}" if records.line else "the file"
        return f"model {model}: its log is damaged at {where}", False
    evals = [record for record in records if record.get("kind") == "eval"]
    reached = f"epoch {evals[-1]['epoch']:g}, update {evals[-1]['step']}" if evals else "no evaluation yet"
    end = records[-1] if records and records[-1].get("kind") == "end" else None
    said = "not ended" if end is None else f"failed ({end.get('reason')})" if is_failed(end) else "ended"
    resumed = sum(record.get("kind") == "start" and record.get("last_seen") is not None for record in records)
    return f"model {model}: {reached}, {said}" + (f", resumed {resumed}x" if resumed else ""), end is not None


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
    """The config's values under dotted keys, ordered as pandas.json_normalize orders them (the
    top level's values, then each nested section's): the same columns, at a fraction of the cost of
    a one-row DataFrame per run."""
    def flat(section, prefix):
        for key, value in section.items():
            if isinstance(value, dict):
                yield from flat(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value
    return {**{key: value for key, value in config.items() if not isinstance(value, dict)},
            **dict(flat({key: value for key, value in config.items() if isinstance(value, dict)}, ""))}


# Keys a header leaves out at their default (runlog.DROPPED_AT_DEFAULT), shown at it, so that a group
# of runs selects a run logged before the key existed by its value (supervised.label_smoothing: 0.0).
# Not schedule.optimizer: a translation schedule's optimizer is fairseq's, not the vision default.
SHOWN_AT_DEFAULT = (("supervised",), ("data", "split"))


def run_columns(header):
    """The run-level columns of a run's records: its identity, scale and every config value (cfg.*)."""
    config = header["config"]
    for path in SHOWN_AT_DEFAULT:
        config = runlog.with_default(config, path, runlog.DROPPED_AT_DEFAULT[path])
    return {"run_id": header["run_id"], "seed": header["seed"], "scale": header["scale"],
            "scale_note": header["scale_note"], "run_sweep_id": header.get("sweep_id"),
            "git_commit": header.get("git_commit"),
            **{f"cfg.{k}": v for k, v in _flat_config(config).items()}}
