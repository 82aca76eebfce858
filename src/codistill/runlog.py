"""Run identity and the structured log every figure reads.

A run directory is named by its content: `<scale>-<method>-<hash of the resolved config>`, so the
same job in two sweeps is one run, a rerun finds finished work, and figures never glob times.
`metrics.jsonl` holds one JSON object per line: a header (provenance and resolved config), one
record per (evaluation, model), and an end record once the run has finished.
"""
import hashlib
import json
import os
import subprocess
from pathlib import Path

# Keys that choose where or how a job runs, not what it computes.
NOT_IDENTITY = ("launcher", "dry_run", "results_root", "sweep_id", "trace", "hydra", "expected_run_id")
METRICS_FILE = "metrics.jsonl"


def atomic_write_bytes(path, write):
    """write(handle) into a temporary file beside `path`, flush and fsync, then rename: a crash
    leaves the old file or the new one, never a torn one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def append_record(path, record):
    """Appends one JSON line, flushed and fsynced (a crash loses at most the line being written)."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def keep_records(path, keep):
    """Rewrites a JSON-lines file, atomically, with the records for which keep(record) holds (a
    torn last line, left by a crash, is dropped); a missing file stays missing."""
    path = Path(path)
    if not path.exists():
        return
    text = "".join(json.dumps(record) + "\n" for record in read_records(path) if keep(record))
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def identity(config):
    return {key: value for key, value in config.items() if key not in NOT_IDENTITY}


def run_id(config):
    """config: the resolved config as a plain dict."""
    digest = hashlib.sha1(json.dumps(identity(config), sort_keys=True).encode()).hexdigest()[:12]
    return f"{config['scale']['name']}-{config['method']['name']}-{digest}"


def run_dir(config):
    return Path(config["results_root"]) / "runs" / run_id(config)


def read_records(path):
    """Every complete JSON line of a metrics file; a torn last line (a crash mid-write) is dropped."""
    records = []
    with open(path) as handle:
        for line in handle:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def is_finished(directory):
    path = Path(directory) / METRICS_FILE
    if not path.exists():
        return False
    records = read_records(path)
    return bool(records) and records[-1].get("kind") == "end"


def git_state():
    """(commit, dirty) of the repository this code runs from; (None, None) outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                capture_output=True, text=True, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        return None, None


def header(config):
    commit, dirty = git_state()
    return {
        "kind": "header",
        "run_id": run_id(config),
        "sweep_id": config.get("sweep_id"),
        "seed": config["seed"],
        "scale": config["scale"]["name"],
        "scale_note": config["scale"]["note"],
        "config": identity(config),
        "git_commit": commit,
        "git_dirty": dirty,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


class MetricsLog:
    """Appends one JSON object per line, flushed and fsynced, so a crash loses at most the line
    being written. Rank 0 only. `start` lines are written first, atomically (a new run's header,
    or what a resumed run keeps of its earlier attempt)."""

    def __init__(self, directory, start):
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / METRICS_FILE
        text = "".join(json.dumps(record) + "\n" for record in start)
        atomic_write_bytes(path, lambda handle: handle.write(text.encode()))
        self.handle = open(path, "a")

    @classmethod
    def resume(cls, directory, config, last_step):
        """Keeps the header and the records up to the committed `last_step`: a torn last line
        and records written after the last committed state are dropped (they are recomputed)."""
        path = directory / METRICS_FILE
        earlier = read_records(path) if path.exists() else []
        if not earlier or earlier[0].get("kind") != "header":
            earlier = [header(config)]
        kept = [r for r in earlier if r["kind"] == "header" or (r["kind"] == "eval" and r["step"] <= last_step)]
        return cls(directory, kept)

    def write(self, record):
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self):
        self.handle.close()
