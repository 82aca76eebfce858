"""Part 6 of `make bench`: the step-time model (step_model.py) with its constants from the calibration
part (bench_calibration.py) judged on part 3's times per update (step_model_calibration.py), fitted to
the authors' slides, and its predictions up to 4096 GPUs, compressed prediction exchanges included;
its section of results.md is bench_stepmodel_report.py. Takes seconds and needs no network namespace:
it reads part 3 and the calibration from this run or, when they did not run (or were skipped), from
the committed benchmarks/results.json.

    python -m benchmarks.bench_stepmodel   # this part alone: results.json + results.md + the figures
"""
import json
import os
import time

from . import report
from codistill_experiments import step_model as sm
from . import step_model_calibration as cal


def plain(value):
    """numpy scalars and int keys to what json writes and reads back the same."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def measured_part(key, part, this_run):
    """(part `key` of this run, or of the committed results.json, and where it comes from), or (None, why)."""
    if part and "skipped" not in part:
        return part, f"{this_run} of this run"
    if report.RESULTS_JSON.exists():
        committed = json.loads(report.RESULTS_JSON.read_text())
        stored = committed.get("parts", {}).get(key, {})
        if stored and "skipped" not in stored:
            runs = [run for run in committed.get("remeasured", []) if key in run["parts"]]
            m = runs[-1]["machine"] if runs else committed["machine"]
            return stored, f"{this_run} of benchmarks/results.json ({m['date']}, commit {m['git_commit']})"
    return None, f"no measurement of {this_run} (needs root)"


def compute_spread(network):
    """Per model and method, the largest over the smallest compute-only time across the limits (the same
    work each time: how far this machine's load moved it), and the fewest updates in one window."""
    out = {}
    for model in network["models"]:
        times, steps = {}, []
        for row in model["rows"]:
            if row["method"].endswith(", compute only"):
                times.setdefault(row["method"].split(",")[0], []).append(row["seconds_per_step"])
                steps.append(row["steps"])
        at = {(r["method"], r["limit"]): r["seconds_per_step"] for r in model["rows"]}
        beyond = [at["powersgd", limit] - at["powersgd, compute only", limit] for limit in network["limits"]
                  if ("powersgd", limit) in at]
        out[model["label"]] = {"spread": {m: max(t) / min(t) for m, t in times.items()}, "fewest_steps": min(steps),
                               "powersgd_minus_compute_s": beyond}
    return out


def run(progress=print, network=None, calibration=None):
    """Everything part 6 reports, as plain values (stored in results.json under parts.stepmodel)."""
    network, source = measured_part("network", network, "part 3")
    calibration, calibration_source = measured_part("calibration", calibration, "the calibration part")
    out = {"source": source, "calibration_source": calibration_source}
    if network is not None and calibration is not None:
        out["judged"] = {"constants": cal.constants_table(calibration), "rows": cal.judge(network, calibration),
                         "fitted_on_rows": list(cal.fit_on_rows(cal.part3_rows(network))),
                         "compute_spread": compute_spread(network),
                         "powersgd_waits": calibration["raw"].get("powersgd_waits"),
                         "load": {name: [part.get("load_before"), part.get("load_after")]
                                  for name, part in (("calibration", calibration), ("part 3", network))}}
        progress(f"stepmodel: constants from {calibration_source}, judged on {source}")
    slides = {"fit_1_8": sm.fit_slides((1, 8)), "fit_all": sm.fit_slides((1, 2, 4, 8)),
              "fit_1_2": sm.fit_slides((1, 2)),
              "tree_fit_1_8": sm.fit_slides((1, 8), net=sm.replace(sm.SLIDES_NET, algorithm="tree"))}
    out["slides"] = slides
    out["grid"] = sm.predict_grid(slides["fit_1_8"]["compute_s"])
    return plain(out)


def main():
    """Part 6 measured again into results.json (the other parts and the run's header kept), then
    results.md and the plots rewritten."""
    results = json.loads(report.RESULTS_JSON.read_text())
    load_before, started = os.getloadavg(), time.perf_counter()
    part = run()
    results["parts"]["stepmodel"] = {**part, "seconds": time.perf_counter() - started,
                                     "load_before": list(load_before), "load_after": list(os.getloadavg())}
    report.RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    for path in report.write(results):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
