"""The Criteo stand-in's invariants (Anil et al. 2018, Table 1; docs/mini-scale.md, "Criteo
stand-in"), each measured on the DNN baseline alone (method allreduce of sweep anil_table1: no
codistillation run enters them) or on the generated data itself."""
import torch.nn.functional as F

from codistill_experiments.tabular.criteo import generated_clicks

from ..logs.churn import churn_records
from .runs import Check, missing, seed_stats

CRITEO, TABLE1 = "criteo_mini", "anil_table1"
TRAIN_OVER_VAL = 0.9         # not memorised: training log loss close to validation's
GAP_CLOSED = (0.2, 0.9)      # not saturated: share of the gap base rate -> hidden model the baseline closes
MAX_CHURN_REL_SE = 0.1       # a 35 % reduction (the paper's) lies beyond 2 combined s.e. (2 x sqrt 2 x 0.1 = 0.28)
MIN_UPDATES_PER_EPOCH = 50

CRITEO_CHECKS = {
    "still_falling": "budget-limited: val log loss, last - previous evaluation",
    "not_memorised": "budget-limited: final train / val log loss",
    "gap_closed": "not saturated: share of the base-rate -> hidden-model gap closed",
    "churn_resolved": "churn measurable: s.e. / mean of the retrain difference over seed pairs",
    "updates_per_epoch": "updates per epoch",
}


def baseline_records(records):
    if records.empty:
        return records
    return records[(records["cfg.workload.name"] == CRITEO) & (records["cfg.method.name"] == "allreduce")]


def check_still_falling(baseline):
    bound = "< 0"
    evals = baseline[baseline["kind"] == "eval"] if "kind" in baseline else baseline
    steps = sorted(evals["step"].unique()) if not evals.empty else []
    if len(steps) < 2:
        return missing("still_falling", bound, "fewer than two evaluations of the baseline")
    last, previous = (evals[evals["step"] == s].groupby("run_id")["val_loss"].mean() for s in steps[-1:-3:-1])
    change = (last - previous).mean()
    return Check("still_falling", bound, change, f"{change:+.4f} ({previous.mean():.4f} -> {last.mean():.4f}, "
                 f"{len(last)} seeds)", change < 0)


def final(baseline, column):
    evals = baseline[baseline["kind"] == "eval"] if "kind" in baseline else baseline
    last = evals[evals["step"] == evals.groupby("run_id")["step"].transform("max")]
    return last.groupby("run_id")[column].mean()


def check_not_memorised(baseline):
    bound = f">= {TRAIN_OVER_VAL}"
    if baseline.empty:
        return missing("not_memorised", bound, "no baseline runs")
    train, val = final(baseline, "train_loss").mean(), final(baseline, "val_loss").mean()
    return Check("not_memorised", bound, train / val, f"{train / val:.3f} (train {train:.4f} / val {val:.4f})",
                 train / val >= TRAIN_OVER_VAL)


def reference_losses(workload_cfg):
    """(base-rate log loss, hidden model's log loss) on the generated validation set."""
    _, clicks, probabilities = generated_clicks(workload_cfg)
    val = slice(int(workload_cfg.train_size), None)
    labels, truth = clicks[val].float(), probabilities[val].clamp(1e-7, 1 - 1e-7)
    rate = labels.mean().clamp(1e-7, 1 - 1e-7)
    base = F.binary_cross_entropy(rate.expand_as(labels), labels).item()
    return base, F.binary_cross_entropy(truth, labels).item()


def check_gap_closed(baseline, workload_cfg):
    bound = f"in [{GAP_CLOSED[0]:g}, {GAP_CLOSED[1]:g}]"
    if baseline.empty or workload_cfg is None:
        return missing("gap_closed", bound, "no baseline runs")
    base, bayes = reference_losses(workload_cfg)
    val = final(baseline, "val_loss").mean()
    share = (base - val) / (base - bayes)
    return Check("gap_closed", bound, share, f"{share:.2f} (base rate {base:.4f}, baseline {val:.4f}, hidden model "
                 f"{bayes:.4f})", GAP_CLOSED[0] <= share <= GAP_CLOSED[1])


def check_churn(baseline, results):
    bound = f"<= {MAX_CHURN_REL_SE:g}"
    pairs = churn_records(baseline[baseline["kind"] == "eval"] if "kind" in baseline else baseline, results)
    if pairs.empty or len(pairs) < 2:
        return missing("churn_resolved", bound, "fewer than two retrain pairs with saved predictions")
    mean, se, n = seed_stats(pairs["retrain_mad"])
    return Check("churn_resolved", bound, se / mean, f"{se / mean:.3f} (mean |p_a - p_b| {mean:.4f} ± {se:.4f}, "
                 f"{n} pairs)", se / mean <= MAX_CHURN_REL_SE)


def check_updates(workload_cfg, baseline):
    bound = f">= {MIN_UPDATES_PER_EPOCH}"
    if baseline.empty or workload_cfg is None:
        return missing("updates_per_epoch", bound, "no baseline runs")
    batch = int(baseline["batch_per_model"].max())
    updates = int(workload_cfg.train_size) // batch
    return Check("updates_per_epoch", bound, updates, f"{updates} ({workload_cfg.train_size} rows / {batch})",
                 updates >= MIN_UPDATES_PER_EPOCH)


def criteo_checks(records, results, workload_cfg):
    """Every Criteo invariant, in CRITEO_CHECKS' order; records: anil_table1's collected records."""
    baseline = baseline_records(records)
    return [check_still_falling(baseline), check_not_memorised(baseline), check_gap_closed(baseline, workload_cfg),
            check_churn(baseline, results), check_updates(workload_cfg, baseline)]
