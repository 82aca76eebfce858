"""`make bench`: every benchmark of this package in one run, then benchmarks/results.md and
figures/out/bench_*.png from what it measured (benchmarks/results.json keeps the raw numbers).
Run from the repository root:

    python -m benchmarks.bench                      # everything (~25 min on 2 cores)
    python -m benchmarks.bench --parts bytes loop   # re-measure some parts, keeping the others' numbers
    python -m benchmarks.bench --report-only        # redraw results.md and plots from results.json
    python -m benchmarks.bench --parts stepmodel    # part 6 (the step-time model) alone, in seconds
"""
import argparse
import json
import os
import time

from . import report
from .benchlib import RESULTS_JSON, machine

PARTS = ("bytes", "overhead", "network", "sharded", "loop", "collect", "calibration", "stepmodel", "modeljobs",
         "paperpath", "peercheck", "listing")


def progress(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_part(name, results=None):
    from . import (
        bench_bytes,
        bench_calibration,
        bench_collect,
        bench_listing,
        bench_loop,
        bench_modeljobs,
        bench_network,
        bench_overhead,
        bench_paperpath,
        bench_peer_check,
        bench_sharded,
        bench_stepmodel,
    )

    network = (results or {}).get("parts", {}).get("network")
    calibration = (results or {}).get("parts", {}).get("calibration")
    runner = {"bytes": bench_bytes.run, "overhead": bench_overhead.run, "network": bench_network.run,
              "sharded": bench_sharded.run,
              "loop": bench_loop.run, "collect": bench_collect.run,
              "calibration": bench_calibration.run,
              "stepmodel": lambda progress: bench_stepmodel.run(progress, network, calibration),
              "modeljobs": bench_modeljobs.run, "paperpath": bench_paperpath.run,
              "peercheck": bench_peer_check.run, "listing": bench_listing.run}[name]
    load_before, started = os.getloadavg(), time.perf_counter()
    result = runner(progress=progress)
    seconds = time.perf_counter() - started
    progress(f"{name}: done in {seconds:.0f} s")
    return {**result, "seconds": seconds, "load_before": load_before, "load_after": os.getloadavg()}


def merged(previous, remeasured):
    """The previous results with some parts measured again: the rest keep their numbers, and the
    re-measurement is listed (command, machine, date, commit) so results.md can say which is which;
    an earlier re-measurement keeps only the parts not measured since."""
    runs = [{**run, "parts": [part for part in run["parts"] if part not in remeasured["parts"]]}
            for run in previous.get("remeasured", [])]
    runs = [run for run in runs if run["parts"]]
    runs.append({key: remeasured[key] for key in ("command", "machine", "total_seconds")}
                | {"parts": list(remeasured["parts"])})
    return {**previous, "parts": {**previous["parts"], **remeasured["parts"]}, "remeasured": runs}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--report-only", action="store_true")
    arguments = parser.parse_args(argv)
    if not arguments.report_only:
        started = time.perf_counter()
        command = "make bench" if arguments.parts == list(PARTS) else (
            "python -m benchmarks.bench --parts " + " ".join(arguments.parts))
        results = {"machine": machine(), "command": command, "parts": {}}
        for name in arguments.parts:
            progress(f"{name}: start")
            results["parts"][name] = run_part(name, results)
        results["total_seconds"] = total = time.perf_counter() - started
        if arguments.parts != list(PARTS) and RESULTS_JSON.exists():
            results = merged(json.loads(RESULTS_JSON.read_text()), results)   # keeps the first run's total
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
        progress(f"all parts done in {total:.0f} s; raw numbers in {RESULTS_JSON}")
    written = report.write(json.loads(RESULTS_JSON.read_text()))
    for path in written:
        progress(f"wrote {path}")


if __name__ == "__main__":
    main()
