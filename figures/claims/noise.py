"""The noise of a difference between means over seeds, what one validation sample and one seed are
worth for each workload (Resolution), and the margins of mini-scale claims in those units: the
numbers the verdict rule (rule.py, at its level ALPHA) judges.

A difference d of means over a few seeds has the noise: the one-sided (1 - ALPHA) quantile of
Student's t at the Welch-Satterthwaite degrees of freedom times its combined standard error, plus
one validation sample (the resolution of a top-1 metric)."""
import math
from dataclasses import dataclass

import pandas as pd
from scipy.stats import t as student_t

from .groups import config_keys, final_per_run
from .rule import SEEDS, level

TOP1_METRICS = {"val_top1", "val_top1_mean_over_models", "ensemble_top1"}


@dataclass(frozen=True)
class Noise:
    """The noise of a difference: Welch's t quantile x its standard error, plus one validation sample."""
    se: float            # combined standard error over seeds of the difference
    sample: float        # one validation sample in the metric's units (0 where it has none)
    df: float = math.inf  # Welch-Satterthwaite degrees of freedom of that standard error

    @property
    def quantile(self):
        """The one-sided (1 - ALPHA) quantile of Student's t at df (at rule.level())."""
        return float(student_t.ppf(1 - level(), self.df)) if self.df > 0 else math.nan

    @property
    def width(self):
        if self.se == 0:   # every seed gave the same value: nothing but the resolution
            return self.sample
        return self.quantile * self.se + self.sample

    def text(self):
        if math.isnan(self.se):
            return "noise unknown (one seed)"
        sample = f" + 1 sample {self.sample:.3f}" if self.sample else ""
        if self.se == 0:
            return f"noise {self.width:.3f} = s.e. 0{sample}"
        return (f"noise {self.width:.3f} = t {self.quantile:.2f} (df {self.df:.1f}) x s.e. {self.se:.3f}"
                f" = {self.quantile * self.se:.3f}{sample}")


def welch_df(weighted):
    """Welch-Satterthwaite degrees of freedom of sum(weight x mean) over (weight, Stat) pairs."""
    parts = [((w * s.se) ** 2, s.seeds - 1) for w, s in weighted]
    if any(df < 1 for _, df in parts):
        return math.nan
    denominator = sum(v * v / df for v, df in parts)
    return sum(v for v, _ in parts) ** 2 / denominator if denominator > 0 else math.inf


def one_sample(metric, *stats):
    """One validation sample in points of a top-1 metric (the fewest samples of the groups);
    0 for other metrics and where the logs do not say."""
    samples = [s.val_samples for s in stats if not math.isnan(s.val_samples)]
    return 100.0 / min(samples) if metric in TOP1_METRICS and samples else 0.0


def noise_of(metric, *weighted):
    """Noise of sum(weight x mean) over (weight, Stat) pairs."""
    se = math.sqrt(sum((w * s.se) ** 2 for w, s in weighted))
    return Noise(se, one_sample(metric, *(s for _, s in weighted)), welch_df(weighted))


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
        self._finals, self._seed_se = {}, {}

    def finals(self, metric):
        """final_per_run of every run, with `setting`: its config without the seed."""
        if metric not in self._finals:
            per_run = final_per_run(self.records, metric) if not self.records.empty else pd.DataFrame()
            if not per_run.empty:
                per_run["setting"] = config_keys(per_run)
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
        """(median over the workload's settings with >= 2 seeds of the s.e. of a mean over SEEDS
        seeds of the final metric, number of such settings). The unit of a mini margin is the
        paper's: a mean over its three seeds. A setting run at more seeds (a power analysis
        asked for them) estimates its spread better but does not narrow the unit, so that the
        margins do not shrink as seeds are added."""
        if (workload, metric) not in self._seed_se:
            per_run = self.finals(metric)
            if per_run.empty:
                return float("nan"), 0
            mine = per_run[per_run["cfg.workload.name"] == workload]
            ses = [runs["value"].std(ddof=1) / math.sqrt(SEEDS) for _, runs in mine.groupby("setting")
                   if len(runs) > 1]
            self._seed_se[(workload, metric)] = (float(pd.Series(ses).median()) if ses else float("nan")), len(ses)
        return self._seed_se[(workload, metric)]

    def median_final(self, workload, metric):
        """The median over the workload's runs of the metric's final value (nan without runs)."""
        per_run = self.finals(metric)
        if per_run.empty:
            return float("nan")
        return float(per_run.loc[per_run["cfg.workload.name"] == workload, "value"].median())


def margin_for(check, key, context, records, metric):
    """(margin, how it was set): the paper's at paper scale. At mini scale, for a loss
    (mini_margin_of: the paper's value of that loss), the paper's margin as the same share of the
    mini workload's median final loss; otherwise mini_margin_se x the workload's seed s.e. Either
    takes the largest over the workloads of the figure's runs. A workload that none of the
    resolution's figures runs (one only the experiments beyond the paper train: the language-model
    frontier's) takes its seed s.e. from this figure's own runs."""
    workloads = sorted(records["cfg.workload.name"].dropna().unique()) if "cfg.workload.name" in records else []
    if context.scale == "mini" and "mini_margin_of" in check:
        share = check[key] / check["mini_margin_of"]
        typical = max((context.resolution.median_final(w, metric) for w in workloads), default=float("nan"))
        return share * typical, (f"{share:.1%} of the final {metric} as at paper scale ({check[key]:g} of "
                                 f"{check['mini_margin_of']:g}) = {share * typical:.3f}")
    if context.scale != "mini" or "mini_margin_se" not in check:
        value = check.get(key, 0.0)
        return value, f"{value:g}"
    ses = [context.resolution.seed_se(w, metric)[0] for w in workloads]
    if any(math.isnan(se) for se in ses):
        own = Resolution([records])
        ses = [own.seed_se(w, metric)[0] if math.isnan(se) else se for w, se in zip(workloads, ses)]
    se = max(ses) if ses else float("nan")
    k = check["mini_margin_se"]
    return k * se, f"{k:g} seed s.e. = {k * se:.3f}"


@dataclass
class Context:
    scale: str
    resolution: Resolution
