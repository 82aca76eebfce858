"""Run identity and the structured log every figure reads.

A run directory is named by its content: `<scale>-<method>-<hash of the resolved config>`, so the
same job in two sweeps is one run, a rerun finds finished work, and figures never glob times.
`metrics.jsonl` holds one JSON object per line: a header (provenance and resolved config), one
record per (evaluation, model), and an end record once the run has finished ("status": "failed"
in it when the run stopped without a result, e.g. diverged). `parse_log` is the one reader.
"""
import gzip
import hashlib
import json
import os
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

from codistill.internals import atomic_write_bytes

# Keys that choose where or how a job runs, not what it computes.
NOT_IDENTITY = ("launcher", "dry_run", "results_root", "sweep_id", "trace", "hydra", "expected_run_id",
                "model_job", "job_ranks", "save_predictions", "update_pause_s")
# Method keys that only a file transport reads, and how long it waits: a run over collectives is
# identified without them (it computes what it computed before they existed).
FILES_ONLY = ("transport", "snapshot_mode")
HOW_LONG = ("snapshot_timeout_s", "peer_start_timeout_s")
# Keys that came after runs were logged, each by its path in the config (a whole block, or one key)
# and its default: at the default it computes what a run without it computed, so it is left out of
# the identity and those runs keep their run ids; at any other value it is part of it.
DROPPED_AT_DEFAULT = {
    ("supervised",): {"label_smoothing": 0.0, "smoothing_prior": "uniform"},   # Anil et al. Sec. 3.3
    ("data", "split"): "same",
    ("schedule", "optimizer"): "sgd",
    ("schedule", "clip_norm"): None,                  # the torch engine's gradient clipping
    ("method", "prediction_topk"): None,
    ("method", "checkpoint_bits"): 32,                # compressed checkpoints
    ("method", "checkpoint_delta_fraction"): None,
    ("workload", "validate_interval_updates"): None,  # a fairseq language model's validations within an epoch
    ("workload", "alpha_scale"): None,                # a translation stand-in's distillation per logit
}
# A fairseq job's snapshot mode (lockstep / async) was workload.exchange_mode until it became
# method.snapshot_mode, the one name model jobs of every workload use. Run ids hash it where it was:
# identity puts it back at workload.exchange_mode (lockstep for a method without one: nothing is
# exchanged), so the runs logged before keep their ids; a header written before holds it there.
FAIRSEQ_TASKS = ("translation", "language_modeling")
METRICS_FILE = "metrics.jsonl"


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


def without_default(config, path, default):
    """config less the key at `path` when its value equals `default`; the dicts on the way are
    copied, the config is left as it is."""
    head, *rest = path
    if head not in config:
        return config
    value = config[head]
    if not rest:
        return {key: kept for key, kept in config.items() if key != head} if value == default else config
    if not isinstance(value, dict):
        return config
    return {**config, head: without_default(value, rest, default)}


def with_default(config, path, default):
    """config with `default` at `path` where the key is absent (a header written before the key
    existed, or at its default, which identity leaves out); the dicts on the way are copied."""
    head, *rest = path
    if not rest:
        return config if head in config else {**config, head: default}
    value = config.get(head, {})
    return {**config, head: with_default(value, rest, default)} if isinstance(value, dict) else config


def with_snapshot_mode_where_it_was(config):
    """config with a fairseq job's method.snapshot_mode also at workload.exchange_mode, where run
    ids hash it (FAIRSEQ_TASKS above); other configs, and headers that hold it there, as they are."""
    workload, method = config.get("workload"), config.get("method")
    if not isinstance(workload, dict) or workload.get("task") not in FAIRSEQ_TASKS or "exchange_mode" in workload:
        return config
    mode = method.get("snapshot_mode", "lockstep") if isinstance(method, dict) else "lockstep"
    return {**config, "workload": {**workload, "exchange_mode": mode}}


def identity(config):
    kept = with_snapshot_mode_where_it_was(
        {key: value for key, value in config.items() if key not in NOT_IDENTITY})
    method = kept.get("method")
    if isinstance(method, dict) and "transport" in method:
        dropped = HOW_LONG + (FILES_ONLY if method["transport"] == "collectives" else ())
        kept["method"] = {key: value for key, value in method.items() if key not in dropped}
    for path, default in DROPPED_AT_DEFAULT.items():
        kept = without_default(kept, path, default)
    return kept


def run_id(config):
    """config: the resolved config as a plain dict."""
    digest = hashlib.sha1(json.dumps(identity(config), sort_keys=True).encode()).hexdigest()[:12]
    return f"{config['scale']['name']}-{config['method']['name']}-{digest}"


def run_dir(config):
    return Path(config["results_root"]) / "runs" / run_id(config)


class DamagedLog(ValueError):
    """A metrics log with an undecodable line before its last: damage, not a crash mid-write.
    Nothing may rewrite it (its finished records would be lost); `line` is 1-based, None when
    the file itself cannot be read (e.g. a damaged gzip stream)."""

    def __init__(self, path, line, total, why=""):
        self.path, self.line, self.total = Path(path), line, total
        where = f"line {line} of {total}" if line is not None else "the file"
        super().__init__(f"{path}: {where} is damaged{': ' + why if why else ''}")


# The fields every record of a kind carries, whatever wrote it (the engine, a model job, the
# fairseq path): the ones the readers key on. A record without them, or of no known kind, is valid
# JSON but not a record: damage, never a finished run's line.
RECORD_FIELDS = {
    "header": ("run_id", "config"),
    "eval": ("model", "step"),
    "test": ("model", "step"),
    "end": ("steps",),
    "start": ("model", "step"),   # a model job began (or resumed) its model (model_jobs.py)
    "down": ("model",),           # a model job was seen to have stopped
    "trace": ("step",),           # a fairseq model's per-update hashes (trace=true: model<i>/trace.jsonl)
}
WHOLE_NUMBERS = ("model", "step", "steps")


def record_problem(record):
    """Why a decoded line is not a record of its kind (None when it is): not an object, an unknown
    kind, a field its kind always has missing, a model or update that is not a whole number, or a
    failed end record without its reason."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not a record"
    kind = record.get("kind")
    if kind not in RECORD_FIELDS:
        return f"a record of unknown kind {kind!r}"
    missing = [field for field in RECORD_FIELDS[kind] if field not in record]
    if missing:
        return f"a record of kind {kind!r} without {', '.join(missing)}"
    for field in WHOLE_NUMBERS:
        value = record.get(field)
        if field in record and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            return f"a record of kind {kind!r} whose {field} is {value!r}, not a whole number"
    if kind == "end" and is_failed(record) and "reason" not in record:
        return "a failed end record without its reason"
    return None


@dataclass
class LogContents:
    records: list
    torn: bool   # an undecodable last line (a crash while writing it) was dropped


def parse_log(path):
    """The records of a metrics log, plain or gzipped (the committed form). An undecodable last
    line is a torn write, dropped and said so (`torn`); an undecodable line followed by good ones
    is damage and raises DamagedLog naming it, as does a line that decodes but is not a record of
    its kind (record_problem: a crash tears a line, it never writes a well-formed wrong one). The one reader of logs: the engine (resume,
    is_finished) and the figures pipeline (figures/logs/run_logs.py) both read through it."""
    path = Path(path)
    try:
        with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as handle:
            lines = handle.read().split("\n")
    except (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as error:
        raise DamagedLog(path, None, None, str(error)) from error
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    records, torn = [], False
    total = len(lines) - (lines[-1] == "")
    for index, (number, line) in enumerate(numbered):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if index < len(numbered) - 1:
                raise DamagedLog(path, number, total, error.msg) from None
            torn = True
            continue
        problem = record_problem(record)
        if problem:
            raise DamagedLog(path, number, total, problem)
        records.append(record)
    return LogContents(records, torn)


def read_records(path):
    """Every record of a metrics file; a torn last line (a crash mid-write) is dropped, damage
    elsewhere raises DamagedLog."""
    return parse_log(path).records


FINISHED, FAILED, DAMAGED = "finished", "failed", "damaged log"


def end_state(path):
    """How a metrics log (plain or gzipped) ends: (state, detail). (None, None) while the run has no
    end record (or no log); (FINISHED, end record); (FAILED, end record) for a run that stopped
    without a result (e.g. it diverged); (DAMAGED, the DamagedLog) for a log damaged before its
    last line, which nothing may rewrite. The one classification the entry point, the sweeper and
    the packing of logs share."""
    path = Path(path)
    if not path.exists():
        return None, None
    try:
        records = read_records(path)
    except DamagedLog as damage:
        return DAMAGED, damage
    if not records or records[-1].get("kind") != "end":
        return None, None
    return (FAILED if is_failed(records[-1]) else FINISHED), records[-1]


def is_failed(record):
    """An end record of a run that stopped without a result (e.g. it diverged)."""
    return record.get("status") == "failed"


def is_finished(directory):
    """Whether the run has ended, successfully or not: its log ends with an end record (a failed
    run is finished too: a rerun would only repeat its failure; `end_state` says which)."""
    return end_state(Path(directory) / METRICS_FILE)[0] in (FINISHED, FAILED)


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


def header(config, environment=None):
    """The first record of a run's log: what ran (its config, code version) and where
    (`environment`: run_environment's, from the process that trains)."""
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
        "environment": environment,
    }


def run_environment(device_type, backend, precision, gpus=None):
    """Where a run trains, for its header: the host, its CPU and the cores this process may use,
    the versions of Python, torch, numpy and fairseq (None where not installed), the device type
    ("cuda" or "cpu"), the collectives' backend and the arithmetic's precision; on GPUs also their
    model (as the NVIDIA driver names it, read without CUDA), how many the job's process sees
    (`gpus`), and the CUDA, cuDNN and NCCL versions torch was built with. Two machines' CPU kernels
    round differently: comparisons draw on runs of one machine, which this names (`cpu_signature`
    tells apart CPUs that a virtual machine names alike)."""
    import platform
    import socket

    import numpy
    import torch

    environment = {"host": socket.gethostname(), "cpu": cpu_model(),
                   "cpu_signature": cpu_signature(torch.backends.cpu.get_cpu_capability()),
                   "cores": len(os.sched_getaffinity(0)),
                   "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
                   "fairseq": distribution_version("fairseq-fixed", "fairseq"), "device": device_type,
                   "backend": backend, "precision": precision}
    if device_type == "cuda":
        environment.update(gpu=gpu_model(), gpus=gpus, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                           nccl=".".join(str(part) for part in torch.cuda.nccl.version()))
    return environment


def distribution_version(*names):
    """The installed version of the first of these distributions that is installed, else None
    (read from its metadata: importing fairseq costs seconds)."""
    from importlib import metadata

    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def first_cpu(cpuinfo=Path("/proc/cpuinfo")):
    """{field: value} of the first CPU that /proc/cpuinfo describes; {} where it cannot be read."""
    try:
        first = cpuinfo.read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {key.strip(): value.strip() for key, value in
            (line.split(":", 1) for line in first.splitlines() if ":" in line)}


def cpu_model(cpuinfo=Path("/proc/cpuinfo")):
    """The CPU's model name (Linux), else what platform knows."""
    import platform

    return first_cpu(cpuinfo).get("model name") or platform.processor() or platform.machine()


def cpu_signature(kernels, cpuinfo=Path("/proc/cpuinfo")):
    """'family F model M stepping S; <kernels>' of the first CPU (Linux; ARM: implementer and part),
    where `kernels` is the instruction set torch picks its CPU kernels for
    (torch.backends.cpu.get_cpu_capability(): "AVX512", "AVX2", ...): a virtual machine may name two
    CPU generations alike ("AMD EPYC"), and this tells them apart."""
    fields = first_cpu(cpuinfo)
    identity = " ".join(f"{name} {fields[key]}" for key, name in
                        (("cpu family", "family"), ("model", "model"), ("stepping", "stepping"),
                         ("CPU implementer", "implementer"), ("CPU part", "part")) if key in fields)
    return f"{identity or 'unknown CPU'}; {kernels}"


def gpu_model(driver_gpus=Path("/proc/driver/nvidia/gpus")):
    """The model of this machine's first NVIDIA GPU, from the driver's description of it (no CUDA
    call: a process that queries CUDA cannot fork ranks that use it); None where it cannot be read."""
    try:
        for information in sorted(driver_gpus.glob("*/information")):
            for line in information.read_text().splitlines():
                if line.startswith("Model:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


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
    def resume(cls, directory, config, last_step, kept_kinds=("header",), attempt=None, environment=None):
        """Keeps the header (and records of `kept_kinds`) and the eval records up to the committed
        `last_step`: a torn last line and records written after the last committed state are
        dropped (they are recomputed). attempt(earlier records): records this attempt starts with
        (a model job's "start" record: model_jobs.open_model_log). A log without a header starts
        with this attempt's (`environment`: header's)."""
        path = Path(directory) / METRICS_FILE
        earlier = read_records(path) if last_step is not None and path.exists() else []
        if not earlier or earlier[0].get("kind") != "header":
            earlier = [header(config, environment)]
        kept = [r for r in earlier if r["kind"] in kept_kinds or (r["kind"] == "eval" and r["step"] <= last_step)]
        return cls(Path(directory), [*kept, *(attempt(earlier) if attempt else [])])

    def write(self, record):
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self):
        self.handle.close()
