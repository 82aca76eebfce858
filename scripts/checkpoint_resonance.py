#!/usr/bin/env python
"""Diagnose the checkpoint-exchange resonance (docs/checkpoint-collapse.md) on the real engine.

Codistillation with checkpoint exchange pulls each model towards a stale copy of its peer. With
SGD momentum the pull overshoots: when the exchange period T is near half the period of the
momentum oscillation, each model ends a period past the teacher it was chasing, so the gap
between the two models flips sign at every exchange and grows, until top-1 collapses.

This script runs one job with the engine (local launcher, forked ranks) and, at every exchange,
records on a fixed probe set (the first 512 validation inputs) for each model:
  gap:  RMS over probe logits of f_own - f_peer, both at the exchange's update s;
  cos:  cosine between this gap vector and the previous exchange's (-1: the models swapped);
  r:    the share of the previous gap to its stale teacher that the model still has, i.e.
        <f_own(s) - f_peer(s-T), f_own(s-T) - f_peer(s-T)> / |f_own(s-T) - f_peer(s-T)|^2
        (1: did not move, 0: reached the teacher, < 0: overshot past it).
Then it prints one row per exchange, the validation top-1 per epoch, and a verdict.

    python scripts/checkpoint_resonance.py method.period=18 seed=0
    python scripts/checkpoint_resonance.py method.period=18 seed=0 schedule.epochs=18 \
        'schedule.lr.milestones=[]' 'schedule.weight_decay.values=[1e-4]' 'schedule.weight_decay.milestones=[]'
    python scripts/checkpoint_resonance.py --figure docs/checkpoint-collapse.png   # the doc's evidence

Overrides are the entry point's; the job is 2-way codistillation with checkpoint exchange, the
codistill_tuned schedule and the digits workload unless overridden (e.g. workload=clusters_resnet).
Results go to a temporary folder unless results_root= is given. `growth_per_exchange` is the linear model of the doc.
"""
import argparse
import copy
import json
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from codistill.internals import CheckpointExchange, teacher_mode  # noqa: E402

BASE = ["method=codistill", "schedule=codistill_tuned", "method.exchange=checkpoints", "launcher=local",
        "workload=digits_mlp"]  # the collapse's workload; workload=... on the command line replaces it
PROBE_SIZE = 512
GAPS_FILE = "exchange-gaps-rank{rank}.jsonl"


# ---- the linear model ---------------------------------------------------------------------------

def period_map(h, period, momentum):
    """One exchange period of the antisymmetric mode d = z_A - z_B of two students, each pulled
    towards the other's copy from the period's start with stiffness h (lr x curvature of the
    distillation term along the mode) by PyTorch's heavy-ball SGD (buf = m buf + g; z -= lr buf).
    With w = lr x (buf_A - buf_B): w <- m w + h (d + d_start); d <- d - w. Returns the 2x2 matrix
    mapping (d, w) at one exchange to (d, w) at the next."""
    columns = []
    for d, w in ((1.0, 0.0), (0.0, 1.0)):
        start = d
        for _ in range(period):
            w = momentum * w + h * (d + start)
            d = d - w
        columns.append((d, w))
    return np.array(columns).T


def growth_per_exchange(h, period, momentum):
    """Spectral radius of period_map: > 1 means the gap between the models grows every exchange."""
    return float(max(abs(np.linalg.eigvals(period_map(h, period, momentum)))))


# ---- the probe on the real engine ---------------------------------------------------------------

def _probe_logits(module, inputs):
    """Logits of a copy of `module` run as teachers run (codistill.internals.teacher_mode): the run's model,
    its BN statistics and the global RNG are left untouched."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        return teacher_mode(copy.deepcopy(module))(inputs).float()


def _gap_records(exchange, step, own, before, after):
    """One record per teacher: the gap at this exchange (and its offset, the part common to all
    classes of a sample, which softmax ignores), the RMS of the model's own logits and, from the
    second exchange on, cos and r.
    Logits are [probe samples, classes]."""
    previous = getattr(exchange, "_probe_previous", None)
    for index, (stale, fresh) in enumerate(zip(before, after)):
        gap = own - fresh
        record = {"step": step, "model": exchange.group_index, "teacher": index,
                  "gap": gap.pow(2).mean().sqrt().item(), "offset": gap.mean(-1).pow(2).mean().sqrt().item(),
                  "own_rms": own.pow(2).mean().sqrt().item()}
        if previous is not None:
            previous_own, previous_gap = previous[0], previous[1][index]
            chased = (previous_own - stale).flatten()
            record["cos"] = torch.nn.functional.cosine_similarity(gap.flatten(), previous_gap.flatten(), dim=0).item()
            record["r"] = ((own - stale).flatten() @ chased / (chased @ chased)).item()
        yield record
    exchange._probe_previous = (own, [own - fresh for fresh in after])


@contextmanager
def gap_probe(probe_inputs, directory):
    """While active, every CheckpointExchange appends its gap records at each exchange to
    directory/exchange-gaps-rank<r>.jsonl (ranks forked inside the block inherit the probe)."""
    original = CheckpointExchange.refresh

    def probed(self, step, model):
        if not self.is_due(step):
            return original(self, step, model)
        inputs_probe = probe_inputs.to(next(model.parameters()).device)
        own = _probe_logits(model, inputs_probe)
        before = [_probe_logits(t, inputs_probe) for t in self.teachers]
        result = original(self, step, model)
        after = [_probe_logits(t, inputs_probe) for t in self.teachers]
        rank = torch.distributed.get_rank()
        with open(Path(directory) / GAPS_FILE.format(rank=rank), "a") as handle:
            for record in _gap_records(self, step, own, before, after):
                handle.write(json.dumps({**record, "rank": rank}) + "\n")
        return result

    CheckpointExchange.refresh = probed
    try:
        yield
    finally:
        CheckpointExchange.refresh = original


def compose(overrides, results_root):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from codistill_experiments.config import validate

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "src" / "conf"), version_base="1.3"):
        given = {override.split("=", 1)[0] for override in overrides}
        base = [override for override in BASE if override.split("=", 1)[0] not in given]
        cfg = hydra_compose("codistill", overrides=[*base, *overrides, f"results_root={results_root}"])
    return validate(cfg)


def run_probed(container):
    """Runs the composed job with the probe (unless its run directory holds a finished probed run,
    which is read again); returns (exchanges, evals) as DataFrames."""
    from omegaconf import OmegaConf

    from codistill_experiments.launch import launch
    from codistill_experiments.runlog import is_finished, read_records, run_dir
    from codistill_experiments.workloads import build_workload

    directory = run_dir(container)
    if not (is_finished(directory) and any(directory.glob("exchange-gaps-*"))):
        directory.mkdir(parents=True, exist_ok=True)
        probe = build_workload(OmegaConf.create(container["workload"])).val_set.inputs[:PROBE_SIZE]
        with gap_probe(probe, directory):
            launch(container, directory)
    exchanges = pd.concat([pd.read_json(path, lines=True) for path in sorted(directory.glob("exchange-gaps-*"))])
    records = read_records(directory / "metrics.jsonl")
    evals = pd.DataFrame([r for r in records if r.get("kind") == "eval"])
    return exchanges.sort_values(["step", "model"]).reset_index(drop=True), evals


def swap_growth(exchanges, max_cos=-0.5):
    """How much the gap of model 0 to its first teacher grows while the models keep swapping:
    over each run of consecutive exchanges with cos <= max_cos (the gap flipped sign), the largest
    ratio of a gap to the smallest gap since the exchange before the run. About 1 when swapping
    does not feed on itself; 18.7 at T = 18 on mini digits, 4-5 at T = 9 and 37 (the doc)."""
    own = exchanges[(exchanges.model == 0) & (exchanges.teacher == 0)].sort_values("step").reset_index(drop=True)
    swapped = own.cos <= max_cos
    growth = 1.0
    for _, run in own[swapped].groupby((~swapped).cumsum()[swapped]):
        gaps = own.gap.loc[max(run.index[0] - 1, 0):run.index[-1]]
        growth = max(growth, (gaps / gaps.cummin()).max())
    return float(growth)


COLLAPSE_PRONE = 10.0  # swap_growth above which a job is flagged (between 4.6 and 18.7 on digits)


def summary(exchanges, evals):
    own = exchanges[(exchanges.model == 0) & (exchanges.teacher == 0)]
    worst = evals.groupby("epoch").val_top1.min()
    return {"max_gap": own.gap.max(), "first_gap": own.gap.iloc[0], "max_offset": own.offset.max(), "median_cos": own.cos.median(),
            "min_r": own.r.min(), "min_top1": worst.min(), "final_top1": worst.iloc[-1],
            "max_distill": evals.train_distill_loss.max(), "swap_growth": swap_growth(exchanges),
            "collapse_prone": swap_growth(exchanges) >= COLLAPSE_PRONE}


def print_run(exchanges, evals, steps_per_epoch):
    own = exchanges[(exchanges.model == 0) & (exchanges.teacher == 0)].copy()
    own["epoch"] = own.step / steps_per_epoch
    own["growth"] = own.gap / own.gap.shift()
    print(own[["step", "epoch", "gap", "offset", "growth", "cos", "r"]].to_string(index=False, float_format="%.3f"))
    top1 = evals.pivot_table(index="epoch", columns="model", values="val_top1")
    print("val top-1 per epoch (model 0, model 1):")
    print(" ".join(f"{a:.0f}/{b:.0f}" for a, b in top1.itertuples(index=False)))
    print(json.dumps(summary(exchanges, evals), default=float))


# ---- the doc's figure ---------------------------------------------------------------------------

FIGURE_JOBS = {  # label -> overrides (seed 0, the full 45 epochs of the sweeps' recipe)
    "T = 9": ["method.period=9"],
    "T = 18": ["method.period=18"],
    "T = 37": ["method.period=37"],
    "T = 18, no momentum, LR x 10": ["method.period=18", "schedule.momentum=0", "schedule.lr.base=1.0"],
}
MODEL_H = (0.006, 0.03, 0.1)  # stiffnesses drawn in the linear-model panel


def figure(path, results_root):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (gaps_ax, top1_ax, model_ax) = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    rows = []
    for label, overrides in FIGURE_JOBS.items():
        container = compose([*overrides, "seed=0"], results_root)
        exchanges, evals = run_probed(container)
        steps_per_epoch = evals.step.iloc[0] / evals.epoch.iloc[0]
        own = exchanges[(exchanges.model == 0) & (exchanges.teacher == 0)]
        gaps_ax.plot(own.step / steps_per_epoch, own.gap, label=label)
        top1 = evals.groupby("epoch").val_top1.min()
        top1_ax.plot(top1.index, top1.values, label=label)
        rows.append({"job": label, **summary(exchanges, evals)})
    gaps_ax.set(yscale="log", xlabel="epoch", ylabel="RMS logit gap between the models",
                title="gap at each exchange (seed 0)")
    gaps_ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    gaps_ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    gaps_ax.set_yticks([0.2, 0.5, 1, 2, 5])
    top1_ax.set(xlabel="epoch", ylabel="val top-1 of the worse model (%)", title="validation top-1")
    fig.legend(*top1_ax.get_legend_handles_labels(), loc="outside lower center", ncols=len(FIGURE_JOBS), fontsize=8)
    periods = np.arange(1, 61)
    for h in MODEL_H:
        model_ax.plot(periods, [growth_per_exchange(h, T, 0.9) for T in periods], label=f"h = {h}, m = 0.9")
    model_ax.plot(periods, [growth_per_exchange(0.3, T, 0.0) for T in periods], "--", label="h = 0.3, m = 0")
    model_ax.axhline(1.0, color="grey", linewidth=0.8)
    model_ax.set(xlabel="exchange period T (updates)", ylabel="gap growth per exchange",
                 title="linear model (heavy-ball SGD)")
    model_ax.legend(fontsize=7)
    fig.suptitle("Mini scale (digits), 2-way codistillation with checkpoint exchange: not the paper's numbers",
                 fontsize=9)
    fig.savefig(path, dpi=110)
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".2f"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figure", help="run the doc's jobs and draw its figure here")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    given_root = [o.split("=", 1)[1] for o in args.overrides if o.startswith("results_root=")]
    results_root = given_root[0] if given_root else tempfile.mkdtemp(prefix="checkpoint-resonance-")
    overrides = [o for o in args.overrides if not o.startswith("results_root=")]
    if args.figure:
        return figure(args.figure, results_root)
    exchanges, evals = run_probed(compose(overrides, results_root))
    print_run(exchanges, evals, evals.step.iloc[0] / evals.epoch.iloc[0])


if __name__ == "__main__":
    main()
