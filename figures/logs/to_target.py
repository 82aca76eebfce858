"""Bits to reach a target, read from each run's curve (beyond the paper; MuLoCo's Fig. 1 reads its
methods the same way): the bits a device had sent between servers by the first evaluation at which
the run's metric reached the target. A method that sends few bits per update but learns slowly
pays for every update it needs; one that sends many may need few. The target is all_reduce's
final metric (its mean over seeds), or a share of it (99 %).

Read at evaluations: a run evaluated every E updates reaches the target at the first evaluation at
or above it, so its bits overstate the exact crossing by at most E updates' bits (`resolution`
says how many). A setting's value is read from its seed-mean curve (the metric averaged over seeds
at each evaluation; the bits of one update are the same in every seed), beside how many of its
seeds reach the target on their own curves."""
import math
from typing import NamedTuple

import pandas as pd

BITS = "comm_bits_inter_node"   # cumulative bits each device sent between servers (the engine's counter)
BITS_TO_TARGET = "bits_to_target"   # a fewest_bits check's cost read here, not from a logged column


class ToTarget(NamedTuple):
    """A setting's bits to the target: from its seed-mean curve (inf: never reached), the bits of
    the evaluations before and at the crossing (the crossing lies between them), and how many of
    its seeds reach it on their own curves."""
    bits: float
    bits_before: float
    step: float
    seeds_reaching: int
    seeds: int


def curves(records, metric, bits=BITS):
    """One row per (run, evaluation): the metric averaged over the run's models and the bits per
    device (the models' mean: every device of a symmetric method sends the same), by step."""
    rows = records[["run_id", "seed", "step", metric, bits]].dropna(subset=[metric, bits])
    return (rows.groupby(["run_id", "seed", "step"], as_index=False).agg(value=(metric, "mean"), bits=(bits, "mean"))
            .sort_values(["run_id", "step"], kind="stable"))


def first_reaching(curve, target):
    """(bits, bits at the evaluation before, step) at the first row of `curve` (sorted by step) whose
    value is >= target; (inf, last bits, nan) when none is."""
    reached = curve.index[curve["value"] >= target]
    if not len(reached):
        return math.inf, float(curve["bits"].iloc[-1]) if len(curve) else math.nan, math.nan
    position = curve.index.get_loc(reached[0])
    before = float(curve["bits"].iloc[position - 1]) if position > 0 else 0.0
    return float(curve.loc[reached[0], "bits"]), before, float(curve.loc[reached[0], "step"])


def to_target(records, metric, target, bits=BITS):
    """ToTarget of one setting's runs (`records`: the eval records of its seeds)."""
    per_eval = curves(records, metric, bits)
    if per_eval.empty:
        raise ValueError(f"no evaluation with {metric} and {bits} in these records")
    steps_per_run = per_eval.groupby("run_id")["step"].apply(tuple)
    if steps_per_run.nunique() > 1:
        raise ValueError("the seeds were evaluated at different steps: their curves cannot be averaged")
    mean_curve = per_eval.groupby("step", as_index=False).agg(value=("value", "mean"), bits=("bits", "mean"))
    value, before, step = first_reaching(mean_curve.reset_index(drop=True), target)
    reaching = sum(math.isfinite(first_reaching(run.reset_index(drop=True), target)[0])
                   for _, run in per_eval.groupby("run_id"))
    return ToTarget(value, before, step, reaching, per_eval["run_id"].nunique())


def text(result):
    """'1.23e+09 bits at update 40, > 8.1e+08 before (2 of 3 seeds reach it)' or 'not reached (0 of 3 seeds reach it)'."""
    seeds = f"{result.seeds_reaching} of {result.seeds} seeds reach it"
    if not math.isfinite(result.bits):
        return f"not reached ({seeds})"
    return f"{result.bits:.3g} bits at update {result.step:g}, > {result.bits_before:.3g} before ({seeds})"


def targets(final_mean, shares=(1.0, 0.99)):
    """{share: target}: all_reduce's final mean and the shares of it the frontier reads."""
    return {share: share * final_mean for share in shares}


def table(settings, metric, final_mean, shares=(1.0, 0.99), bits=BITS):
    """One row per labelled setting ({label: its eval records}): its bits to each target."""
    rows = []
    for label, records in settings.items():
        row = {"setting": label}
        for share, target in targets(final_mean, shares).items():
            row[f"to {share:.0%}"] = to_target(records, metric, target, bits)
        rows.append(row)
    return pd.DataFrame(rows)
