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
import math

import pandas as pd

from .claims.groups import final_per_run
from .drawing.frontier import TUNED, setting_value
from .logs.collect import collect
from .logs.manifests import ManifestMissing
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


CONTROL = "no communication"   # the control's arm: models that never communicate, whichever method's 0-bit form


def never_communicates(run):
    """Models that never exchange anything: the alpha = 0 control (method independent), or local SGD /
    DiLoCo whose period is at least the run's updates (they never average, nor take an outer step)."""
    name, period = run["cfg.method.name"], run.get("cfg.method.period")
    return name == "independent" or (name in ("localsgd", "diloco") and isinstance(period, (int, float))
                                     and period == period and period >= run.get("updates", math.inf))


def frontier_arm(run):
    """A method, or the control for every configuration that never communicates."""
    return CONTROL if never_communicates(run) else method_arm(run)


def frontier_setting(run):
    """What the frontier tunes for the run's arm: each method its TUNED keys, all_reduce and the control
    their base LR (the control's candidates also named by their method)."""
    name = run["cfg.method.name"]
    keys = TUNED.get(name, []) if not never_communicates(run) else ["schedule.lr.base"]
    setting = joined(keys or ["schedule.lr.base"], run)
    if never_communicates(run):
        what = "independent models" if name == "independent" else f"{name} never averaging (H = {run['cfg.method.period']:g})"
        return f"{what}, {setting}"
    return setting


# sweep -> (what an arm is, {method: the keys it tunes} or the keys every arm tunes, or a function
# naming the run's setting)
BUDGETS = {"frontier_tuning": (frontier_arm, frontier_setting),
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


def joined(keys, run):
    """A run's values of `keys`, as overrides write them: "alpha=2.0, exchange=checkpoints"."""
    return ", ".join(f"{key.split('.')[-1]}={setting_value(key, run[f'cfg.{key}'])}" for key in keys)


def setting_of(run, tuned):
    """The setting a budget tells the run's arm apart by: `tuned` is a function of the run, a
    {method: keys} or the keys of every arm."""
    if callable(tuned):
        return tuned(run)
    return joined(tuned.get(run["cfg.method.name"], []) if isinstance(tuned, dict) else tuned, run)


def final_runs(records):
    """One row per run at its final top-1 (final_per_run), with its updates (the last step)."""
    per_run = final_per_run(records, "val_top1")
    per_run["updates"] = per_run["run_id"].map(records.groupby("run_id")["step"].max())
    return per_run


def ranking(records, sweep="frontier_tuning"):
    """One row per tuning run: its arm, its tuned settings, held-out samples and final held-out top-1,
    best first within each arm; `best` marks each arm's chosen setting."""
    arm_of, tuned = BUDGETS[sweep]
    rows = [{"arm": arm_of(run), "setting": setting_of(run, tuned), "held_out_samples": int(run["val_samples"]),
             "held_out_top1": float(run["value"])} for _, run in final_runs(held_out_runs(records)).iterrows()]
    table = pd.DataFrame(rows).sort_values(["arm", "held_out_top1"], ascending=[True, False], ignore_index=True)
    table["best"] = ~table["arm"].duplicated()
    return table


# tuning sweep -> the sweep whose comparisons read its winners (their recipe runs, seeds 0-2, hold the defaults)
COMPARED = {"frontier_tuning": "frontier", "frontier_regime": "frontier_regime", "baseline_tuning": "tuned_baselines"}
RECIPE_SEEDS = (0, 1, 2)


def recipe_settings(records, sweep):
    """{arm: the settings its recipe runs (seeds 0-2, no samples held out) use}: the defaults."""
    if records.empty:
        return {}
    arm_of, tuned = BUDGETS[sweep]
    holdout = pd.to_numeric(records.get("cfg.data.holdout", pd.Series(0, index=records.index)), errors="coerce")
    found = {}
    for _, run in final_runs(records[records["seed"].isin(RECIPE_SEEDS) & (holdout.fillna(0) == 0)]).iterrows():
        found.setdefault(arm_of(run), set()).add(setting_of(run, tuned))
    return found


def protocol(tuning_records, compared_records, sweep):
    """Per arm of a tuning budget: how many candidates it had, the one chosen (best held-out top-1) and
    its lead over the next, the recipe's setting, and whether the recipe's setting won (then nothing was
    tuned: "the default won"). DiLoCo chosen at outer LR 1 without momentum is local SGD, and says so."""
    ranked = ranking(tuning_records, sweep)
    defaults = recipe_settings(compared_records, sweep)
    rows = []
    for arm, runs in ranked.groupby("arm", sort=True):
        best = runs.iloc[0]
        lead = best["held_out_top1"] - runs.iloc[1]["held_out_top1"] if len(runs) > 1 else math.nan
        default = defaults.get(arm, set())
        if not default:
            outcome = "no recipe run to compare"
        elif best["setting"] in default:
            outcome = "the default won"
        else:
            outcome = "tuned"
        note = ""
        if arm == "diloco" and "outer_lr=1.0" in best["setting"] and "outer_momentum=0.0" in best["setting"]:
            note = "outer LR 1 without momentum: the search landed on local SGD"
        rows.append({"arm": arm, "candidates": len(runs), "chosen": best["setting"],
                     "held_out_top1": round(float(best["held_out_top1"]), 2),
                     "lead_over_next": round(float(lead), 2) if lead == lead else math.nan,
                     "recipe": "; ".join(sorted(default)) or "-", "outcome": outcome, "note": note})
    return pd.DataFrame(rows)


# the budgets the report tables, each with what its winners are compared in
REPORTED = {"frontier_tuning": "the 2-server frontier (sweep frontier): each method's 6 settings, all_reduce's and "
                               "the control's 6 base LRs, and each method's 0-bit configuration as a candidate "
                               "control",
            "frontier_regime": "the 8-server regime (sweeps frontier_regime, frontier8): all_reduce's and the 0-bit "
                               "control's 6 base LRs",
            "baseline_tuning": "tuned against tuned (sweep tuned_baselines): 4 base LRs for every arm"}


def report_section(results_root, scale="mini"):
    """The report's markdown: per tuning budget, a table of its arms (protocol)."""
    lines = ["## Tuning: one protocol for every arm", "",
             "Every arm of a tuned comparison, the method, its baselines and the no-communication control, gets "
             "a budget of runs judged on 10,000 training samples held out of training (never the validation set "
             "a figure reports), one tuning seed (100); the best by held-out top-1 then runs with 3 fresh seeds "
             "(3, 4, 5). `recipe` is the setting the arm's untuned runs (seeds 0-2) use; where the best is the "
             "recipe's own, nothing was tuned (\"the default won\"). `lead` is the winner's held-out top-1 over "
             "the next candidate's: one tuning seed's noise near the best is up to about 0.8 points, so a lead "
             "below that does not separate them. `python -m figures.tuning --sweep <budget>` prints every run.", ""]
    for sweep, what in REPORTED.items():
        try:
            records, _ = collect(results_root, sweep, scale, kinds=("eval",))
            compared, _ = collect(results_root, COMPARED[sweep], scale, kinds=("eval",))
        except ManifestMissing:   # a results root without this budget's sweeps (a reviewer's own runs)
            continue
        if records.empty:
            continue
        table = protocol(records, compared, sweep)
        lines += [f"**{sweep}**: {what}.", "",
                  "| arm | candidates | chosen | held-out top-1 | lead | recipe | outcome |", "|---|---|---|---|---|---|---|"]
        for _, row in table.iterrows():
            outcome = row["outcome"] + (f"; {row['note']}" if row["note"] else "")
            lead = f"{row['lead_over_next']:.2f}" if row["lead_over_next"] == row["lead_over_next"] else "-"
            lines.append(f"| {row['arm']} | {row['candidates']} | {row['chosen']} | {row['held_out_top1']:.2f} | "
                         f"{lead} | {row['recipe']} | {outcome} |")
        lines.append("")
    return lines


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
    if args.sweep in COMPARED:
        compared, _ = collect(args.results, COMPARED[args.sweep], args.scale, kinds=("eval",))
        print(f"\nper arm (the recipe: sweep {COMPARED[args.sweep]}'s seeds {', '.join(map(str, RECIPE_SEEDS))}):")
        print(protocol(records, compared, args.sweep).to_string(index=False))


if __name__ == "__main__":
    main()
