"""Checks paper/claims.yaml against the collected logs. At each scale a claim holds, does not hold,
is inconclusive (the logs cannot decide either way), was not run, or is n/a (a paper-scale
number, e.g. 76.1 % top-1, that a mini stand-in cannot check; the mini value is still shown).

A claim's `check` selects groups of runs from its figure's collected records and compares the
mean over seeds of one metric at each run's last evaluation (mean over the run's models, or
over the models of one architecture with `model_arch`). Every comparison is a difference d
between means, judged with its noise

    noise = 2 x (combined standard error over seeds of d) + one validation sample,

one validation sample being 100 / val_samples points for a top-1 metric (val_samples from the
eval records; for older logs from the run's workload config: digits 1797 - train_size,
workload.val_size, ImageNet 50,000, CIFAR-10 10,000) and 0 for any other metric. The logs decide
when the interval [d - noise, d + noise] lies on one side of the claim's bound:

- value:      |mean - value| <= tolerance (or rel_tolerance x |value|): holds when the whole
              interval lies inside the tolerance, does not hold when it lies wholly outside
- difference: mean(a) - mean(b) - value, as `value`
- compare:    d = mean(a) - mean(b) against `margin`: greater (d > margin), less (d < -margin),
              at_least (d >= -margin), within (|d| <= margin)
- monotone:   the means of `group` (minus those of `minus`, matched on `by`) increase or decrease
              along the sorted values of `by`: every step beyond its noise holds; a step beyond
              its noise the wrong way, or flat without noise, does not hold
- spread:     max - min of the means of `group` over the values of `by` is at most `max`
              (judged on the extreme pair, as `within`)
- tradeoff:   some `by` value of group a reaches mean(b) - tolerance on `metric` (as `at_least`)
              while group b costs at least `min_ratio` times more on `cost` (Fig. 1)
- recovers:   of the gap mean(target) - mean(base), group `treated` recovers more than `share`:
              (treated - base) - share x (target - base) > 0 beyond its noise, the gap itself
              being beyond its noise (Fig. 2: decaying weight decay recovers most of what constant
              weight decay costs)

Margins and tolerances (`margin` of within / at_least, `max` of spread, `tolerance` of tradeoff)
are the paper's at paper scale. At mini scale they are `mini_margin_se` times the workload's seed
standard error of the metric (the median, over every setting of that workload at that scale, of
the standard error of its final value over seeds): a margin in mini units, never in paper units.

For a compare or difference between a codistillation group and an all_reduce group, the outcome
also reports the gap codistillation - all_reduce and the share of it that the alpha = 0 control
(method=independent, the codistillation group's other keys; or the check's `control` group)
already shows.

A group maps config keys (dotted, as in the resolved config), or derived columns (model_arch,
setup, n_way, gamma), to a value, a list of values, or min / max (the extreme value present among
the runs the other keys select); `best_over: <key>` with `best: min|max` keeps the best mean over
that key's values (alpha_gamma: each γ with its best initial α).
"""
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import yaml

from collect import REPO

CLAIMS = REPO / "paper" / "claims.yaml"
HOLDS, FAILS, INCONCLUSIVE, NOT_RUN, NOT_APPLICABLE = "holds", "does not hold", "inconclusive", "not run", "n/a"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_RUN, NOT_APPLICABLE)
RESERVED = {"best_over", "best"}
DERIVED = {"model_arch", "setup", "n_way", "gamma", "batch_per_model"}
NOISE_SES = 2            # standard errors of a difference that count as noise
EPS = 1e-9               # floating-point slack for boundaries ("within 0.5" includes 0.5)
TOP1_METRICS = {"val_top1", "val_top1_mean_over_models", "ensemble_top1"}
DIGITS_SAMPLES = 1797    # scikit-learn's digits: validation = 1797 - workload.train_size
FULL_VALIDATION = {"imagenet_resnet50": 50_000, "cifar10_wrn": 10_000}
MARGIN_KEY = {"compare": "margin", "spread": "max", "tradeoff": "tolerance"}   # checks with a margin
NEEDS_MINI_MARGIN = {"within", "at_least"}   # compare ops whose margin needs mini units


def load_claims(path=CLAIMS):
    claims = yaml.safe_load(Path(path).read_text())["claims"]
    ids = [claim["id"] for claim in claims]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValueError(f"{path}: duplicated claim ids {sorted(duplicated)}")
    for claim in claims:
        if "value" in claim and not isinstance(claim["value"], (int, float)):
            raise ValueError(f"{path}: claim {claim['id']}: value {claim['value']!r} is not a number")
        if claim["check"]["kind"] not in CHECKS:
            raise ValueError(f"{path}: claim {claim['id']}: unknown check kind {claim['check']['kind']!r}")
        if needs_mini_margin(claim) and "mini_margin_se" not in claim["check"]:
            raise ValueError(f"{path}: claim {claim['id']}: a margin checked at mini scale needs mini_margin_se")
    return claims


def needs_mini_margin(claim):
    check = claim["check"]
    if "mini" not in claim.get("scales", ["mini", "paper"]):
        return False
    return check["kind"] in ("spread", "tradeoff") or (check["kind"] == "compare" and check["op"] in NEEDS_MINI_MARGIN)


@dataclass
class Outcome:
    status: str          # one of VERDICTS
    reproduced: str      # the numbers the status was computed from
    seeds: int = 0       # fewest seeds behind any mean used
    control: str = ""    # codistillation - all_reduce gap and the alpha = 0 control's share of it


class NotRun(Exception):
    pass


class Stat(NamedTuple):
    """A group's final metric: mean and standard error over seeds, seeds, and the fewest
    validation samples among its runs (nan when the logs do not say)."""
    mean: float
    se: float
    seeds: int
    val_samples: float = float("nan")


def _column(records, key):
    if key in DERIVED or f"cfg.{key}" not in records.columns:
        if key not in records.columns:
            raise NotRun(f"no column {key} in these logs")
        return records[key]
    return records[f"cfg.{key}"]


def _matches(series, wanted):
    if isinstance(wanted, list):
        return pd.concat([_matches(series, w) for w in wanted], axis=1).any(axis=1)
    if wanted is None:
        return series.isna()
    if isinstance(wanted, bool) or not isinstance(wanted, (int, float)):
        return series.astype(str) == str(wanted)
    numeric = pd.to_numeric(series, errors="coerce")
    return (numeric - wanted).abs() <= 1e-9 * max(1.0, abs(wanted))


def select(records, group):
    """The records of the runs (and models) a group names."""
    chosen = pd.Series(True, index=records.index)
    extremes = {k: v for k, v in group.items() if v in ("min", "max") and k not in RESERVED}
    for key, wanted in group.items():
        if key not in RESERVED and key not in extremes:
            chosen &= _matches(_column(records, key), wanted)
    for key, which in extremes.items():
        values = pd.to_numeric(_column(records, key), errors="coerce").where(chosen)
        if values.notna().any():
            chosen &= values == (values.max() if which == "max" else values.min())
    return records[chosen]


def config_val_samples(row):
    """Validation samples of a run from its workload config (logs written before eval records
    carried val_samples); nan when the config does not say."""
    workload = row.get("cfg.workload.name")
    if pd.notna(row.get("cfg.workload.val_size", float("nan"))):
        return float(row["cfg.workload.val_size"])
    if workload == "digits_mlp" and pd.notna(row.get("cfg.workload.train_size", float("nan"))):
        return float(DIGITS_SAMPLES - row["cfg.workload.train_size"])
    return float(FULL_VALIDATION.get(workload, float("nan")))


def final_per_run(records, metric):
    """One value per run: `metric` at the run's last record that has it, averaged over the
    selected models, with the run's validation samples and config columns."""
    if metric not in records.columns:
        return pd.DataFrame(columns=["run_id", "seed", "value", "val_samples"])
    logged_samples = ["val_samples"] if "val_samples" in records.columns else []
    rows = records[["run_id", "seed", "step", metric, *logged_samples]].dropna(subset=[metric])
    step = rows["step"].fillna(-1)
    rows = rows[step == step.groupby(rows["run_id"]).transform("max")]
    keep = [c for c in records.columns if c.startswith("cfg.") or c in DERIVED]
    per_run = rows.groupby("run_id", as_index=False).agg(seed=("seed", "first"), value=(metric, "mean"))
    first = records.loc[~records["run_id"].duplicated() & records["run_id"].isin(per_run["run_id"]), ["run_id", *keep]]
    per_run = per_run.join(first.set_index("run_id"), on="run_id")
    logged = rows.groupby("run_id")["val_samples"].min() if "val_samples" in rows.columns else {}
    from_config = per_run.apply(config_val_samples, axis=1) if len(per_run) else per_run["run_id"]
    per_run["val_samples"] = pd.to_numeric(per_run["run_id"].map(logged), errors="coerce").fillna(from_config)
    return per_run


def seed_mean(per_run):
    values = per_run["value"]
    if per_run["seed"].duplicated().any():
        raise ValueError("a group mixes settings: two runs of one seed")
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    samples = pd.to_numeric(per_run["val_samples"], errors="coerce").min() if "val_samples" in per_run else math.nan
    return Stat(float(values.mean()), se, len(values), float(samples))


def group_stats(records, group, metric, by=None):
    """{by value (or None): Stat} of a group's final metric."""
    selected = select(records, group)
    if selected.empty:
        raise NotRun(f"no finished run matches {group}")
    per_run = final_per_run(selected, metric)
    if per_run.empty:
        raise NotRun(f"no {metric} in the runs matching {group}")
    if "best_over" in group:
        stats = {value: seed_mean(part) for value, part in per_run.groupby(_column(per_run, group["best_over"]))}
        pick = min if group.get("best", "min") == "min" else max
        best = pick(stats, key=lambda v: stats[v].mean)
        per_run = per_run[_matches(_column(per_run, group["best_over"]), best)]
    if by is None:
        return {None: seed_mean(per_run)}
    keys = pd.to_numeric(_column(per_run, by), errors="coerce")
    return {key: seed_mean(part) for key, part in per_run.groupby(keys)}


def fmt(stat, digits=3):
    mean, se = stat.mean, stat.se
    text = f"{mean:.{digits}g}" if abs(mean) >= 1e4 else f"{mean:.{digits}f}"
    return text + ("" if math.isnan(se) else f" ± {se:.{digits}f}" if abs(mean) < 1e4 else f" ± {se:.2g}")


def _fewest(*stat_dicts):
    return min(s.seeds for stats in stat_dicts for s in stats.values())


# ---------------------------------------------------------------- noise and verdicts

@dataclass(frozen=True)
class Noise:
    """The noise of a difference: NOISE_SES combined standard errors plus one validation sample."""
    se: float            # combined standard error over seeds of the difference
    sample: float        # one validation sample in the metric's units (0 where it has none)

    @property
    def width(self):
        return NOISE_SES * self.se + self.sample

    def text(self):
        if math.isnan(self.se):
            return "noise unknown (one seed)"
        sample = f" + 1 sample {self.sample:.3f}" if self.sample else ""
        return f"noise {self.width:.3f} = {NOISE_SES} s.e. {NOISE_SES * self.se:.3f}{sample}"


def one_sample(metric, *stats):
    """One validation sample in points of a top-1 metric (the fewest samples of the groups);
    0 for other metrics and where the logs do not say."""
    samples = [s.val_samples for s in stats if not math.isnan(s.val_samples)]
    return 100.0 / min(samples) if metric in TOP1_METRICS and samples else 0.0


def noise_of(metric, *weighted):
    """Noise of sum(weight x mean) over (weight, Stat) pairs."""
    se = math.sqrt(sum((w * s.se) ** 2 for w, s in weighted))
    return Noise(se, one_sample(metric, *(s for _, s in weighted)))


def _tri(holds, fails):
    return HOLDS if holds else FAILS if fails else INCONCLUSIVE


def interval_verdict(d, width, op, margin=0.0):
    """Verdict on d (op, margin) from the interval [d - width, d + width]: holds when the whole
    interval satisfies the claim, does not hold when none of it does, inconclusive otherwise."""
    if math.isnan(width) or math.isnan(d):
        return INCONCLUSIVE
    low, high = d - width, d + width
    if op == "greater":
        return _tri(low > margin, high <= margin + EPS)
    if op == "less":
        return _tri(high < -margin, low >= -margin - EPS)
    if op == "at_least":
        return _tri(low >= -margin - EPS, high < -margin - EPS)
    if op == "within":
        return _tri(max(abs(low), abs(high)) <= margin + EPS, low > margin + EPS or high < -margin - EPS)
    raise ValueError(f"unknown op {op!r}")


class Resolution:
    """What one validation sample and one seed are worth for each workload at one scale, from
    the collected records of every figure (or of one figure, when a claim is checked alone).
    A run several figures share counts once."""

    def __init__(self, frames):
        seen, parts = set(), []
        for frame in frames:
            if frame.empty or "cfg.workload.name" not in frame:
                continue
            parts.append(frame[~frame["run_id"].isin(seen)])
            seen |= set(frame["run_id"])
        self.records = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        self._finals = {}

    def finals(self, metric):
        """final_per_run of every run, with `setting`: its config without the seed."""
        if metric not in self._finals:
            per_run = final_per_run(self.records, metric) if not self.records.empty else pd.DataFrame()
            if not per_run.empty:
                config = sorted(c for c in per_run.columns if c.startswith("cfg.") and c != "cfg.seed")
                per_run["setting"] = per_run[config].map(str).agg("|".join, axis=1)
            self._finals[metric] = per_run
        return self._finals[metric]

    def workloads(self):
        return sorted(self.records["cfg.workload.name"].dropna().unique()) if not self.records.empty else []

    def val_samples(self, workload):
        """Fewest validation samples over the workload's runs (nan when the logs do not say)."""
        per_run = self.finals("val_top1")
        if per_run.empty:
            return float("nan")
        return float(pd.to_numeric(per_run.loc[per_run["cfg.workload.name"] == workload, "val_samples"]).min())

    def seed_se(self, workload, metric):
        """(median over the workload's settings with >= 2 seeds of the s.e. over seeds of the
        final metric, number of such settings)."""
        per_run = self.finals(metric)
        if per_run.empty:
            return float("nan"), 0
        mine = per_run[per_run["cfg.workload.name"] == workload]
        ses = [runs["value"].std(ddof=1) / math.sqrt(len(runs)) for _, runs in mine.groupby("setting") if len(runs) > 1]
        return (float(pd.Series(ses).median()) if ses else float("nan")), len(ses)


def margin_for(check, key, context, records, metric):
    """(margin, how it was set): the paper's at paper scale; at mini scale mini_margin_se x the
    largest seed s.e. among the workloads of the figure's runs."""
    if context.scale != "mini" or "mini_margin_se" not in check:
        value = check.get(key, 0.0)
        return value, f"{value:g}"
    workloads = sorted(records["cfg.workload.name"].dropna().unique()) if "cfg.workload.name" in records else []
    ses = [context.resolution.seed_se(w, metric)[0] for w in workloads]
    se = max(ses) if ses else float("nan")
    k = check["mini_margin_se"]
    return k * se, f"{k:g} seed s.e. = {k * se:.3f}"


@dataclass
class Context:
    scale: str
    resolution: Resolution


# ---------------------------------------------------------------- the alpha = 0 control

def _method(group):
    return group.get("method.name") if isinstance(group, dict) else None


def control_group(codistill_group, check):
    if "control" in check:
        return check["control"]
    kept = {k: v for k, v in codistill_group.items() if not k.startswith("method.") or k == "method.n"}
    return {**kept, "method.name": "independent"}


def _points(value, metric):
    """A difference with its unit: points (2 decimals) of top-1, 3 significant digits otherwise."""
    return f"{value:+.2f} pts" if metric in TOP1_METRICS else f"{value:+.3g}"


def control_share(records, check, metric):
    """'gap ...; alpha = 0 control ... (share)' for a codistillation vs all_reduce comparison;
    '' for any other claim."""
    a, b = check.get("a"), check.get("b")
    methods = (_method(a), _method(b))
    if sorted(methods, key=str) != ["allreduce", "codistill"]:
        return ""
    codistill, allreduce = (a, b) if methods[0] == "codistill" else (b, a)
    try:
        ours, theirs = group_stats(records, codistill, metric)[None], group_stats(records, allreduce, metric)[None]
    except NotRun:
        return ""
    gap, noise = ours.mean - theirs.mean, noise_of(metric, (1, ours), (-1, theirs))
    text = f"gap codistillation - all_reduce {_points(gap, metric)}"
    if abs(gap) <= noise.width:
        text += " (within noise)"
    try:
        control = group_stats(records, control_group(codistill, check), metric)[None]
    except NotRun:
        return text + "; no alpha = 0 control (method=independent, same schedule) in these logs"
    control_gap = control.mean - theirs.mean
    share = f" ({100 * control_gap / gap:.0f} %)" if gap else ""
    return text + f"; alpha = 0 control {_points(control_gap, metric)}{share}"


# ---------------------------------------------------------------- the checks
# Each returns (verdict, the numbers shown, fewest seeds).

def check_value(records, check, metric, claim, context):
    stat = group_stats(records, check["group"], metric)[None]
    tolerance = check.get("tolerance", abs(claim["value"]) * check.get("rel_tolerance", 0))
    noise = noise_of(metric, (1, stat))
    verdict = interval_verdict(stat.mean - claim["value"], noise.width, "within",
                               tolerance + EPS * max(1.0, abs(claim["value"])))
    return verdict, f"{fmt(stat)} (paper {claim['value']} ± {tolerance:g}); {noise.text()}", stat.seeds


def check_difference(records, check, metric, claim, context):
    a, b = group_stats(records, check["a"], metric)[None], group_stats(records, check["b"], metric)[None]
    diff, noise = a.mean - b.mean, noise_of(metric, (1, a), (-1, b))
    verdict = interval_verdict(diff - claim["value"], noise.width, "within", check["tolerance"])
    return (verdict, f"a - b = {diff:.3f} (a {fmt(a)}, b {fmt(b)}); {noise.text()}", min(a.seeds, b.seeds))


def check_compare(records, check, metric, claim, context):
    a, b = group_stats(records, check["a"], metric)[None], group_stats(records, check["b"], metric)[None]
    diff, noise = a.mean - b.mean, noise_of(metric, (1, a), (-1, b))
    margin, how = margin_for(check, "margin", context, records, metric)
    shown = f"a {fmt(a)}, b {fmt(b)}, a - b = {diff:+.3f}; {noise.text()}"
    if check["op"] in NEEDS_MINI_MARGIN or margin:
        shown += f"; margin {how}"
    return interval_verdict(diff, noise.width, check["op"], margin), shown, min(a.seeds, b.seeds)


def _step_verdicts(steps, order):
    """Verdict of a monotone sequence from its steps [(d, Noise)]."""
    op = "greater" if order == "increasing" else "less"
    verdicts = [interval_verdict(d, noise.width, op) for d, noise in steps]
    return FAILS if FAILS in verdicts else HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE


def check_monotone(records, check, metric, claim, context):
    stats = group_stats(records, check["group"], metric, check["by"])
    fewest = _fewest(stats)
    if "minus" in check:
        other = group_stats(records, check["minus"], metric, check["by"])
        points = {k: [(1, s), (-1, other[k])] for k, s in stats.items() if k in other}
        fewest = min(fewest, _fewest(other))
    else:
        points = {k: [(1, s)] for k, s in stats.items()}
    if len(points) < 2:
        raise NotRun(f"fewer than two values of {check['by']}")
    keys = sorted(points)
    value = {k: sum(w * s.mean for w, s in points[k]) for k in keys}
    steps = [(value[y] - value[x], noise_of(metric, *points[y], *((-w, s) for w, s in points[x])))
             for x, y in zip(keys, keys[1:])]
    shown = ", ".join(f"{k:g}: {value[k]:.3f}" for k in keys)
    widths = ", ".join(f"{d:+.3f} (noise {n.width:.3f})" for d, n in steps)
    return _step_verdicts(steps, check["order"]), f"by {check['by']}: {shown}; steps {widths}", fewest


def check_spread(records, check, metric, claim, context):
    stats = group_stats(records, check["group"], metric, check["by"])
    if len(stats) < 2:
        raise NotRun(f"fewer than two values of {check['by']}")
    high = max(stats, key=lambda k: stats[k].mean)
    low = min(stats, key=lambda k: stats[k].mean)
    spread, noise = stats[high].mean - stats[low].mean, noise_of(metric, (1, stats[high]), (-1, stats[low]))
    limit, how = margin_for(check, "max", context, records, metric)
    shown = ", ".join(f"{k:g}: {stats[k].mean:.3f}" for k in sorted(stats))
    return (interval_verdict(spread, noise.width, "within", limit),
            f"spread {spread:.3f} ({noise.text()}; max {how}); {shown}", _fewest(stats))


def check_tradeoff(records, check, metric, claim, context):
    a = group_stats(records, check["a"], metric, check["by"])
    b = group_stats(records, check["b"], metric)[None]
    a_cost = group_stats(records, check["a"], check["cost"], check["by"])
    b_cost = group_stats(records, check["b"], check["cost"])[None]
    tolerance, how = margin_for(check, "tolerance", context, records, metric)
    cheap = {k: b_cost.mean / a_cost[k].mean for k in a if a_cost[k].mean > 0}
    cheap = {k: r for k, r in cheap.items() if r >= check["min_ratio"] * (1 - EPS)}
    verdicts = {k: interval_verdict(a[k].mean - b.mean, noise_of(metric, (1, a[k]), (-1, b)).width,
                                    "at_least", tolerance) for k in cheap}
    verdict = HOLDS if HOLDS in verdicts.values() else INCONCLUSIVE if INCONCLUSIVE in verdicts.values() else FAILS
    if not cheap:
        return FAILS, f"no {check['by']} sends {check['min_ratio']:g}x fewer", min(_fewest(a), b.seeds)
    best = max(cheap, key=lambda k: (verdicts[k] == HOLDS, a[k].mean))
    noise = noise_of(metric, (1, a[best]), (-1, b))
    shown = (f"best: {check['by']}={best:g}, {metric} {a[best].mean:.3f} vs {b.mean:.3f} "
             f"({noise.text()}; tolerance {how}), {cheap[best]:.0f}x fewer")
    return verdict, shown, min(_fewest(a), b.seeds)


def check_recovers(records, check, metric, claim, context):
    base, target, treated = (group_stats(records, check[k], metric)[None] for k in ("base", "target", "treated"))
    share = check["share"]
    gap, gap_noise = target.mean - base.mean, noise_of(metric, (1, target), (-1, base))
    recovered = treated.mean - base.mean
    contrast = recovered - share * gap
    noise = noise_of(metric, (1, treated), (-(1 - share), base), (-share, target))
    shown = (f"gap target - base {gap:+.3f} ({gap_noise.text()}); treated - base {recovered:+.3f}"
             + (f" ({100 * recovered / gap:.0f} % of the gap)" if gap else "")
             + f"; recovered - {share:g} x gap = {contrast:+.3f} ({noise.text()})")
    fewest = min(base.seeds, target.seeds, treated.seeds)
    if interval_verdict(gap, gap_noise.width, "greater") != HOLDS:
        return INCONCLUSIVE, shown + "; no gap beyond the noise to recover", fewest
    return interval_verdict(contrast, noise.width, "greater"), shown, fewest


CHECKS = {"value": check_value, "difference": check_difference, "compare": check_compare,
          "monotone": check_monotone, "spread": check_spread, "tradeoff": check_tradeoff,
          "recovers": check_recovers}


def evaluate(claim, data, resolution=None):
    """data: the registry.FigureData of the claim's figure at one scale; resolution: the scale's
    Resolution over every figure (default: from this figure's records alone). A paper-scale
    number at another scale is n/a; the value the logs give there is still shown, marked as such."""
    applicable = data.scale in claim.get("scales", ["mini", "paper"])
    not_applicable = "paper-scale number: not comparable at this scale"
    if data.records.empty:
        return Outcome(NOT_RUN, data.problem or "no finished run") if applicable else \
            Outcome(NOT_APPLICABLE, not_applicable)
    check = claim["check"]
    metric = check.get("metric", claim.get("metric"))
    context = Context(data.scale, resolution or Resolution([data.records]))
    try:
        verdict, shown, seeds = CHECKS[check["kind"]](data.records, check, metric, claim, context)
    except NotRun as reason:
        return Outcome(NOT_RUN, str(reason)) if applicable else Outcome(NOT_APPLICABLE, not_applicable)
    if seeds < 3:
        shown += f" [FEWER THAN 3 SEEDS: {seeds}]"
    if not applicable:
        return Outcome(NOT_APPLICABLE, f"{data.scale.upper()} value {shown.split(' (paper')[0]}; {not_applicable}", seeds)
    return Outcome(verdict, shown, seeds, control_share(data.records, check, metric) if check["kind"] in
                   ("compare", "difference") else "")
