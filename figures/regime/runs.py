"""What the regime check reads and how it summarises it: a sweep's finished records and run status,
one row per finished run at its last evaluation, each run's workload as the engine builds it, the
mean and standard error over seeds, the chosen weight-decay multiplier, and the Check each
invariant returns (figures/regime/check.py runs the check)."""
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from codistill_experiments.workloads import build_workload

from ..logs import collect, run_logs
from ..logs.manifests import ManifestMissing

SCALE = "mini"


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
    needs: tuple = ()   # sweeps whose missing or unfinished runs the check waits for


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
    except ManifestMissing as error:
        return Sweep(sweep_id, pd.DataFrame(), pd.DataFrame(), problem=f"{sweep_id}: {error}")
    return Sweep(sweep_id, records, status)


ABOUT = ("seed", "setting", "cfg.workload.name", "cfg.workload.task", "cfg.method.name", "cfg.schedule.name",
         "cfg.workload.weight_decay_scale")
METRICS = ("train_loss", "val_loss", "val_top1", "val_top1_mean_over_models", "ensemble_top1", "val_samples",
           "val_nll", "batch_per_model")


def final_rows(records):
    """One row per finished run: its metrics at its last evaluation (mean over its models), what
    it ran (workload, method, schedule) and its weight-decay multiplier (1 where its config sets none)."""
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
    return run_logs.read_log(Path(results) / "runs" / run_id).header["config"]


@cache
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
