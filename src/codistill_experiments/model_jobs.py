"""A codistillation run whose models are independent jobs (method.transport=files), as Anil et al.
2018 run them: each model trains in its own torch.distributed world of k ranks (all_reduce inside),
with its own run state and log, and reads its peers' checkpoints from shared storage. A model whose
job dies does not stop the others; rerun (or requeued), it resumes from its own committed state and
rejoins from its peers' newest snapshots.

A run directory (runs/<id>/) then holds:
  model<i>/             model i's job: metrics.jsonl (its header, a "start" record per attempt, its
                        evaluation records, its end record), state/ (its run state), lock, trace
  exchange/model<i>/    its parameter snapshots (codistill.snapshots), removed when the run ends
  model<i>.pt           its final parameters
  metrics.jsonl         the run's log, assembled by the last model to finish: the header, every
                        model's evaluation records in update order, a "down" record for each time a
                        model was down, and the end record
"""
import shutil
import time
from pathlib import Path

from . import file_lock, runlog

TRANSPORT_FILES = "files"
MERGE_LOCK = "merge.lock"


def uses_files(config):
    """Whether the run's models are independent jobs (config: the resolved config, a dict or node)."""
    return config["method"].get("transport") == TRANSPORT_FILES


def model_directory(run_directory, model):
    return Path(run_directory) / f"model{model}"


def exchange_directory(run_directory):
    return Path(run_directory) / "exchange"


def model_log_path(run_directory, model):
    return model_directory(run_directory, model) / runlog.METRICS_FILE


def model_ended(run_directory, model):
    return runlog.end_state(model_log_path(run_directory, model))[0] in (runlog.FINISHED, runlog.FAILED)


def open_model_log(directory, config, model, resume_step, environment=None):
    """Model `model`'s log in its job directory, with a "start" record for this attempt: the
    update it starts from and, for a resumed attempt, `last_seen`, the time of the newest record
    the previous attempt wrote (its last evaluation: the model was down from then on). Records
    after the resumed step are dropped: they are computed again. environment: the header's
    (runlog.run_environment), for a log that has none yet."""
    def attempt(earlier):
        seen = [record["time"] for record in earlier if "time" in record]
        return [{"kind": "start", "model": model, "step": resume_step or 0, "time": time.time(),
                 "last_seen": max(seen) if seen else None}]

    return runlog.MetricsLog.resume(directory, config, resume_step, kept_kinds=("header", "start"), attempt=attempt,
                                    environment=environment)


def down_records(records):
    """A model's "down" records from its log's "start" records: each resumed attempt says when the
    previous one was last seen and when this one started."""
    for record in records:
        if record["kind"] == "start" and record.get("last_seen") is not None:
            yield {"kind": "down", "model": record["model"], "from_time": record["last_seen"],
                   "to_time": record["time"], "down_s": record["time"] - record["last_seen"],
                   "resumed_from_step": record["step"]}


def run_log_records(config, logs):
    """The run's log from its models' logs (each a list of records, model order)."""
    evals = sorted((record for records in logs for record in records if record["kind"] == "eval"),
                   key=lambda record: (record["step"], record["model"]))
    top1 = {}
    for record in evals:
        top1.setdefault(record["step"], []).append(record["val_top1"])
    evals = [{**record, "val_top1_mean_over_models": sum(top1[record["step"]]) / len(top1[record["step"]])}
             for record in evals]
    downs = [down for records in logs for down in down_records(records)]
    ends = [records[-1] for records in logs]
    end = {"kind": "end", "steps": max(end["steps"] for end in ends),
           "wall_time": max(end["wall_time"] for end in ends),
           "model_wall_times": [end["wall_time"] for end in ends]}
    failed = [(model, end) for model, end in enumerate(ends) if runlog.is_failed(end)]
    if failed:
        end.update(status="failed", reason="; ".join(f"model {model}: {end.get('reason')}" for model, end in failed))
    first = logs[0][0] if logs and logs[0] else {}
    return [runlog.header(config, first.get("environment")), *evals, *downs, end]


def _merge_lock(run_directory):
    """Held while a model's job assembles the run's log; waits for another job's without limit."""
    return file_lock.exclusive_lock(Path(run_directory) / MERGE_LOCK)


def assemble_run_log(config, run_directory):
    """Once every model's log has ended, writes the run's log (atomically) and removes the
    snapshots; True when the run's log is complete. Each model's job calls it when it ends: the
    last one to end assembles it (under a lock, so that two ending at once write it once)."""
    run_directory = Path(run_directory)
    n = config["method"]["n"]
    with _merge_lock(run_directory):
        if runlog.is_finished(run_directory):
            return True
        if not all(model_ended(run_directory, model) for model in range(n)):
            return False
        logs = [runlog.read_records(model_log_path(run_directory, model)) for model in range(n)]
        *start, end = run_log_records(config, logs)
        log = runlog.MetricsLog(run_directory, start)
        log.write(end)
        log.close()
        shutil.rmtree(exchange_directory(run_directory), ignore_errors=True)
        return True
