"""A claim's groups of runs and their final metric over seeds: which records a group names (config
keys or derived columns, a value, a list, or min / max), each run's final value of a metric with
its validation samples, and the mean and standard error over seeds (figures/claims/__init__.py says
how claims use them)."""
import contextlib
import contextvars
import json
import math
from typing import NamedTuple

import pandas as pd

RESERVED = {"best_over", "best", "metric"}   # not config keys: how a group is read
DERIVED = {"model_arch", "setup", "n_way", "gamma", "batch_per_model"}
DIGITS_SAMPLES = 1797    # scikit-learn's digits: validation = 1797 - workload.train_size
FULL_VALIDATION = {"imagenet_resnet50": 50_000, "cifar10_wrn": 10_000}


class NotRun(Exception):
    pass


class Stat(NamedTuple):
    """A group's final metric: mean and standard error over seeds, seeds, and the fewest
    validation samples among its runs (nan when the logs do not say)."""
    mean: float
    se: float
    seeds: int
    val_samples: float = float("nan")


def _column(records, key, null_if_absent=False):
    """A config key's (or derived column's) values; a config key that no run's config holds is null
    in every run when `null_if_absent` (a key added since, at its null default: runlog.DROPPED_AT_DEFAULT)."""
    if key in DERIVED or f"cfg.{key}" not in records.columns:
        if key not in records.columns:
            if null_if_absent and key not in DERIVED:
                return pd.Series(float("nan"), index=records.index)
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
            chosen &= _matches(_column(records, key, null_if_absent=wanted is None), wanted)
    for key, which in extremes.items():
        values = pd.to_numeric(_column(records, key), errors="coerce").where(chosen)
        if values.notna().any():
            chosen &= values == (values.max() if which == "max" else values.min())
    return records[chosen]


def config_val_samples(row):
    """Validation samples of a run from its workload config, for runs whose eval records do not
    carry val_samples; nan when the config does not say."""
    workload = row.get("cfg.workload.name")
    if pd.notna(row.get("cfg.workload.val_size", float("nan"))):
        return float(row["cfg.workload.val_size"])
    if workload == "digits_mlp" and pd.notna(row.get("cfg.workload.train_size", float("nan"))):
        return float(DIGITS_SAMPLES - row["cfg.workload.train_size"])
    return float(FULL_VALIDATION.get(workload, float("nan")))


def final_rows(records, metric):
    """The records at each run's last step that has `metric`: one per model of the run."""
    rows = records.dropna(subset=[metric])
    step = rows["step"].fillna(-1)
    return rows[step == step.groupby(rows["run_id"]).transform("max")]


def _canonical(value):
    """A config value as text, a number alike whether a column holds it as an integer or a float."""
    return f"{value:.12g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def config_keys(frame):
    """Each row's config but its seed, as one string: the runs of one setting (differing only in
    their seed) share it, whichever figure's records they are read from (a key a run does not have,
    empty where another figure's runs add the column, is left out)."""
    columns = sorted(c for c in frame.columns if c.startswith("cfg.") and c != "cfg.seed")
    keys = ["|".join(f"{c}={_canonical(v)}" for c, v in row.items()
                     if v is not None and not (isinstance(v, float) and math.isnan(v)))
            for row in frame[columns].to_dict("records")]
    return pd.Series(keys, index=frame.index, dtype=object)


def final_per_run(records, metric):
    """One value per run: `metric` at the run's last record that has it, averaged over the
    selected models, with the run's validation samples and config columns."""
    if metric not in records.columns:
        return pd.DataFrame(columns=["run_id", "seed", "value", "val_samples"])
    logged_samples = ["val_samples"] if "val_samples" in records.columns else []
    rows = final_rows(records, metric)[["run_id", "seed", "step", metric, *logged_samples]]
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


_MEMO = contextvars.ContextVar("group_stats_memo", default=None)


@contextlib.contextmanager
def stats_memoized():
    """Within the block, group_stats of the same records, group, metric and knob is computed once:
    a verdict re-decided at other levels (its p-value) reads the same means and standard errors."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


def group_stats(records, group, metric, by=None):
    """{by value (or None): Stat} of a group's final metric: the claim's, or the group's own
    `metric` (an ensemble's ensemble_val_loss beside single models' val_loss)."""
    memo = _MEMO.get()
    if memo is None:
        return _group_stats(records, group, metric, by)
    key = (id(records), json.dumps(group, sort_keys=True, default=str), metric, by)
    if key not in memo:
        try:
            memo[key] = _group_stats(records, group, metric, by)
        except NotRun as reason:
            memo[key] = reason
    if isinstance(memo[key], NotRun):
        raise memo[key]
    return memo[key]


def _group_stats(records, group, metric, by=None):
    metric = group.get("metric", metric)
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
    return {key: seed_mean(part) for key, part in per_run.groupby(setting_keys(per_run, by))}


def setting_keys(frame, by):
    """Each row's value of a group's knob `by` (a config key or derived column), as a number: the
    settings a group is split into (group_stats, to_target.bits_to_target)."""
    return pd.to_numeric(_column(frame, by), errors="coerce")


def fmt(stat, digits=3):
    mean, se = stat.mean, stat.se
    text = f"{mean:.{digits}g}" if abs(mean) >= 1e4 else f"{mean:.{digits}f}"
    return text + ("" if math.isnan(se) else f" ± {se:.{digits}f}" if abs(mean) < 1e4 else f" ± {se:.2g}")



def fewest_seeds(*stat_dicts):
    return min(s.seeds for stats in stat_dicts for s in stats.values())
