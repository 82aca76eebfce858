"""The frontier regime's invariants (docs/frontier.md, "A regime where communication matters";
docs/mini-scale.md, "Regime check"): the regime in which the frontier compares methods that send
fewer bits than all_reduce, fixed on its baselines alone (sweep frontier_regime: no method run
enters them). 8 servers, as the peers' papers use 8 workers: all_reduce over the 8 (its global batch
of 8 x 256 and Goyal's recipe for it) against the 0-bit control, that recipe cut over 8 groups that
never communicate (local SGD whose period H exceeds the run), the control tuned by the frontier's
budget of 6 runs (its base LR, judged on training samples held out of training).

Which run is which, from the sweep's records: all_reduce is method allreduce; the control every other
method; its tuning runs hold samples out (data.holdout); its tuned runs are those that set
schedule.lr.base in their overrides, without holding samples out, at the base LR whose tuning run
scored best on the held-out samples; its untuned runs leave the recipe's base LR."""
import math

import pandas as pd

from .runs import Check, load_sweep, missing, seed_stats
from .vision import TRAIN_OVER_VAL  # not memorised: the vision stand-in's budget_limited bound, 0.5

FRONTIER = FRONTIER_REGIME = "frontier_regime"   # the column of the table and the sweep
# The same regime on the transformer language model (workload lm_transformer_mini): its own sweep
# and column, the same invariants (top-1 is next-token top-1 there).
FRONTIER_LM = FRONTIER_REGIME_LM = "frontier_regime_lm"
MIN_GROUPS = 8               # the peers' papers: 8 workers (DiLoCo; SparseLoCo R = 8; MuLoCo K = 8)
MIN_GAP = 2.0                # points of top-1 that the 0-bit control must lose to all_reduce beyond the noise
NOISE_SE = 2.0               # ... the noise: 2 standard errors of the difference of the means, and 1 sample
MIN_UPDATES_PER_EPOCH = 50   # room for H and T below an epoch, as the batch panel's bound
TUNING_RUNS = 6              # the frontier's tuning budget per method (sweeps/frontier_tuning.yaml)
LR_KEY = "schedule.lr.base"

FRONTIER_CHECKS = {
    "groups": "8 workers: the control's groups and all_reduce's servers (the fewer)",
    "zero_bits": "0-bit control: bits each device sends between servers over the run",
    "control_gap": "communication matters: all_reduce - tuned 0-bit control, less 2 s.e. and 1 sample (points)",
    "not_memorised": "not memorised: final train / val loss, the lower of all_reduce and the tuned control",
    "updates_per_epoch": "updates per epoch of each group, the fewer of all_reduce and the control",
    "frontier_cost": "cost: the regime sweep's mini runs (minutes of training)",
}


def per_run(records):
    """One row per finished run at its last evaluation: top-1, train and val loss (mean over the
    run's models), bits, updates per epoch (step / epoch), validation samples, and what it ran:
    method, groups (all_reduce: the servers its one model spans, method.nodes_per_model; any other
    method: its groups, method.n), held-out samples, base LR, and whether it is a tuned run."""
    columns = ["run_id", "seed", "setting", "method", "lr", "groups", "holdout", "tuned", "val_top1", "train_loss",
               "val_loss", "bits", "step", "epoch", "val_samples", "updates_per_epoch"]
    if records.empty:
        return pd.DataFrame(columns=columns)
    last = records[records["step"] == records.groupby("run_id")["step"].transform("max")]
    grouped = last.groupby("run_id")
    first = grouped.first()
    runs = grouped.agg(val_top1=("val_top1", "mean"), train_loss=("train_loss", "mean"),
                       val_loss=("val_loss", "mean"), bits=("comm_bits_inter_node", "max"), step=("step", "max"),
                       epoch=("epoch", "max"), val_samples=("val_samples", "max"))
    runs["seed"], runs["setting"], runs["method"] = first["seed"], first["setting"], first["cfg.method.name"]
    runs["lr"] = pd.to_numeric(first[f"cfg.{LR_KEY}"], errors="coerce")
    runs["groups"] = first["cfg.method.nodes_per_model"].where(runs["method"] == "allreduce", first["cfg.method.n"])
    holdout = first["cfg.data.holdout"] if "cfg.data.holdout" in first else pd.Series(0, index=first.index)
    runs["holdout"] = pd.to_numeric(holdout, errors="coerce").fillna(0).astype(int)
    runs["tuned"] = runs["setting"].str.contains(f"{LR_KEY}=", regex=False) & (runs["holdout"] == 0)
    runs["updates_per_epoch"] = (runs["step"] / runs["epoch"]).round().astype(int)
    return runs.reset_index()[columns]


def arms(runs):
    """(all_reduce's runs, the control's tuning runs, its untuned runs, its tuned runs (every base LR),
    the base LR whose tuning run scored best on the held-out samples, or None)."""
    baseline = runs[(runs["method"] == "allreduce") & (runs["holdout"] == 0)]
    if (~baseline["tuned"]).any():   # all_reduce at its recipe where it ran there; its tuned seeds are the claims'
        baseline = baseline[~baseline["tuned"]]
    control = runs[runs["method"] != "allreduce"]
    tuning = control[control["holdout"] > 0]
    best = float(tuning.loc[tuning["val_top1"].idxmax(), "lr"]) if not tuning.empty else None
    untuned = control[(control["holdout"] == 0) & ~control["tuned"]]
    return baseline, tuning, untuned, control[control["tuned"]], best


def stat_text(runs):
    mean, se, n = seed_stats(runs["val_top1"])
    return f"{mean:.2f} ± {se:.2f} ({n} seeds)"


def check_groups(baseline, control):
    bound = f">= {MIN_GROUPS}"
    if baseline.empty or control.empty:
        return missing("groups", bound, "no all_reduce or control runs")
    servers, groups = int(baseline["groups"].min()), int(control["groups"].min())
    fewer = min(servers, groups)
    return Check("groups", bound, fewer, f"{fewer} (all_reduce over {servers} servers, control {groups} groups)",
                 fewer >= MIN_GROUPS)


def check_zero_bits(control):
    bound = "= 0"
    if control.empty:
        return missing("zero_bits", bound, "no control runs")
    bits = float(control["bits"].max())   # every update's bits so far: the run's, at its last evaluation
    return Check("zero_bits", bound, bits, f"{bits:.0f} (the most of {len(control)} control runs)", bits == 0)


def at_lr(runs, lr):
    return runs[(runs["lr"] - lr).abs() <= 1e-9 * max(abs(lr), 1.0)]


def check_gap(baseline, tuning, untuned, tuned, best):
    """all_reduce's mean top-1 less the tuned control's, less 2 standard errors of that difference and
    one validation sample: the gap the noise cannot explain, which must reach MIN_GAP points. The
    tuned control runs at the base LR whose tuning run scored best on the held-out samples; tuned
    runs at another base LR fail the check (the sweep's tuned row must name the best)."""
    bound = f">= {MIN_GAP:g}"
    if len(tuning) < TUNING_RUNS:
        return missing("control_gap", bound, f"{len(tuning)} of the control's {TUNING_RUNS} tuning runs")
    ranking = ", ".join(f"{lr:g}: {top1:.2f}" for lr, top1 in
                        tuning.sort_values("lr")[["lr", "val_top1"]].itertuples(index=False))
    chosen = at_lr(tuned, best)
    if chosen.empty and not tuned.empty:
        named = ", ".join(f"{lr:g}" for lr in sorted(tuned["lr"].unique()))
        return Check("control_gap", bound, math.nan, f"the tuned control ran at base LR {named}, but the best on "
                     f"held-out samples is {best:g} ({ranking}): name it in the sweep's tuned row", False)
    if len(baseline) < 2 or len(chosen) < 2:
        return missing("control_gap", bound, f"{len(baseline)} all_reduce seed(s), {len(chosen)} tuned control "
                       f"seed(s) at the best held-out {LR_KEY}={best:g}")
    (a, a_se, _), (c, c_se, _) = seed_stats(baseline["val_top1"]), seed_stats(chosen["val_top1"])
    sample = 100 / float(pd.concat([baseline, chosen])["val_samples"].min())
    gap, noise = float(a - c), NOISE_SE * math.hypot(a_se, c_se) + sample
    untuned_text = f"; untuned {stat_text(untuned)}" if len(untuned) else ""
    return Check("control_gap", bound, gap - noise,
                 f"{gap - noise:.2f} (gap {gap:.2f} - noise {noise:.2f}: all_reduce {stat_text(baseline)}, control "
                 f"tuned {stat_text(chosen)} at base LR {best:g}{untuned_text}; held-out top-1 by base LR: {ranking})",
                 gap - noise >= MIN_GAP)


def check_not_memorised(baseline, tuned):
    bound = f">= {TRAIN_OVER_VAL:g}"
    if baseline.empty or tuned.empty:
        return missing("not_memorised", bound, "no all_reduce or tuned control runs")
    ratios = {name: (runs["train_loss"].mean(), runs["val_loss"].mean())
              for name, runs in (("all_reduce", baseline), ("tuned control", tuned))}
    lower = float(min(train / val for train, val in ratios.values()))
    detail = "; ".join(f"{name} {train:.3f} / {val:.3f}" for name, (train, val) in ratios.items())
    return Check("not_memorised", bound, lower, f"{lower:.2f} ({detail})", lower >= TRAIN_OVER_VAL)


def check_updates(baseline, control):
    bound = f">= {MIN_UPDATES_PER_EPOCH}"
    runs = pd.concat([baseline, control[control["holdout"] == 0]])
    if baseline.empty or runs["method"].nunique() < 2:
        return missing("updates_per_epoch", bound, "no all_reduce or control runs")
    fewer = int(runs["updates_per_epoch"].min())
    total = int(runs["step"].max())
    return Check("updates_per_epoch", bound, fewer, f"{fewer} (of {total} updates in all)",
                 fewer >= MIN_UPDATES_PER_EPOCH)


def check_cost(ends):
    if ends.empty:
        return missing("frontier_cost", "info", "no finished runs")
    minutes = float(ends["wall_time"].sum()) / 60
    return Check("frontier_cost", "info", minutes, f"{minutes:.1f} ({ends['run_id'].nunique()} runs, training only)",
                 None, info=True)


def frontier_checks(records, ends=None, sweep=FRONTIER_REGIME):
    """Every invariant of the frontier regime, in FRONTIER_CHECKS' order; records: the eval records
    of `sweep` (frontier_regime or frontier_regime_lm; collect's table), ends: its end records."""
    runs = per_run(records)
    baseline, tuning, untuned, tuned, best = arms(runs)
    control = runs[runs["method"] != "allreduce"]
    chosen = at_lr(tuned, best) if best is not None else tuned.iloc[:0]
    checks = [check_groups(baseline, control), check_zero_bits(control),
              check_gap(baseline, tuning, untuned, tuned, best), check_not_memorised(baseline, chosen),
              check_updates(baseline, control), check_cost(ends if ends is not None else pd.DataFrame())]
    for check in checks:
        if check.holds is None and not check.info:
            check.needs = (sweep,)
    return checks


def load_frontier(results, sweep=FRONTIER_REGIME):
    """(the sweep's eval records, its end records, the Sweep of its evals: what is missing)."""
    evals = load_sweep(results, sweep)
    ends = load_sweep(results, sweep, kinds=("end",))
    return evals.records, ends.records, evals
