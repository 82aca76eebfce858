"""Soak test of crash safety: SIGKILL a mini run at random moments, rerun the same command each
time, and check the finished metrics.jsonl equals an uninterrupted run's (wall times aside).

    python -m benchmarks.soak_resume [--kills 50] [--seed 0]

The test suite runs the same procedure with 3 kills on a shorter run (tests/test_reliability.py).
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codistill_experiments.runlog import METRICS_FILE, read_records

ROOT = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(ROOT / "src" / "run.py")]


def job(epochs):
    """2-way codistillation with checkpoint exchange (teachers, optimizer and counters must all
    survive a resume), LR and weight-decay steps at half and three quarters of training; on digits,
    whose runs take seconds."""
    milestones = f"[{epochs // 2},{epochs * 3 // 4}]"
    return ["workload=digits_mlp", "method=codistill", "method.exchange=checkpoints", "method.period=10", f"schedule.epochs={epochs}",
            "schedule.lr.warmup_epochs=1", f"schedule.lr.milestones={milestones}",
            "schedule.weight_decay.values=[1e-4,1e-5,0]", f"schedule.weight_decay.milestones={milestones}"]


JOB = job(80)


def run_directory(results_root):
    [directory] = (Path(results_root) / "runs").iterdir()
    return directory


def log_without_wall_time(results_root):
    records = read_records(run_directory(results_root) / METRICS_FILE)
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in records if r["kind"] != "end"]


def wait_for_training(results_root, process, limit=120):
    """Until this attempt's ranks run (they (re)write metrics.jsonl when training starts)."""
    runs = Path(results_root) / "runs"
    newest = lambda: max((p.stat().st_mtime_ns for p in runs.glob("*/metrics.jsonl")), default=0)  # noqa: E731
    before, deadline = newest(), time.time() + limit
    while time.time() < deadline and process.poll() is None and newest() <= before:
        time.sleep(0.05)


def kill_and_resume(results_root, kills, rng, max_delay=1.5, exits=None, job=JOB):
    """Kills `kills` attempts of `job` at random moments, then lets it finish. Returns
    (kills delivered, resumes seen, the finished run's exit code). An attempt that ended before its
    kill (the run had finished) is not killed; its exit code is appended to `exits` when given."""
    command = [*RUN, *job, f"results_root={results_root}"]
    delivered, resumes = 0, 0
    for _ in range(kills):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   start_new_session=True, text=True)
        wait_for_training(results_root, process)
        time.sleep(rng.uniform(0.0, max_delay))
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            delivered += 1
        elif exits is not None:
            exits.append(process.returncode)
        resumes += resume_lines(process.communicate()[0])
    final = subprocess.run(command, capture_output=True, text=True)
    return delivered, resumes + resume_lines(final.stdout), final.returncode


def resume_lines(output):
    return sum(line.startswith("resume") for line in output.splitlines())


def reference_log(results_root):
    subprocess.run([*RUN, *JOB, f"results_root={results_root}"], check=True, capture_output=True)
    return log_without_wall_time(results_root)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        expected = reference_log(Path(scratch) / "reference")
        rng, survived = random.Random(args.seed), 0
        for trial in range(args.kills):
            root = Path(scratch) / f"trial{trial}"
            delivered, resumes, code = kill_and_resume(root, 1, rng)
            same = code == 0 and log_without_wall_time(root) == expected
            survived += same
            print(f"kill {trial + 1}/{args.kills}: delivered={delivered} resumed={resumes > 0} "
                  f"identical={same}", flush=True)
    print(f"survived {survived} of {args.kills} kills")
    sys.exit(0 if survived == args.kills else 1)


if __name__ == "__main__":
    main()
