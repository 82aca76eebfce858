"""Runs the sweep of every figure and table at one scale on this machine, one sweep after the
other, each running up to --jobs of its jobs at once (launcher=local_parallel; default: as many
as fill the cores, cores // ranks per job), a job shared by several figures once (a rerun skips
finished runs and resumes cut ones); then packs the logs into the committed form
(figures/pack.py) that `make figures` and `make report` read.

    python -m figures.reproduce_all [--results results] [--into paper/logs] [--scale mini] [--jobs N] [--dry-run]
                                    [--allow-other-machines]

Every comparison draws its runs from one machine: a --results folder that holds runs another machine
made (another CPU, core count or CPU signature, read from their headers) is refused before any
sweep starts, since resuming there would mix machines whose kernels round differently
(--allow-other-machines overrides).

--dry-run lists each sweep's jobs and runs nothing. A sweep that fails does not stop the others;
the exit status says whether all succeeded, and the logs are packed either way (collect reports
what is missing).
"""
import argparse
import os
import subprocess
import sys
import time

from codistill_experiments import runlog

from . import pack, registry
from .logs.provenance import runs_of_other_machines
from .paths import COMMITTED, REPO

# Sweeps that no figure draws: the regime check's (`make regime`, figures/regime/: the stand-ins' and
# the frontier's regime) and the tuning runs on held-out training data of the frontier and of the
# baselines (`python -m figures.tuning`).
CHECK_SWEEPS = ["regime", "frontier_regime", "frontier_regime_lm", "frontier_tuning", "baseline_tuning", "translation_regime"]


def sweeps_at(scale):
    """Every registry sweep with jobs at `scale`, in registry order, each once, then the checks'."""
    chosen, skipped = [], []
    for sweep_id in [spec.sweep_id for spec in registry.SPEC_LIST] + CHECK_SWEEPS:
        scales = registry.sweep_scales(sweep_id)
        if sweep_id in chosen or sweep_id in skipped:
            continue
        (chosen if scales and scale in scales else skipped).append(sweep_id)
    return chosen, skipped


def run_sweep(sweep_id, scale, results, dry_run, jobs=None):
    command = [sys.executable, str(REPO / "src" / "run.py"), "-m", f"sweep={sweep_id}", f"scale={scale}",
               "launcher=local_parallel", *([f"launcher.jobs_at_once={jobs}"] if jobs else [])]
    if dry_run:
        command.append("dry_run=true")
    environment = {**os.environ, "CODISTILL_RESULTS": str(results)}
    return subprocess.run(command, cwd=REPO, env=environment).returncode


def refuse_other_machines(results):
    """Exits (status 2) when `results` holds runs that another machine made, naming them."""
    here = runlog.run_environment("cpu", None, "float32")
    other = runs_of_other_machines(results, here)
    if other.empty:
        return
    made_by = ", ".join(f"{count} by {machine}" for machine, count in
                        (other["machine"] + other["signature"].map(lambda s: f" [{s}]" if s else "")).value_counts().items())
    print(f"{results} holds {len(other)} runs made on another machine ({made_by}); this machine is "
          f"{here['cpu']}, {here['cores']} cores [{here['cpu_signature']}]. Resuming them here would mix "
          "machines whose CPU kernels round differently. Use a new --results folder, rerun on that "
          "machine, or pass --allow-other-machines.", file=sys.stderr)
    raise SystemExit(2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="where the runs are written")
    parser.add_argument("--into", default=str(COMMITTED), help="where the packed logs go")
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    parser.add_argument("--jobs", type=int, default=None,
                        help="jobs of a sweep running at once (default: cores // ranks per job, at least 1)")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--allow-other-machines", action="store_true",
                        help="resume into --results even when another machine made some of its runs")
    args = parser.parse_args(argv)
    if not args.allow_other_machines:
        refuse_other_machines(args.results)
    chosen, skipped = sweeps_at(args.scale)
    if skipped:
        print(f"no sweep file, or no job at {args.scale} scale: {', '.join(skipped)}")
    started, failed, timings = time.perf_counter(), [], []
    for index, sweep_id in enumerate(chosen, 1):
        print(f"[{index}/{len(chosen)}] sweep {sweep_id} at {args.scale} scale "
              f"({(time.perf_counter() - started) / 60:.1f} min so far)", flush=True)
        begun = time.perf_counter()
        if run_sweep(sweep_id, args.scale, args.results, args.dry_run, args.jobs) != 0:
            failed.append(sweep_id)
        timings.append((sweep_id, time.perf_counter() - begun))
    print("time per sweep: " + ", ".join(f"{s} {t:.0f} s" for s, t in timings))
    print(f"{len(chosen)} sweeps in {(time.perf_counter() - started) / 60:.1f} min"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if not args.dry_run:
        sweeps, written, missing, removed = pack.pack(args.results, args.into, args.scale, replace=True)
        print(f"packed {sweeps} manifests into {args.into}: {written} run logs written, {removed} stale removed"
              + (f", {len(missing)} runs without a log" if missing else ""))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
