"""Regime check (issue 13): is each mini stand-in in the paper's regime? Measures every invariant
that docs/mini-scale.md ("Regime check") lists from the committed logs, prints one table per task
(vision, translation) with the bound and each workload's value side by side, and says of each
whether it holds, fails, or is declared unmet there.

    python figures/regime.py [--results paper/logs] [--docs docs/mini-scale.md]

Vision invariants come from the runs of the `regime` sweep (the all_reduce baseline, its weight
decay x {0.1, 0.3, 3} and the alpha = 0 `independent` control), the largest batch and the cost
from Figure 2's sweep, the data and model sizes from the workload itself (built from a run's
config); translation invariants from the runs of sweeps fig4 and iwslt_overfit.

The workloads that the exit status judges ("gated") are those of Figure 2's mini runs, the
stand-in every vision figure is drawn from, and every translation workload; any other vision
workload (digits, once it is no longer Figure 2's) is printed beside them for reference.
Exit status: 0 when every invariant of every gated workload holds or is declared unmet with its
measured value; 1 when one fails, or a declaration does not match its measured value or declares
an invariant that holds; 2 when runs the check needs are missing or unfinished (listed).
"""
import argparse
import math
import operator
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import torch
from omegaconf import OmegaConf

import collect
from collect import COMMITTED, REPO
from codistill.sampling import data_subset  # noqa: E402  (collect put src/ on the path)
from codistill.schedules import run_schedules  # noqa: E402
from codistill.workloads import build_workload  # noqa: E402

SCALE = "mini"
REGIME, FIG2, FIG4, OVERFIT = "regime", "fig2", "fig4", "iwslt_overfit"
DOCS = REPO / "docs" / "mini-scale.md"
VISION_ORDER = ("digits_mlp",)   # vision columns: these first, in this order, then any other found, by name

# Bounds (issue 13, deliverable 1).
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
PAPER_ARCHS = ("resnet18", "resnet50", "resnext101_32x8d")   # the three sizes, by the paper's names
MIN_TRAIN_SAMPLES = 50_000
MAX_FIG2_MINUTES = 12.0
FLAT_TAIL, MAX_TAIL_DROP = 0.2, 2.0   # the last 20 % of updates lower val NLL by < 2 % of its drop
OVERFIT_SE = 2.0
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
    "fig2_cost": "cost: Figure 2's mini sweep (minutes of training)",
}
TRANSLATION = {
    "nll_flattened": "Fig. 4 trained until val NLL flattens: last 20 % of updates' share of its drop (%)",
    "overfits": "over-fitting stand-in over-fits: all_reduce final - minimum val NLL (bits)",
}
HOLDS, FAILS, DECLARED, MISSING, INFO = "holds", "fails", "declared unmet", "missing runs", "info"


@dataclass
class Check:
    """One invariant measured on one workload. `value` is the number a declaration must match
    (the first number of `shown`); holds None: the runs it needs are missing."""
    id: str
    bound: str
    value: float = None
    shown: str = ""
    holds: bool = None
    info: bool = False


def missing(check_id, bound, why):
    return Check(check_id, bound, shown=why)


# ---------------------------------------------------------------- reading the logs


@dataclass
class Sweep:
    """A sweep's finished records (collect's table), its runs' status, and what stops it being read."""
    id: str
    records: pd.DataFrame
    status: pd.DataFrame
    problem: str = None

    def not_finished(self):
        if self.problem:
            return [self.problem]
        if (self.status["state"] == "finished").all():
            return []
        return collect.status_lines(self.status, self.id)


def load_sweep(results, sweep_id, kinds=("eval",)):
    try:
        records, status = collect.collect(results, sweep_id, SCALE, kinds)
    except collect.ManifestMissing as error:
        return Sweep(sweep_id, pd.DataFrame(), pd.DataFrame(), problem=f"{sweep_id}: {error}")
    return Sweep(sweep_id, records, status)


ABOUT = ("seed", "setting", "cfg.workload.name", "cfg.workload.task", "cfg.method.name", "cfg.schedule.name",
         "cfg.workload.weight_decay_scale")
METRICS = ("train_loss", "val_loss", "val_top1", "val_top1_mean_over_models", "ensemble_top1", "val_samples",
           "val_nll", "batch_per_model")


def final_rows(records):
    """One row per finished run: its metrics at its last evaluation (mean over its models), what
    it ran (workload, method, schedule) and its weight-decay multiplier (absent from old logs: 1)."""
    if records.empty:
        return pd.DataFrame(columns=["run_id", "seed", "setting", "workload", "task", "method", "schedule", "wd_scale"])
    last = records[records["step"] == records.groupby("run_id")["step"].transform("max")]
    metrics = [c for c in METRICS if c in last]
    values = last[metrics].apply(pd.to_numeric, errors="coerce").assign(run_id=last["run_id"])
    runs = last.groupby("run_id")[[c for c in ABOUT if c in last]].first().join(values.groupby("run_id").mean())
    runs = runs.rename(columns={"cfg.workload.name": "workload", "cfg.method.name": "method",
                                "cfg.schedule.name": "schedule", "cfg.workload.task": "task"})
    scale = runs.get("cfg.workload.weight_decay_scale", pd.Series(math.nan, index=runs.index))
    runs["wd_scale"] = pd.to_numeric(scale, errors="coerce").fillna(1.0)
    if "task" not in runs:
        runs["task"] = None
    return runs.reset_index()


def header_config(results, run_id):
    return collect.read_log(Path(results) / "runs" / run_id).header["config"]


@lru_cache(maxsize=None)
def _built(workload_yaml):
    return build_workload(OmegaConf.create(workload_yaml))


def workload_of(config):
    """The run's workload (data sets and model factory) as the engine builds it; built once per config."""
    return _built(OmegaConf.to_yaml(OmegaConf.create(config["workload"])))


# ---------------------------------------------------------------- statistics


def seed_stats(values):
    """(mean, standard error over seeds (ddof 1; nan below 2 seeds), n)."""
    values = pd.Series(values, dtype=float).dropna()
    n = len(values)
    return values.mean(), (values.std(ddof=1) / math.sqrt(n) if n > 1 else math.nan), n


def chosen_multiplier(name, regime_runs, fig2_runs):
    """A workload's chosen weight-decay multiplier (`workload.weight_decay_scale`) and where it was
    read: the most common one among Figure 2's all_reduce goyal_step runs of the workload (the
    recipe its figures use); without those, the one of the regime baseline runs that leave the
    multiplier at the workload config's default (no override of it in their settings)."""
    of_fig2 = baseline_of(fig2_runs, name)
    if not of_fig2.empty:
        return float(of_fig2["wd_scale"].mode().iloc[0]), "fig2's all_reduce runs"
    default = baseline_of(regime_runs, name)
    default = default[~default["setting"].str.contains("workload.weight_decay_scale=", regex=False)]
    if not default.empty:
        return float(default["wd_scale"].mode().iloc[0]), "the regime baseline runs at the config's default"
    return None, None


def baseline_of(runs, name, schedule="goyal_step", method="allreduce"):
    return runs[(runs["workload"] == name) & (runs["method"] == method) & (runs["schedule"] == schedule)]


def by_factor(runs, chosen):
    """{multiplier / chosen, rounded: runs}."""
    factors = (runs["wd_scale"] / chosen).round(4)
    return {float(f): group for f, group in runs.groupby(factors)}


# ---------------------------------------------------------------- vision invariants


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
    """Validation samples: from the eval records (`val_samples`), or for logs older than that
    field, the size of the validation set the run's config builds (digits: 1797 - train_size)."""
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


ADDS = {operator.add, operator.iadd, torch.add}


def _ancestors(node, seen):
    if node not in seen:
        seen[node] = set(node.all_input_nodes).union(*(_ancestors(n, seen) for n in node.all_input_nodes))
    return seen[node]


def residual_adds(model):
    """Additions a + b in the model's traced graph (torch.fx) where one operand is computed from
    the other (x + f(x)): its identity shortcuts (a projection shortcut, f(x) + g(x), is not
    counted: torchvision's ResNet-18 has 5 of 8). None when the model cannot be traced."""
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:   # noqa: BLE001  (fx raises many kinds on data-dependent control flow)
        return None
    seen, count = {}, 0
    for node in graph.nodes:
        is_add = (node.op == "call_function" and node.target in ADDS) or (
            node.op == "call_method" and node.target in ("add", "add_"))
        operands = [a for a in node.args[:2] if isinstance(a, torch.fx.Node)] if is_add else []
        if len(operands) == 2 and (operands[0] in _ancestors(operands[1], seen)
                                   or operands[1] in _ancestors(operands[0], seen)):
            count += 1
    return count


def model_structure(model):
    """(parameters, batch-norm modules, residual connections) of one model."""
    norms = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return sum(p.numel() for p in model.parameters()), norms, residual_adds(model)


def check_models(make_model, archs=PAPER_ARCHS):
    """The workload's stand-ins for the three paper architectures: each has batch norm and residual
    connections, and they grow in that order. Value: how many of the three qualify."""
    structures = [model_structure(make_model(0, {"arch": arch})) for arch in archs]
    growing = all(a[0] < b[0] for a, b in zip(structures, structures[1:]))
    good = sum(norms > 0 and bool(adds) for _, norms, adds in structures)
    detail = "; ".join(f"{p / 1e3:.0f}k params, {n} BN, {'untraceable' if a is None else a} residual"
                       for p, n, a in structures)
    return Check("residual_bn", f"{len(archs)} of {len(archs)}, growing", good,
                 f"{good} ({detail}{'' if growing else '; sizes do not grow'})", good == len(archs) and growing)


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
    """Figure 2's mini sweep: the sum of its runs' training wall time (each run's `end` record);
    a lower bound on the sweep's time, which also spends each job's start-up."""
    bound = f"<= {MAX_FIG2_MINUTES:g}"
    if not fig2_complete:
        return missing("fig2_cost", bound, "fig2 runs missing or unfinished")
    ends = fig2_ends[fig2_ends["cfg.workload.name"] == name] if not fig2_ends.empty else fig2_ends
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


# ---------------------------------------------------------------- translation invariants


def run_curves(records):
    """{run_id: val NLL per update, mean over the run's models}."""
    curves = records.groupby(["run_id", "step"])["val_nll"].mean()
    return {run: curve.droplevel(0) for run, curve in curves.groupby(level=0)}


def tail_share(curve):
    """Share (%) of the drop in val NLL, from the first evaluation to the last, that the last
    FLAT_TAIL of updates made: from the last evaluation at or before 80 % of the final update."""
    final_step = curve.index.max()
    tail_start = curve[curve.index <= (1 - FLAT_TAIL) * final_step].iloc[-1]
    drop = curve.iloc[0] - curve.iloc[-1]
    return 100 * (tail_start - curve.iloc[-1]) / drop if drop > 0 else math.nan


def check_flattened(records):
    bound = f"< {MAX_TAIL_DROP:g} in every method (mean over seeds)"
    if records.empty:
        return missing("nll_flattened", bound, "no fig4 runs")
    shares = {run: tail_share(curve) for run, curve in run_curves(records).items()}
    by_method = records.groupby("run_id")["cfg.method.name"].first().to_frame("method").assign(
        share=pd.Series(shares)).groupby("method")["share"].mean()
    worst = by_method.idxmax() if by_method.notna().all() else by_method.index[by_method.isna()][0]
    detail = ", ".join(f"{m} {s:.1f}" for m, s in by_method.items())
    return Check("nll_flattened", bound, by_method[worst], f"{by_method[worst]:.1f} ({worst}; {detail})",
                 bool(by_method.notna().all() and by_method.max() < MAX_TAIL_DROP))


def check_overfits(records):
    """The all_reduce baseline's final val NLL lies above its minimum by more than two standard
    errors (over seeds) of the final val NLL. Value: the mean rise over seeds."""
    bound = f"> {OVERFIT_SE:g} seed s.e. of the final"
    allreduce = records[records["cfg.method.name"] == "allreduce"] if not records.empty else records
    if allreduce.empty:
        return missing("overfits", bound, "no iwslt_overfit all_reduce runs")
    curves = run_curves(allreduce)
    finals = pd.Series({run: c.iloc[-1] for run, c in curves.items()})
    rise = pd.Series({run: c.iloc[-1] - c.min() for run, c in curves.items()}).mean()
    _, se, n = seed_stats(finals)
    if n < 2:
        return missing("overfits", bound, f"{n} all_reduce seed(s)")
    lowest = {run: int(c.idxmin()) for run, c in curves.items()}
    return Check("overfits", f"{bound} = {OVERFIT_SE * se:.3f}", rise,
                 f"{rise:.3f} ({n} seeds; minimum at update {sorted(lowest.values())} of "
                 f"{int(max(c.index.max() for c in curves.values()))})", rise > OVERFIT_SE * se)


def translation_checks(name, fig4, overfit):
    of = lambda records: records[records["cfg.workload.name"] == name] if not records.empty else records  # noqa: E731
    return [check_flattened(of(fig4)), check_overfits(of(overfit))]


# ---------------------------------------------------------------- declarations and verdicts


DECLARATION_HEADING = re.compile(r"^#+\s*Invariants declared unmet\s*$", re.IGNORECASE)
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def read_declarations(docs):
    """{(workload, invariant id): (declared measured value as written, reason)} from the markdown
    table under the heading "Invariants declared unmet" of `docs` (columns workload, invariant,
    measured, reason; backticks ignored). No such heading: none declared."""
    lines = Path(docs).read_text().splitlines() if Path(docs).exists() else []
    start = next((i for i, line in enumerate(lines) if DECLARATION_HEADING.match(line)), None)
    if start is None:
        return {}
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.strip().startswith("|"):
            rows.append([cell.strip().strip("`").strip() for cell in line.strip().strip("|").split("|")])
    if not rows:
        return {}
    columns = [c.lower() for c in rows[0]]
    table = [dict(zip(columns, row)) for row in rows[2:]]   # rows[1]: the |---| separator
    return {(row["workload"], row["invariant"]): (row["measured"], row.get("reason", "")) for row in table}


def matches(declared, value):
    """The declared value, rounded as written, is the measured one: |declared - value| <= half a
    unit of its last written digit (thousands separators allowed)."""
    found = NUMBER.search(declared.replace(",", ""))
    if found is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    text = found.group()
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-9


def verdict(check, declaration):
    """holds / fails / declared unmet / missing runs / info, with what is wrong with a declaration."""
    if check.info:
        return INFO
    if check.holds is None:
        return MISSING
    if check.holds:
        return HOLDS if declaration is None else f"{FAILS}: declared unmet but holds (remove the declaration)"
    if declaration is None:
        return FAILS
    if matches(declaration[0], check.value):
        return DECLARED
    return f"{FAILS}: declared {declaration[0]}, measured {check.value:.4g}"


def table(checks_by_workload, titles, gated, declarations):
    """(markdown table: invariant, bound, one column per workload; {(workload, id): (check, verdict)})."""
    rows, verdicts = {}, {}
    for name, checks in checks_by_workload.items():
        column = f"{name} ({'gated' if name in gated else 'reference'})"
        for check in checks:
            state = verdict(check, declarations.get((name, check.id)))
            rows.setdefault(check.id, {"invariant": f"{titles[check.id]} [{check.id}]", "bound": check.bound})
            rows[check.id][column] = f"{check.shown}: **{state}**"
            verdicts[(name, check.id)] = (check, state)
    return pd.DataFrame([rows[i] for i in titles if i in rows]).to_markdown(index=False), verdicts


def ordered(names):
    known = [n for n in VISION_ORDER if n in names]
    return known + sorted(set(names) - set(known))


# ---------------------------------------------------------------- command


@dataclass
class Outcome:
    text: str        # what the command prints
    verdicts: dict   # {(workload, invariant id): (Check, verdict)}
    gated: set       # the workloads the exit status judges
    status: int      # 0 every gated verdict holds or is declared unmet, 1 one does not, 2 runs are missing


def load_vision(results):
    regime, fig2 = load_sweep(results, REGIME), load_sweep(results, FIG2)
    fig2_ends = load_sweep(results, FIG2, kinds=("end",))
    largest = int(fig2.records["batch_per_model"].max()) if "batch_per_model" in fig2.records else None
    vision = Vision(final_rows(regime.records), final_rows(fig2.records), fig2_ends.records,
                    not fig2.not_finished(), largest)
    return vision, [regime, fig2]


def vision_names(vision):
    runs = pd.concat([vision.regime, vision.fig2])
    return ordered(runs.loc[runs["task"].isna(), "workload"].dropna().unique().tolist())


def translation_names(*sweeps):
    frames = [s.records for s in sweeps if not s.records.empty]
    return sorted(pd.concat(frames)["cfg.workload.name"].unique()) if frames else []


def run_check(results=COMMITTED, docs=DOCS):
    """Measures every invariant from the logs under `results`, judges it against the declarations
    in `docs`, and says what the command prints and returns."""
    declarations = read_declarations(docs)
    vision, sweeps = load_vision(results)
    fig4, overfit = load_sweep(results, FIG4), load_sweep(results, OVERFIT)
    names, languages = vision_names(vision), translation_names(fig4, overfit)
    standins = set(vision.fig2.loc[vision.fig2["task"].isna(), "workload"]) or set(names)
    measured = {name: vision_checks(name, vision, results) for name in names}
    vision_table, verdicts = table({n: c for n, (c, _) in measured.items()}, VISION, standins, declarations)
    translation = {name: translation_checks(name, fig4.records, overfit.records) for name in languages}
    translation_table, translation_verdicts = table(translation, TRANSLATION, set(languages), declarations)
    verdicts.update(translation_verdicts)
    gated = standins | set(languages)
    lines = ["# Regime check (MINI scale: not the paper's numbers)", "",
             f"Logs: {results}. Gated (judged by the exit status): Figure 2's mini stand-in(s) {sorted(standins)} "
             f"and every translation workload {languages}; any other column is shown for reference.", "",
             *[f"- {name}: chosen weight-decay multiplier (workload.weight_decay_scale) {chosen}"
               for name, (_, chosen) in measured.items()],
             "", "## Vision", "", vision_table if names else "no vision runs found",
             "", "## Translation", "", translation_table if translation else "no translation runs found"]
    status, summary = judge(verdicts, gated, [*sweeps, fig4, overfit], bool(names and languages))
    return Outcome("\n".join(lines + summary), verdicts, gated, status)


def judge(verdicts, gated, sweeps, anything):
    """(exit status, lines saying why): 2 when runs are missing, 1 when a gated verdict is neither
    holds nor declared unmet, else 0."""
    not_finished = [line for sweep in sweeps for line in sweep.not_finished()]
    lines = []
    if not_finished:
        lines += ["", "Runs the check needs that are missing or unfinished (run their sweeps: "
                      "python src/run.py -m sweep=<id> scale=mini):", *[f"  {line}" for line in not_finished]]
    judged = {key: state for key, (_, state) in verdicts.items() if key[0] in gated}
    failing = {key: state for key, state in judged.items() if state not in (HOLDS, DECLARED, INFO)}
    named = ": " + ", ".join(f"{workload} {invariant}" for workload, invariant in failing) if failing else "."
    lines += ["", f"{len(judged)} gated verdicts: {len(judged) - len(failing)} hold, are declared unmet or are "
                  f"information; {len(failing)} do not{named}"]
    if not_finished or not anything or MISSING in failing.values():
        return 2, lines
    return (1 if failing else 0), lines


def main(argv=None):
    parser = argparse.ArgumentParser(description="the regime check: every invariant of each mini stand-in")
    parser.add_argument("--results", default=str(COMMITTED), help="the logs (default: the committed paper/logs)")
    parser.add_argument("--docs", default=str(DOCS), help="where invariants are declared unmet (default: %(default)s)")
    args = parser.parse_args(argv)
    outcome = run_check(args.results, args.docs)
    print(outcome.text)
    return outcome.status


if __name__ == "__main__":
    sys.exit(main())
