"""Checks paper/claims.yaml against the collected logs: each claim holds, does not hold, or was not
run at a scale (or is a paper-scale number that a mini stand-in cannot check: "n/a").

A claim's `check` selects groups of runs from its figure's collected records and compares the
mean over seeds of one metric at each run's last evaluation (mean over the run's models, or
over the models of one architecture with `model_arch`):

- value:      the group's mean is within `tolerance` (or `rel_tolerance`) of the paper's `value`
- difference: mean(a) - mean(b) is within `tolerance` of `value`
- compare:    mean(a) - mean(b) against `margin` with op within (|d| <= margin), greater (d > margin),
              less (d < -margin), at_least (d >= -margin)
- monotone:   the means of `group` (minus those of `minus`, matched on `by`) strictly increase or
              decrease along the sorted values of `by`
- spread:     max - min of the means of `group` over the values of `by` is at most `max`
- tradeoff:   some `by` value of group a reaches mean(b) - tolerance on `metric` while group b
              costs at least `min_ratio` times more on `cost` (Fig. 1)

A group maps config keys (dotted, as in the resolved config), or derived columns (model_arch,
setup, n_way, gamma), to a value, a list of values, or min / max (the extreme value present among
the runs the other keys select); `best_over: <key>` with `best: min|max` keeps the best mean over
that key's values (alpha_gamma: each γ with its best initial α).
"""
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from collect import REPO

CLAIMS = REPO / "paper" / "claims.yaml"
HOLDS, FAILS, NOT_RUN, NOT_APPLICABLE = "holds", "does not hold", "not run", "n/a"
RESERVED = {"best_over", "best"}
DERIVED = {"model_arch", "setup", "n_way", "gamma", "batch_per_model"}


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
    return claims


@dataclass
class Outcome:
    status: str          # holds | does not hold | not run | n/a
    reproduced: str      # the numbers the status was computed from
    seeds: int = 0       # fewest seeds behind any mean used


class NotRun(Exception):
    pass


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
    selected = records
    extremes = {k: v for k, v in group.items() if v in ("min", "max") and k not in RESERVED}
    for key, wanted in group.items():
        if key in RESERVED or key in extremes:
            continue
        selected = selected[_matches(_column(selected, key), wanted)]
    for key, which in extremes.items():
        values = pd.to_numeric(_column(selected, key), errors="coerce")
        if values.notna().any():
            selected = selected[values == (values.max() if which == "max" else values.min())]
    return selected


def final_per_run(records, metric):
    """One value per run: `metric` at the run's last record that has it, averaged over the
    selected models."""
    if metric not in records.columns:
        return pd.DataFrame(columns=["run_id", "seed", metric])
    rows = records.dropna(subset=[metric])
    rows = rows[rows["step"].fillna(-1) == rows.groupby("run_id")["step"].transform(lambda s: s.fillna(-1).max())]
    keep = [c for c in rows.columns if c.startswith("cfg.") or c in DERIVED]
    per_run = rows.groupby("run_id", as_index=False).agg(seed=("seed", "first"), value=(metric, "mean"))
    extra = rows.drop_duplicates("run_id").set_index("run_id")[keep]
    return per_run.join(extra, on="run_id")


def seed_mean(per_run):
    values = per_run["value"]
    if per_run["seed"].duplicated().any():
        raise ValueError("a group mixes settings: two runs of one seed")
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), se, len(values)


def group_stats(records, group, metric, by=None):
    """{by value (or None): (mean over seeds, s.e., seeds)} of a group's final metric."""
    selected = select(records, group)
    if selected.empty:
        raise NotRun(f"no finished run matches {group}")
    per_run = final_per_run(selected, metric)
    if per_run.empty:
        raise NotRun(f"no {metric} in the runs matching {group}")
    if "best_over" in group:
        stats = {value: seed_mean(part) for value, part in per_run.groupby(_column(per_run, group["best_over"]))}
        pick = min if group.get("best", "min") == "min" else max
        best = pick(stats, key=lambda v: stats[v][0])
        per_run = per_run[_matches(_column(per_run, group["best_over"]), best)]
    if by is None:
        return {None: seed_mean(per_run)}
    keys = pd.to_numeric(_column(per_run, by), errors="coerce")
    return {key: seed_mean(part) for key, part in per_run.groupby(keys)}


def fmt(stats, digits=3):
    mean, se, _ = stats
    text = f"{mean:.{digits}g}" if abs(mean) >= 1e4 else f"{mean:.{digits}f}"
    return text + ("" if math.isnan(se) else f" ± {se:.{digits}f}" if abs(mean) < 1e4 else f" ± {se:.2g}")


def _fewest(*stat_dicts):
    return min(s[2] for stats in stat_dicts for s in stats.values())


def check_value(records, check, metric, claim):
    stats = group_stats(records, check["group"], metric)
    mean = stats[None][0]
    tolerance = check.get("tolerance", abs(claim["value"]) * check.get("rel_tolerance", 0))
    holds = abs(mean - claim["value"]) <= tolerance + EPS * max(1.0, abs(claim["value"]))
    return holds, f"{fmt(stats[None])} (paper {claim['value']} ± {tolerance:g})", _fewest(stats)


def check_difference(records, check, metric, claim):
    a, b = group_stats(records, check["a"], metric), group_stats(records, check["b"], metric)
    diff = a[None][0] - b[None][0]
    holds = abs(diff - claim["value"]) <= check["tolerance"] + EPS
    return holds, f"a - b = {diff:.3f} (a {fmt(a[None])}, b {fmt(b[None])})", _fewest(a, b)


EPS = 1e-9   # floating-point slack for boundaries ("within 0.5" includes 0.5)
COMPARE = {
    "within": lambda d, m: abs(d) <= m + EPS,
    "greater": lambda d, m: d > m,
    "less": lambda d, m: d < -m,
    "at_least": lambda d, m: d >= -m - EPS,
}


def check_compare(records, check, metric, claim):
    a, b = group_stats(records, check["a"], metric), group_stats(records, check["b"], metric)
    diff = a[None][0] - b[None][0]
    holds = COMPARE[check["op"]](diff, check.get("margin", 0.0))
    return holds, f"a {fmt(a[None])}, b {fmt(b[None])}, a - b = {diff:+.3f}", _fewest(a, b)


def check_monotone(records, check, metric, claim):
    stats = group_stats(records, check["group"], metric, check["by"])
    values = {k: s[0] for k, s in stats.items()}
    fewest = _fewest(stats)
    if "minus" in check:
        other = group_stats(records, check["minus"], metric, check["by"])
        values = {k: v - other[k][0] for k, v in values.items() if k in other}
        fewest = min(fewest, _fewest(other))
    if len(values) < 2:
        raise NotRun(f"fewer than two values of {check['by']}")
    ordered = [values[k] for k in sorted(values)]
    steps = [b - a for a, b in zip(ordered, ordered[1:])]
    holds = all(s > 0 for s in steps) if check["order"] == "increasing" else all(s < 0 for s in steps)
    shown = ", ".join(f"{k:g}: {values[k]:.3f}" for k in sorted(values))
    return holds, f"by {check['by']}: {shown}", fewest


def check_spread(records, check, metric, claim):
    stats = group_stats(records, check["group"], metric, check["by"])
    if len(stats) < 2:
        raise NotRun(f"fewer than two values of {check['by']}")
    means = [s[0] for s in stats.values()]
    spread = max(means) - min(means)
    shown = ", ".join(f"{k:g}: {stats[k][0]:.3f}" for k in sorted(stats))
    return spread <= check["max"] + EPS, f"spread {spread:.3f} (max {check['max']:g}); {shown}", _fewest(stats)


def check_tradeoff(records, check, metric, claim):
    a = group_stats(records, check["a"], metric, check["by"])
    b = group_stats(records, check["b"], metric)[None]
    a_cost = group_stats(records, check["a"], check["cost"], check["by"])
    b_cost = group_stats(records, check["b"], check["cost"])[None]
    good = [k for k in a if a[k][0] >= b[0] - check["tolerance"] - EPS and a_cost[k][0] > 0]
    ratios = {k: b_cost[0] / a_cost[k][0] for k in good}
    best = max(ratios, key=ratios.get) if ratios else None
    holds = best is not None and ratios[best] >= check["min_ratio"] * (1 - EPS)
    shown = (f"best: {check['by']}={best:g}, {metric} {a[best][0]:.3f} vs {b[0]:.3f}, {ratios[best]:.0f}x fewer"
             if best is not None else f"no {check['by']} within {check['tolerance']} of {b[0]:.3f}")
    return holds, shown, min(_fewest(a), b[2])


CHECKS = {"value": check_value, "difference": check_difference, "compare": check_compare,
          "monotone": check_monotone, "spread": check_spread, "tradeoff": check_tradeoff}


def evaluate(claim, data):
    """data: the registry.FigureData of the claim's figure at one scale. A paper-scale number
    at another scale is n/a; the value the logs give there is still shown, marked as such."""
    applicable = data.scale in claim.get("scales", ["mini", "paper"])
    not_applicable = "paper-scale number: not comparable at this scale"
    if data.records.empty:
        return Outcome(NOT_RUN, data.problem or "no finished run") if applicable else \
            Outcome(NOT_APPLICABLE, not_applicable)
    check = claim["check"]
    metric = check.get("metric", claim.get("metric"))
    try:
        holds, shown, seeds = CHECKS[check["kind"]](data.records, check, metric, claim)
    except NotRun as reason:
        return Outcome(NOT_RUN, str(reason)) if applicable else Outcome(NOT_APPLICABLE, not_applicable)
    if seeds < 3:
        shown += f" [FEWER THAN 3 SEEDS: {seeds}]"
    if not applicable:
        return Outcome(NOT_APPLICABLE, f"{data.scale.upper()} value {shown.split(' (paper')[0]}; {not_applicable}", seeds)
    return Outcome(HOLDS if holds else FAILS, shown, seeds)
