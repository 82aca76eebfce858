"""`make bench`: every benchmark of this folder in one run, then benchmarks/results.md and
figures/out/bench_*.png from what it measured (benchmarks/results.json keeps the raw numbers).

    python benchmarks/bench.py                      # everything (~15 min on 2 cores)
    python benchmarks/bench.py --parts bytes loop   # some parts only (results.md says which ran)
    python benchmarks/bench.py --report-only        # redraw results.md and plots from results.json
    python benchmarks/bench.py --merge --parts sharded   # rerun some parts, keep the others' numbers
    python benchmarks/step_model_report.py          # part 6 (the step-time model) alone, in seconds
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchlib import machine  # noqa: E402

RESULTS_JSON = HERE / "results.json"
PARTS = ("bytes", "overhead", "network", "sharded", "loop", "collect", "stepmodel")


def progress(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_part(name, results=None):
    import bench_bytes
    import bench_collect
    import bench_loop
    import bench_network
    import bench_overhead
    import bench_sharded
    import step_model_report

    network = (results or {}).get("parts", {}).get("network")
    runner = {"bytes": bench_bytes.run, "overhead": bench_overhead.run, "network": bench_network.run,
              "sharded": bench_sharded.run,
              "loop": bench_loop.run, "collect": bench_collect.run,
              "stepmodel": lambda progress: step_model_report.run(progress, network)}[name]
    load_before, started = os.getloadavg(), time.perf_counter()
    result = runner(progress=progress)
    seconds = time.perf_counter() - started
    progress(f"{name}: done in {seconds:.0f} s")
    return {**result, "seconds": seconds, "load_before": load_before, "load_after": os.getloadavg()}


def keep_earlier_parts(results, earlier):
    """Adds the parts of an earlier results.json that this run did not measure, each stamped with
    the run that did (`measured_by`: command, date, commit), in PARTS order."""
    stamp = {"command": earlier["command"], "date": earlier["machine"]["date"],
             "git_commit": earlier["machine"]["git_commit"]}
    merged = {}
    for name in PARTS:
        if name in results["parts"]:
            merged[name] = results["parts"][name]
        elif name in earlier["parts"]:
            merged[name] = {**earlier["parts"][name], "measured_by": earlier["parts"][name].get("measured_by", stamp)}
    results["parts"] = merged


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep the parts not run from results.json (each marked with the run that measured it)")
    arguments = parser.parse_args(argv)
    import bench_report as report

    if not arguments.report_only:
        started = time.perf_counter()
        command = "make bench" if arguments.parts == list(PARTS) else (
            "python benchmarks/bench.py " + ("--merge " if arguments.merge else "") + "--parts " + " ".join(arguments.parts))
        results = {"machine": machine(), "command": command, "parts": {}}
        for name in arguments.parts:
            progress(f"{name}: start")
            results["parts"][name] = run_part(name, results)
        results["total_seconds"] = time.perf_counter() - started
        if arguments.merge and RESULTS_JSON.exists():
            keep_earlier_parts(results, json.loads(RESULTS_JSON.read_text()))
        RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
        progress(f"all parts done in {results['total_seconds']:.0f} s; raw numbers in {RESULTS_JSON}")
    written = report.write(json.loads(RESULTS_JSON.read_text()))
    for path in written:
        progress(f"wrote {path}")


if __name__ == "__main__":
    main()
