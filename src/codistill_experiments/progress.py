"""What rank 0 of a vision run prints while it trains, on stdout, flushed (so that the same lines
reach a Slurm job's output file):

- one line per evaluation: epoch, update, each model's training loss and top-1, the bits this
  device has sent, training samples per second (all models together) and the time left;
- a short line (update, samples per second, time left) when `CODISTILL_PROGRESS_INTERVAL_S`
  (default 60) seconds of wall time pass without an evaluation, i.e. within long epochs;
- a summary when the run ends: each model's and the ensemble's final top-1, wall time, the log.

`CODISTILL_PROGRESS` chooses how much: `full` (the default), `quiet` (the summary only, one line
per run: what `src/run.py -m` sets for sweeps run here, where hundreds of mini runs share one
terminal) or `off`. The per-update cost is one clock read: nothing here synchronises with the
device or reads the config while training.
"""
import os
import sys
import time

from .runlog import METRICS_FILE, read_records

MODES = ("full", "quiet", "off")
MODE_VARIABLE = "CODISTILL_PROGRESS"
INTERVAL_VARIABLE = "CODISTILL_PROGRESS_INTERVAL_S"
DEFAULT_INTERVAL_S = 60.0


def mode():
    chosen = os.environ.get(MODE_VARIABLE, "full")
    if chosen not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={chosen!r}: allowed: {', '.join(MODES)}")
    return chosen


def interval_s():
    value = os.environ.get(INTERVAL_VARIABLE, "")
    return float(value) if value else DEFAULT_INTERVAL_S


def duration(seconds):
    """3725 -> '1h02m', 192 -> '3m12s', 7.4 -> '7s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def bits(count):
    """Decimal units, as link speeds are quoted: 2.5e9 -> '2.50 Gbit'."""
    for factor, unit in ((1e12, "Tbit"), (1e9, "Gbit"), (1e6, "Mbit"), (1e3, "kbit")):
        if count >= factor:
            return f"{count / factor:.2f} {unit}"
    return f"{int(count)} bit"


def number(value):
    """An epoch count without trailing zeros: 3.0 -> '3', 12.5 -> '12.5'."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


class Progress:
    """Rank 0's reporter. `samples_per_update`: training samples of one update, all models."""

    def __init__(self, run_id, run_directory, total_steps, steps_per_epoch, samples_per_update, step, out=None):
        self.run_id, self.log_path = run_id, run_directory / METRICS_FILE
        self.total_steps, self.steps_per_epoch = total_steps, steps_per_epoch
        self.samples_per_update = samples_per_update
        self.mode, self.interval_s = mode(), interval_s()
        self.out = out or sys.stdout
        self.first_step, self.started = step, time.perf_counter()
        self.next_line_at = time.monotonic() + self.interval_s

    def say(self, text):
        print(text, file=self.out, flush=True)

    def rate_and_left(self, step):
        """(samples per second, seconds left) measured over this attempt, evaluations included."""
        seconds = time.perf_counter() - self.started
        updates = step - self.first_step
        if updates <= 0 or seconds <= 0:
            return None, None
        return updates * self.samples_per_update / seconds, (self.total_steps - step) * seconds / updates

    def pace(self, step):
        rate, left = self.rate_and_left(step)
        if rate is None:
            return "measuring speed"
        return f"{rate:,.0f} samples/s · {duration(left)} left"

    def update(self, step):
        """Called after every update: prints the short line once the interval has passed."""
        if time.monotonic() < self.next_line_at:
            return
        self.next_line_at = time.monotonic() + self.interval_s
        if self.mode == "full":
            self.say(f"  epoch {number(step / self.steps_per_epoch)} · update {step}/{self.total_steps} · "
                     f"{self.pace(step)}")

    def evaluation(self, records):
        """The records one evaluation wrote to the log, one per model."""
        self.next_line_at = time.monotonic() + self.interval_s
        if self.mode != "full":
            return
        first = records[0]
        models = " · ".join(f"model {r['model']} loss {r['train_loss']:.4f} top-1 {r['val_top1']:.2f}%"
                            for r in records)
        ensemble = f" · ensemble {first['ensemble_top1']:.2f}%" if first.get("ensemble_top1") is not None else ""
        total_epochs = self.total_steps / self.steps_per_epoch
        self.say(f"epoch {number(first['epoch'])}/{number(total_epochs)} · update {first['step']}/{self.total_steps}"
                 f" · {models}{ensemble} · sent {bits(first['comm_bits_inter_node'])} inter-node, "
                 f"{bits(first['comm_bits_intra_node'])} intra-node · {self.pace(first['step'])}")

    def finished(self, wall_time):
        """The summary, read back from the run's log (a run resumed after its last evaluation has
        evaluated nothing in this attempt)."""
        if self.mode == "off":
            return
        self.say(summary(self.run_id, read_records(self.log_path), wall_time, self.log_path))


def summary(run_id, records, wall_time, log_path):
    """'done <run id> in 3m12s: top-1 model 0 91.20%, model 1 91.60%, ensemble 92.10% · log <path>'."""
    evals = [r for r in records if r.get("kind") == "eval"]
    last = [r for r in evals if r["step"] == evals[-1]["step"]] if evals else []
    scores = [f"model {r['model']} {r['val_top1']:.2f}%" for r in last]
    if last and last[0].get("ensemble_top1") is not None:
        scores.append(f"ensemble {last[0]['ensemble_top1']:.2f}%")
    return (f"done {run_id} in {duration(wall_time)}: top-1 {', '.join(scores) or 'not evaluated'} "
            f"· log {log_path}")
