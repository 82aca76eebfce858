"""The vision invariants of the regime check, each measured on one workload from the final rows of
the `regime` and `fig2` sweeps' runs or from the workload itself (docs/mini-scale.md, "Regime
check", says why each bound)."""
import math
import re
from dataclasses import dataclass

import pandas as pd
from omegaconf import OmegaConf

from codistill_experiments.run_schedules import run_schedules
from codistill_experiments.training.sampling import data_subset

from .models import check_models
from .runs import Check, baseline_of, by_factor, chosen_multiplier, header_config, missing, seed_stats, workload_of

# Bounds of the invariants (docs/mini-scale.md, "Regime check", says why each).
TRAIN_OVER_VAL = 0.5
TOP1_RANGE = (60.0, 92.0)
MIN_VAL_SAMPLES = 5000
MAX_SEED_SE = 0.3
WD_FACTORS, WD_ENDS = (0.1, 0.3, 1.0, 3.0), (0.1, 3.0)
MIN_WD_END_COST = 1.0
MAX_HALF_BATCH_GAP = 1.0
MIN_ENSEMBLE_GAIN = 1.0
ALPHA_TOLERANCE = 0.01
PAPER_CLASSES = 1000
MIN_UPDATES_PER_EPOCH = 50
MIN_TRAIN_SAMPLES = 50_000
MAX_FIG2_MINUTES = 12.0
REPRODUCED_SEEDS = (0, 1, 2)   # the seeds of each Fig. 2 setting make reproduce runs (its first three)
# The paper's 2-way ResNet-50 before its first LR decay: LR 0.1 (b = 256 per model), wd 1e-4,
# 15 epochs x 5k updates = 75k updates, momentum 0.9 (a step's decay persists 1 / (1 - 0.9) = 10x).
PAPER_SHRINK = 0.1 * 1e-4 * 75_000 / (1 - 0.9)

VISION = {
    "budget_limited": "budget-limited: final train loss / val loss",
    "top1_range": "resolvable: baseline top-1 (%)",
    "val_samples": "resolvable: validation samples",
    "seed_se": "resolvable: seed s.e. of baseline top-1 (points)",
    "wd_best": "wd tuned: other multipliers' gain beyond noise (points)",
    "wd_matters": "wd matters: largest cost of x0.1 or x3 (points)",
    "wd_shrink": "total shrink before the first LR decay (lr x wd / (1 - momentum))",
    "half_batch": "half batch costs little: baseline - alpha=0 mean top-1 (points)",
    "disagreement": "models disagree: alpha=0 ensemble - mean top-1 (points)",
    "alpha_per_logit": "distillation per logit: alpha_scale x 1000 / classes",
    "batch_panel": "batch panel: updates per epoch at Fig. 2's largest batch",
    "residual_bn": "residual blocks + batch norm, in three sizes",
    "data": "data generated or packaged: training samples",
    "fig2_cost": "cost: Figure 2's mini sweep at 3 seeds, make reproduce (minutes of training)",
}


def check_budget(baseline):
    bound = f">= {TRAIN_OVER_VAL}"
    if baseline.empty:
        return missing("budget_limited", bound, "no baseline runs")
    train, val = baseline["train_loss"].mean(), baseline["val_loss"].mean()
    ratio = train / val
    return Check("budget_limited", bound, ratio, f"{ratio:.2f} (train {train:.3f} / val {val:.3f}, "
                 f"{len(baseline)} seeds)", ratio >= TRAIN_OVER_VAL)


def check_top1(baseline):
    bound = f"in [{TOP1_RANGE[0]:g}, {TOP1_RANGE[1]:g}]"
    if baseline.empty:
        return missing("top1_range", bound, "no baseline runs")
    mean, se, n = seed_stats(baseline["val_top1"])
    return Check("top1_range", bound, mean, f"{mean:.2f} ± {se:.2f} ({n} seeds)",
                 TOP1_RANGE[0] <= mean <= TOP1_RANGE[1])


def val_samples(baseline, workload):
    """Validation samples: from the eval records (`val_samples`), or where they do not carry it,
    the size of the validation set the run's config builds (digits: 1797 - train_size)."""
    if "val_samples" in baseline and baseline["val_samples"].notna().any():
        return int(baseline["val_samples"].max()), "from the logs"
    return len(workload.val_set), "the config's validation set"


def check_val_samples(count, source):
    return Check("val_samples", f">= {MIN_VAL_SAMPLES}", count, f"{count} ({source}; 1 sample = "
                 f"{100 / count:.3f} points)", count >= MIN_VAL_SAMPLES)


def check_seed_se(baseline):
    bound = f"<= {MAX_SEED_SE}"
    mean, se, n = seed_stats(baseline["val_top1"]) if not baseline.empty else (0, math.nan, 0)
    if n < 2:
        return missing("seed_se", bound, f"{n} baseline seed(s)")
    return Check("seed_se", bound, se, f"{se:.3f} ({n} seeds)", se <= MAX_SEED_SE)


def wd_groups(wd_runs, chosen):
    """{factor: (mean, s.e., n)} of top-1 over the weight-decay sweep, and the factors it lacks."""
    stats = {f: seed_stats(g["val_top1"]) for f, g in by_factor(wd_runs, chosen).items()}
    lacking = [f for f in WD_FACTORS if f not in stats or stats[f][2] < 2]
    return stats, lacking


def check_wd_best(stats, lacking, sample_points):
    """The chosen multiplier's top-1 is best within noise: no other beats it by more than two
    combined standard errors plus one validation sample. Value: the largest excess over that."""
    bound = "<= 0 (gain - 2 combined s.e. - 1 sample)"
    if lacking:
        return missing("wd_best", bound, "no runs (>= 2 seeds) at wd x " + ", ".join(f"{f:g}" for f in lacking))
    mean, se, _ = stats[1.0]
    excess = {f: (m - mean) - (2 * math.hypot(s, se) + sample_points) for f, (m, s, _) in stats.items() if f != 1.0}
    worst = max(excess, key=excess.get)
    detail = ", ".join(f"x{f:g} {stats[f][0] - mean:+.2f}" for f in sorted(excess))
    return Check("wd_best", bound, excess[worst], f"{excess[worst]:+.2f} (x{worst:g}; gains over x1 = "
                 f"{mean:.2f}: {detail})", excess[worst] <= 0)


def check_wd_matters(stats, lacking):
    bound = f">= {MIN_WD_END_COST:g}"
    if lacking:
        return missing("wd_matters", bound, "no runs (>= 2 seeds) at wd x " + ", ".join(f"{f:g}" for f in lacking))
    costs = {f: stats[1.0][0] - stats[f][0] for f in WD_ENDS}
    worst = max(costs, key=costs.get)
    detail = ", ".join(f"x{f:g} {c:.2f}" for f, c in costs.items())
    return Check("wd_matters", bound, costs[worst], f"{costs[worst]:.2f} ({detail})", costs[worst] >= MIN_WD_END_COST)


def total_shrink(config, train_samples, batch_per_model):
    """sum over the updates before the first LR decay of lr_t x wd_t / (1 - momentum), from the
    run's own schedules (run_schedules: its epochs, milestones, weight-decay and workload scales),
    with steps per epoch = floor(train samples / batch per model), as the engine counts them."""
    cfg = OmegaConf.create(config)
    schedules = run_schedules(cfg, batch_per_model, train_samples // batch_per_model)
    first_decay = schedules.lr.milestones[0] if schedules.lr.milestones else schedules.total_steps
    return sum(schedules.lr(t) * schedules.weight_decay(t) for t in range(first_decay)) / (1 - cfg.schedule.momentum)


def check_shrink(config, workload, baseline):
    bound = f"info (paper: {PAPER_SHRINK:g})"
    if config is None or baseline.empty:
        return missing("wd_shrink", bound, "no baseline runs")
    batch = int(baseline["batch_per_model"].max())
    train_samples = len(data_subset(workload.train_set, OmegaConf.create(config)["data"]))
    shrink = total_shrink(config, train_samples, batch)
    return Check("wd_shrink", bound, shrink, f"{shrink:.3g} (paper {PAPER_SHRINK:g}: 0.1 x 1e-4 x 75k updates "
                 f"x 10)", None, info=True)


def check_half_batch(baseline, independent):
    bound = f"abs(gap) <= {MAX_HALF_BATCH_GAP:g}"
    if baseline.empty or independent.empty:
        return missing("half_batch", bound, "no " + " or ".join(
            w for w, runs in (("baseline", baseline), ("independent", independent)) if runs.empty) + " runs")
    base, control = baseline["val_top1"].mean(), independent["val_top1_mean_over_models"].mean()
    gap = base - control
    return Check("half_batch", bound, gap, f"{gap:+.2f} ({base:.2f} vs {control:.2f})", abs(gap) <= MAX_HALF_BATCH_GAP)


def check_disagreement(independent):
    bound = f">= {MIN_ENSEMBLE_GAIN:g}"
    if independent.empty:
        return missing("disagreement", bound, "no independent runs")
    gain = (independent["ensemble_top1"] - independent["val_top1_mean_over_models"]).mean()
    return Check("disagreement", bound, gain, f"{gain:+.2f} ({len(independent)} seeds)", gain >= MIN_ENSEMBLE_GAIN)


def check_alpha(config, workload):
    """torch's mean-reduced MSE divides by the classes C: alpha over C classes pulls each logit
    1000 / C times as hard as the paper's over 1000; the workload's alpha_scale must undo that."""
    scale = float(config["workload"].get("alpha_scale") or 1.0)
    per_logit = scale * PAPER_CLASSES / workload.num_classes
    return Check("alpha_per_logit", f"1 ± {ALPHA_TOLERANCE:.0%}", per_logit,
                 f"{per_logit:.3g} (alpha_scale {scale:g}, {workload.num_classes} classes)",
                 abs(per_logit - 1) <= ALPHA_TOLERANCE)


def check_batch_panel(workload, largest_batch):
    bound = f">= {MIN_UPDATES_PER_EPOCH}"
    if largest_batch is None:
        return missing("batch_panel", bound, "no fig2 runs")
    updates = len(workload.train_set) // largest_batch
    return Check("batch_panel", bound, updates, f"{updates} ({len(workload.train_set)} samples / {largest_batch})",
                 updates >= MIN_UPDATES_PER_EPOCH)


PATH_KEY = re.compile(r"(^|[._])(root|path|dir|url|data_bin)$")


def check_data(config, workload):
    """>= 50k training samples, built in code or from a package: no data path in the workload config."""
    paths = [k for k, v in pd.json_normalize(config["workload"], sep=".").iloc[0].items() if PATH_KEY.search(k)
             and v not in (None, "")]
    count = len(workload.train_set)
    source = f"reads {', '.join(paths)}" if paths else "no data path in the config"
    return Check("data", f">= {MIN_TRAIN_SAMPLES:,} and no data path", count, f"{count} ({source})",
                 count >= MIN_TRAIN_SAMPLES and not paths)


def check_cost(name, fig2_ends, fig2_complete):
    """Figure 2's mini sweep as `make reproduce` runs it, the paper's three seeds of each setting
    (0-2; the seeds its power analysis adds come after them): the sum of those runs' training wall
    time (each run's `end` record), a lower bound on the sweep's time, which also spends each
    job's start-up."""
    bound = f"<= {MAX_FIG2_MINUTES:g}"
    if not fig2_complete:
        return missing("fig2_cost", bound, "fig2 runs missing or unfinished")
    ends = fig2_ends[(fig2_ends["cfg.workload.name"] == name) & fig2_ends["cfg.seed"].isin(REPRODUCED_SEEDS)] \
        if not fig2_ends.empty else fig2_ends
    if ends.empty:
        return missing("fig2_cost", bound, f"no fig2 runs of {name}")
    minutes = ends["wall_time"].sum() / 60
    return Check("fig2_cost", bound, minutes, f"{minutes:.1f} ({ends['run_id'].nunique()} runs, training only)",
                 minutes <= MAX_FIG2_MINUTES)


@dataclass
class Vision:
    """What the vision checks read: the regime and fig2 runs' final rows, fig2's end records."""
    regime: pd.DataFrame
    fig2: pd.DataFrame
    fig2_ends: pd.DataFrame
    fig2_complete: bool
    largest_batch: int = None


def reference_config(results, runs):
    return header_config(results, runs["run_id"].iloc[0]) if not runs.empty else None


def vision_checks(name, vision, results):
    """Every vision invariant of one workload, in VISION's order."""
    chosen, chosen_from = chosen_multiplier(name, vision.regime, vision.fig2)
    runs = vision.regime[vision.regime["workload"] == name]
    wd_runs = baseline_of(runs, name)
    groups = by_factor(wd_runs, chosen) if chosen else {}
    baseline = groups.get(1.0, wd_runs.iloc[:0])
    independent = baseline_of(runs, name, schedule="goyal_step_half", method="independent")
    if chosen:
        independent = independent[(independent["wd_scale"] / chosen).round(4) == 1.0]
    config = reference_config(results, baseline) or reference_config(results, baseline_of(vision.fig2, name)) \
        or reference_config(results, runs) or reference_config(results, vision.fig2[vision.fig2["workload"] == name])
    workload = workload_of(config)
    count, source = val_samples(baseline, workload)
    stats, lacking = wd_groups(wd_runs, chosen) if chosen else ({}, list(WD_FACTORS))
    checks = [check_budget(baseline), check_top1(baseline), check_val_samples(count, source), check_seed_se(baseline),
              check_wd_best(stats, lacking, 100 / count), check_wd_matters(stats, lacking),
              check_shrink(config, workload, baseline), check_half_batch(baseline, independent),
              check_disagreement(independent), check_alpha(config, workload),
              check_batch_panel(workload, vision.largest_batch), check_models(workload.make_model),
              check_data(config, workload), check_cost(name, vision.fig2_ends, vision.fig2_complete)]
    return checks, f"{chosen} (read from {chosen_from})" if chosen else "unknown (no baseline runs)"

