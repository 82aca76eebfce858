"""Tuning budgets judged on held-out training data (never the validation set a figure reports): each
arm's settings ranked by final top-1 on the training samples held out of training; the best runs with
3 fresh seeds in the sweep that compares.

- frontier_tuning (sweeps/frontier_tuning.yaml): each method's 6 settings beyond the frontier's knob;
  the best runs in the frontier sweep.
- baseline_tuning (sweeps/baseline_tuning.yaml): the base learning rate of all_reduce, codistillation
  (predictions, checkpoints) and the alpha = 0 control; the best runs in sweeps/tuned_baselines.yaml.
- frontier_regime (sweeps/frontier_regime.yaml): the base learning rate of the frontier regime's 0-bit
  control (8 groups that never communicate); the best runs in the same sweep (`make regime` checks it).
- frontier8 (sweeps/frontier8.yaml): the base learning rate of each method at 8 servers, the control's
  budget; the best runs at every knob in the same sweep.
- frontier_regime_lm, frontier8_lm (the same on the transformer language model): the base learning
  rate of all_reduce and of the 0-bit control, then of each method at its one knob; the best runs with
  3 fresh seeds in the same sweep.

    python -m figures.tuning [--sweep frontier_tuning] [--results paper/logs] [--scale mini]
"""
import argparse

import pandas as pd

from .claims.groups import final_per_run
from .drawing.frontier import TUNED, setting_value
from .logs.collect import collect
from .paths import COMMITTED


def method_arm(run):
    return run["cfg.method.name"]


def exchange_arm(run):
    """A method, with its exchange where it has one (codistillation by predictions or checkpoints)."""
    exchange = run.get("cfg.method.exchange")
    return run["cfg.method.name"] + (f", {exchange}" if isinstance(exchange, str) else "")


def period_arm(run):
    """A method with its exchange and period: frontier8 tunes each method at one knob value, beside the
    regime's control tuned at its own (local SGD at H = 16 and H = 1000 are two arms)."""
    period = run.get("cfg.method.period")
    return exchange_arm(run) + (f", period {period:g}" if isinstance(period, (int, float)) and period == period else "")


# sweep -> (what an arm is, {method: the keys it tunes} or the keys every arm tunes)
BUDGETS = {"frontier_tuning": (method_arm, TUNED),
           "baseline_tuning": (exchange_arm, ["schedule.lr.base"]),
           "frontier_regime": (method_arm, ["schedule.lr.base"]),
           "frontier8": (period_arm, ["schedule.lr.base"]),
           "frontier_regime_lm": (method_arm, ["schedule.lr.base"]),
           "frontier8_lm": (period_arm, ["schedule.lr.base"])}


def held_out_runs(records):
    """The tuning runs: those that hold training samples out (data.holdout), where a sweep also has
    runs that do not (frontier_regime's baselines); every run where no record says."""
    if "cfg.data.holdout" not in records:
        return records
    return records[pd.to_numeric(records["cfg.data.holdout"], errors="coerce").fillna(0) > 0]


def ranking(records, sweep="frontier_tuning"):
    """One row per tuning run: its arm, its tuned settings, held-out samples and final held-out top-1,
    best first within each arm; `best` marks each arm's chosen setting."""
    arm_of, tuned = BUDGETS[sweep]
    per_run = final_per_run(held_out_runs(records), "val_top1")
    rows = []
    for _, run in per_run.iterrows():
        keys = tuned.get(run["cfg.method.name"], []) if isinstance(tuned, dict) else tuned
        setting = ", ".join(f"{key.split('.')[-1]}={setting_value(key, run[f'cfg.{key}'])}" for key in keys)
        rows.append({"arm": arm_of(run), "setting": setting, "held_out_samples": int(run["val_samples"]),
                     "held_out_top1": float(run["value"])})
    table = pd.DataFrame(rows).sort_values(["arm", "held_out_top1"], ascending=[True, False], ignore_index=True)
    table["best"] = ~table["arm"].duplicated()
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="frontier_tuning", choices=sorted(BUDGETS))
    parser.add_argument("--results", default=str(COMMITTED))
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    args = parser.parse_args(argv)
    records, _ = collect(args.results, args.sweep, args.scale, kinds=("eval",))
    if records.empty:
        raise SystemExit(f"no finished run of sweep {args.sweep} in {args.results} "
                         f"(python src/run.py -m sweep={args.sweep} scale={args.scale})")
    print(ranking(records, args.sweep).to_string(index=False))


if __name__ == "__main__":
    main()
