#!/usr/bin/env python
"""The checkpoint-exchange collapse in a practitioner's own loop, through the public API alone.

A model and its data (--workload, WORKLOADS below; nothing is downloaded), SGD with OneCycleLR,
two models x one rank each on real torch.distributed gloo processes (mp.spawn), peers drawing the
same batches, `Codistiller(model, layout, exchange="checkpoints", period=T, alpha=a)` added to the
cross-entropy. Mini scale: these are not the paper's numbers. The workloads:
  digits_cnn       (default) a small CNN on scikit-learn's 8x8 digits, batch 32, 10 epochs
  digits_mlp       the experiments' digits stand-in (src/conf/workload/digits_mlp.yaml: the
                   residual MLP 64-256-256-10 on standardised pixels), batch 32, 10 epochs
  clusters_resnet  the experiments' vision stand-in (src/conf/workload/clusters_resnet.yaml:
                   the mini ResNet with batch norm on 100 classes of generated clusters),
                   batch 256, 2 epochs
The two stand-ins are built by the experiments' own workload code from their committed configs;
the loop around them is this script's, the same for all three.

At every exchange (at most every 10 updates: T = 1 and 5 every 10th) it logs, on the held-out
samples (at most PROBE of them; the model in eval mode, its teacher as the library runs it), for
model 0 against its teacher (model 1 as of that update):
  gap        RMS of the logit difference between the two models
  cos, r     cosine of the gap with the previous exchange's (-1: the models swapped sides), and the
             share of its previous gap to the stale teacher that the model still has (1: did not
             move, 0: reached it, < 0: overshot past it); from the second exchange on, T >= 10
  d_fresh    the distillation term D of the training batch at the exchange (fresh teacher)
  d_stale    D of the update before (the stale teacher at the end of the period)
  g_ce, g_kd the RMS gradient of the cross-entropy and of alpha x D with respect to the logits
  top1_0/1   each model's held-out top-1; rms_0/1 their logits' RMS; dead the share of model 0's
             classifier inputs (its last hidden units) that are zero on every held-out sample
and per run the summary (final / lowest top-1 of the worse model, largest gap, whether the library
warned, `CollapseWarning`, and at which update).

    python scripts/library_collapse.py --period 10 --alpha 1 --momentum 0.9 --seed 0   # one run, its table
    python scripts/library_collapse.py --grid --out docs/library-collapse --raw /tmp/raw.jsonl   # the docs' grid
    python scripts/library_collapse.py --workload clusters_resnet --grid --out docs/library-collapse-clusters_resnet
    python scripts/library_collapse.py --analyse /tmp/raw.jsonl   # the numbers of the docs' explanation

docs/library.md ("Choosing alpha and period (measured)") and docs/checkpoint-collapse.md (the
practitioner's-loop section) report what it measured.
"""
import argparse
import json
import math
import os
import socket
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from codistill import Codistiller, Layout, make_process_groups

HELD_OUT = 360
PROBE = 1000   # held-out samples the per-exchange probe reads (the final top-1 reads them all)
DEFAULTS = {"workload": "digits_cnn", "max_lr": 0.1, "epochs": 10, "batch": 32, "weight_decay": 5e-4,
            "cycle_momentum": False}


class SmallCNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                  nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(32 * 4 * 4, 64), nn.ReLU())
        self.out = nn.Linear(64, classes)

    def forward(self, x):
        return self.out(self.hidden(self.conv(x)))


def digits():
    """(train x, train y, held-out x, held-out y): sklearn's 1797 digits, 8x8 in [0, 1], a fixed split."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[HELD_OUT:], y[HELD_OUT:], x[:HELD_OUT], y[:HELD_OUT]


def experiments_workload(name):
    """(train x, train y, held-out x, held-out y, make_model(seed)) of the experiments' workload
    `name`, built by their own code from the committed config src/conf/workload/<name>.yaml."""
    from omegaconf import OmegaConf

    from codistill_experiments import workloads  # digits_mlp, clusters_resnet

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "src" / "conf" / "workload" / f"{name}.yaml")
    cfg.pop("defaults")
    built = getattr(workloads, name)(cfg)          # the builder of that name: digits_mlp, clusters_resnet
    # make_model(seed) seeds torch itself: given the seed train() set, each model its own initialisation
    return (built.train_set.inputs, built.train_set.targets, built.val_set.inputs, built.val_set.targets,
            lambda: built.make_model(torch.initial_seed()))


# Per workload: its data and model (train x, train y, held-out x, held-out y, make_model()), the
# module whose input is the last hidden layer (dead units), the loop's batch and epochs, the grid's
# optimizer settings (momentum, max_lr), periods, alphas and seeds, the final top-1 under which
# a run counts as collapsed / at or above which a model counts as healthy, and its classes.
WORKLOADS = {
    "digits_cnn": {"load": lambda: (*digits(), SmallCNN), "classifier": lambda model: model.out,
                   "batch": 32, "epochs": 10, "collapsed_below": 50, "healthy_from": 90, "classes": 10},
    "digits_mlp": {"load": lambda: experiments_workload("digits_mlp"), "classifier": lambda model: model.layers[-1],
                   "batch": 32, "epochs": 10, "settings": ((0.9, 0.1), (0.9, 0.03)), "periods": (1, 10, 50),
                   "alphas": (0.1, 0.3, 1.0, 3.0), "seeds": (0, 1), "collapsed_below": 50, "healthy_from": 90,
                   "classes": 10},
    "clusters_resnet": {"load": lambda: experiments_workload("clusters_resnet"),
                        "classifier": lambda model: model.classifier, "batch": 256, "epochs": 2,
                        "settings": ((0.9, 0.1), (0.9, 0.03)), "periods": (1, 10, 50), "alphas": (0.3, 1.0, 3.0, 10.0),
                        "seeds": (0, 1), "collapsed_below": 40, "healthy_from": 70, "classes": 100},
}


def workload_of(config):
    return WORKLOADS[config.get("workload", "digits_cnn")]


def _rms(t):
    return t.pow(2).mean().sqrt().item()


def train(config, layout, groups, data):
    """One run on this rank (both ranks call it with the same config); returns (exchange records
    of this rank, summary of this rank)."""
    x_train, y_train, x_val, y_val, make_model = data
    period, alpha, momentum, seed = config["period"], config["alpha"], config["momentum"], config["seed"]
    torch.manual_seed(1000 * seed + layout.group_index)          # each model its own initialisation
    model = make_model()
    classifier = workload_of(config)["classifier"](model)
    steps_per_epoch = len(y_train) // config["batch"]
    total = config["epochs"] * steps_per_epoch
    optimizer = torch.optim.SGD(model.parameters(), lr=config["max_lr"], momentum=momentum,
                                weight_decay=config["weight_decay"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config["max_lr"], total_steps=total,
                                                   cycle_momentum=config["cycle_momentum"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        codistiller = Codistiller(model, layout, exchange="checkpoints", period=period, alpha=alpha, groups=groups)
        log_every = period * math.ceil(10 / period)            # every exchange, at most every 10 updates
        batches = torch.Generator().manual_seed(seed)          # peers draw the same batches
        records, previous, d_series, ce_series, grad_norms, warned_at = [], None, [], [], [], None
        own_ms, spread, dead_series, dead_now = [], [], [], [0.0]
        classifier.register_forward_pre_hook(
            lambda module, args: dead_now.__setitem__(0, (args[0].detach().amax(0) <= 0).float().mean().item()))
        started = time.perf_counter()
        for step in range(total):
            if step % steps_per_epoch == 0:
                order = torch.randperm(len(y_train), generator=batches)
            index = order[(step % steps_per_epoch) * config["batch"]:(step % steps_per_epoch + 1) * config["batch"]]
            x, y = x_train[index], y_train[index]
            logits = model(x)
            ce = F.cross_entropy(logits, y)
            distill = codistiller.loss(step, x, logits)
            d_series.append(distill.item() / alpha if alpha else 0.0)
            ce_series.append(ce.item())
            own_ms.append(logits.detach().pow(2).mean().item())
            spread.append(logits.detach().var(dim=0, unbiased=False).mean().item())   # what CollapseGuard reads
            dead_series.append(dead_now[0])
            if warned_at is None and any(w.category.__name__ == "CollapseWarning" for w in caught):
                warned_at = step
            if step % log_every == 0:
                g_ce = torch.autograd.grad(ce, logits, retain_graph=True)[0]
                g_kd = (torch.autograd.grad(distill, logits, retain_graph=True)[0] if distill.requires_grad
                        else torch.zeros_like(logits))
                record, previous = _probe(model, classifier, codistiller.teachers[0], x_val[:PROBE],
                                          y_val[:PROBE], previous, with_r=log_every == period)
                record.update(step=step, epoch=step / steps_per_epoch, lr=schedule.get_last_lr()[0],
                              d_fresh=d_series[-1], d_stale=d_series[-2] if step else float("nan"),
                              ce=sum(ce_series[-log_every:]) / len(ce_series[-log_every:]),
                              g_ce=_rms(g_ce), g_kd=_rms(g_kd),
                              momentum_now=optimizer.param_groups[0]["momentum"],
                              teacher_ms=(_as_teacher(codistiller.teachers[0], x).pow(2).mean().item() if step
                                          else float("nan")))
                records.append(record)
            optimizer.zero_grad(set_to_none=True)
            (ce + distill).backward()
            grad_norms.append(torch.nn.utils.get_total_norm([q.grad for q in model.parameters()]).item())
            optimizer.step()
            schedule.step()
        seconds = time.perf_counter() - started
    final = _evaluate(model, x_val).argmax(-1)
    per_step = {"d": d_series, "ce": ce_series, "grad_norm": grad_norms, "own_ms": own_ms, "spread": spread,
                "dead": dead_series}
    summary = {"rank": layout.group_index, "per_step": per_step,
               "final_top1": 100 * (final == y_val).float().mean().item(),
               "top_class_share": 100 * final.bincount().max().item() / len(final),
               "warned_at": warned_at, "seconds": seconds, "steps": total,
               "warning": next((str(w.message) for w in caught if w.category.__name__ == "CollapseWarning"), None)}
    return records, summary


def _evaluate(model, x):
    """The model's logits in eval mode (batch norm on its running statistics, not updated), its
    mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(x)
    finally:
        model.train(was_training)


def _as_teacher(teacher, x):
    """The teacher's logits as the library runs it (its mode untouched: batch norms on the batch's
    statistics, since running statistics do not travel with a checkpoint)."""
    with torch.no_grad():
        return teacher(x)


def _probe(model, classifier, teacher, x_val, y_val, previous, with_r):
    seen = []
    hook = classifier.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        own = _evaluate(model, x_val)
    finally:
        hook.remove()
    hidden = seen[-1]
    peer = _as_teacher(teacher, x_val)
    gap = own - peer
    record = {"gap": _rms(gap), "offset": _rms(gap.mean(-1)), "rms_0": _rms(own), "rms_1": _rms(peer),
              "top1_0": 100 * (own.argmax(-1) == y_val).float().mean().item(),
              "top1_1": 100 * (peer.argmax(-1) == y_val).float().mean().item(),
              "dead": 100 * (hidden.amax(0) <= 0).float().mean().item()}
    if previous is not None and with_r:
        previous_own, previous_peer = previous
        chased = (previous_own - previous_peer).flatten()
        record["cos"] = F.cosine_similarity(gap.flatten(), chased, dim=0).item()
        record["r"] = ((own - previous_peer).flatten() @ chased / (chased @ chased)).item()
    return record, (own, peer)


def _worker(rank, port, configs, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    layout = Layout(2, 1, 1, rank)
    groups = make_process_groups(layout)
    data = {}
    with open(Path(out_dir) / f"rank{rank}.jsonl", "w") as handle:
        for index, config in enumerate(configs):
            name = config.get("workload", "digits_cnn")
            if name not in data:
                data[name] = WORKLOADS[name]["load"]()
            records, summary = train(config, layout, groups, data[name])
            handle.write(json.dumps({"run": index, "config": config, "records": records, "summary": summary}) + "\n")
            handle.flush()
    dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_configs(configs):
    """Runs every config on one pair of gloo processes; returns per config (records of model 0,
    summaries of both models)."""
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(_free_port(), configs, out_dir), nprocs=2)
        ranks = [[json.loads(line) for line in open(Path(out_dir) / f"rank{r}.jsonl")] for r in range(2)]
    return [(zero["records"], [zero["summary"], one["summary"]]) for zero, one in zip(*ranks)]


def summarise(config, records, summaries):
    worse = min(s["final_top1"] for s in summaries)
    warned = [s["warned_at"] for s in summaries if s["warned_at"] is not None]
    late = [r for r in records if r["epoch"] >= 1]
    return {"workload": config.get("workload", "digits_cnn"),
            **{k: config[k] for k in ("max_lr", "cycle_momentum", "momentum", "period", "alpha", "seed")},
            "pull_step": round(config["alpha"] * config["max_lr"] / (1 - config["momentum"]), 4),
            "alpha_lr_T": round(config["alpha"] * config["max_lr"] * config["period"], 4),
            "final_top1_worse": round(worse, 1),
            "final_top1_better": round(max(s["final_top1"] for s in summaries), 1),
            "min_top1_after_epoch1": round(min(min(r["top1_0"], r["top1_1"]) for r in late), 1) if late else None,
            "top_class_share": round(max(s["top_class_share"] for s in summaries), 1),
            "max_gap": round(max(r["gap"] for r in records), 2),
            "max_d_stale": round(max((r["d_stale"] for r in records if not math.isnan(r["d_stale"])), default=0), 2),
            "max_dead": round(max(r["dead"] for r in records), 1),
            "collapsed": worse < workload_of(config)["collapsed_below"],
            "warned_at": min(warned) if warned else None}


def print_run(records):
    columns = ["step", "epoch", "lr", "gap", "cos", "r", "d_stale", "d_fresh", "ce", "g_ce", "g_kd",
               "top1_0", "top1_1", "rms_0", "rms_1", "dead"]
    print(" ".join(f"{c:>7}" for c in columns))
    for r in records:
        print(" ".join(f"{r.get(c, float('nan')):7.3f}" if isinstance(r.get(c, 0.0), float) else f"{r[c]:7d}"
                       for c in columns))


PERIODS, ALPHAS = (1, 5, 10, 20, 50), (0.1, 0.3, 1.0, 3.0)
TUNED_LR = {0.0: 0.3, 0.9: 0.1}   # per momentum: OneCycleLR's max_lr, a third to a half of where alpha = 0 breaks


def grid(workload="digits_cnn"):
    """The docs' runs of `workload`: digits_cnn's below; another's every optimizer setting x period
    x alpha x seed of its WORKLOADS entry, and alpha = 0 (no distillation) per setting and seed."""
    if workload != "digits_cnn":
        spec = WORKLOADS[workload]
        configs = []
        for momentum, lr in spec["settings"]:
            for seed in spec["seeds"]:
                common = {**DEFAULTS, "workload": workload, "batch": spec["batch"], "epochs": spec["epochs"],
                          "max_lr": lr, "momentum": momentum, "seed": seed}
                configs.append({**common, "period": 10, "alpha": 0.0})
                configs += [{**common, "period": period, "alpha": alpha}
                            for period in spec["periods"] for alpha in spec["alphas"]]
        return configs
    return _digits_cnn_grid()


def _digits_cnn_grid():
    """The docs' runs, 3 seeds each: per momentum at its tuned max_lr and at 0.3 x it (so that alpha
    x max_lr of the one matches that of the other at the next alpha: 0.03 x 1 = 0.1 x 0.3), every
    period x alpha, and alpha = 0 (no distillation) as the baseline; then SGD(momentum=0) under
    OneCycleLR's default cycle_momentum=True (which sets momentum to 0.95 -> 0.85 -> 0.95).
    Momentum 0.9 at 0.03 has the effective step max_lr / (1 - momentum) of momentum 0 at 0.3."""
    configs = []
    for momentum, lr in TUNED_LR.items():
        for scale in (1.0, 0.3):
            for seed in (0, 1, 2):
                common = {**DEFAULTS, "max_lr": round(lr * scale, 6), "momentum": momentum, "seed": seed}
                configs.append({**common, "period": 10, "alpha": 0.0})
                configs += [{**common, "period": period, "alpha": alpha} for period in PERIODS for alpha in ALPHAS]
    for seed in (0, 1, 2):
        common = {**DEFAULTS, "max_lr": TUNED_LR[0.0], "momentum": 0.0, "cycle_momentum": True, "seed": seed}
        configs.append({**common, "period": 10, "alpha": 0.0})
        configs += [{**common, "period": 10, "alpha": 0.1}]
        configs += [{**common, "period": period, "alpha": 1.0} for period in (1, 10, 50)]
    return configs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="digits_cnn")
    parser.add_argument("--period", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-lr", type=float, help="default: TUNED_LR of the momentum")
    parser.add_argument("--epochs", type=int, help="default: the workload's")
    parser.add_argument("--cycle-momentum", action="store_true", help="OneCycleLR's default (cycles momentum)")
    parser.add_argument("--grid", action="store_true", help="run the docs' grid")
    parser.add_argument("--out", help="with --grid: write OUT.csv (one row per run)")
    parser.add_argument("--raw", help="with --grid: write every run's records and per-update series here (JSONL)")
    parser.add_argument("--analyse", metavar="RAW", help="print the docs' explanation numbers from a --raw file")
    parser.add_argument("--by-pull", metavar="CSV", nargs="+", help="print the docs' table by the pull's effective "
                                                                     "step from --out CSV files")
    args = parser.parse_args()
    if args.by_pull:
        print(by_pull(args.by_pull))
        return
    if args.analyse:
        for key, value in analyse([json.loads(line) for line in open(args.analyse)]).items():
            print(f"{key}: {value}")
        return
    if not args.grid:
        spec = WORKLOADS[args.workload]
        config = {**DEFAULTS, "workload": args.workload, "batch": spec["batch"], "period": args.period,
                  "alpha": args.alpha, "momentum": args.momentum, "seed": args.seed,
                  "max_lr": args.max_lr or TUNED_LR.get(args.momentum, 0.1), "epochs": args.epochs or spec["epochs"],
                  "cycle_momentum": args.cycle_momentum}
        (records, summaries), = run_configs([config])
        print_run(records)
        print(json.dumps(summarise(config, records, summaries)))
        return
    configs = grid(args.workload)
    started = time.perf_counter()
    results = run_configs(configs)
    print(f"{len(configs)} runs in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.raw:
        with open(args.raw, "w") as handle:
            for config, (records, summaries) in zip(configs, results):
                handle.write(json.dumps({"config": config, "records": records, "summaries": summaries}) + "\n")
    import pandas as pd

    table = pd.DataFrame([summarise(config, records, summaries)
                          for config, (records, summaries) in zip(configs, results)])
    print(table.to_string(index=False))
    if args.out:
        table.to_csv(f"{args.out}.csv", index=False)
        Path(f"{args.out}.md").write_text(markdown(table, args.workload, args.out))


def markdown(table, workload="digits_cnn", out="docs/library-collapse"):
    """Per optimizer setting and alpha, one cell per period: runs collapsed (worse model's final
    top-1 under the workload's collapsed_below) of runs, and the worse model's lowest final top-1
    (mini scale); other workloads than digits_cnn also the worse model's mean final top-1."""
    spec = WORKLOADS[workload]
    flag = "" if workload == "digits_cnn" else f" --workload {workload}"
    lines = [f"Mini scale ({workload}: {spec['epochs']} epochs of OneCycleLR at batch {spec['batch']}, 2 models x 1 "
             f"rank on gloo): collapsed runs (worse model under {spec['collapsed_below']} % top-1) / runs "
             f"(lowest final top-1 of the worse model{'' if flag == '' else '; its mean'}, %); "
             f"`python scripts/library_collapse.py{flag} --grid --out {out}`.", ""]
    periods = sorted(table.period.unique())
    lines += ["| momentum | max_lr | alpha | " + " | ".join(f"T = {t}" for t in periods) + " |",
              "|---|--:|--:|" + "--:|" * len(periods)]
    for (cycle, momentum, lr, alpha), rows in table.groupby(["cycle_momentum", "momentum", "max_lr", "alpha"]):
        label = "0 + OneCycleLR cycle_momentum (0.85-0.95)" if cycle else f"{momentum:g}"
        cells = []
        for period in periods:
            runs = rows[rows.period == period]
            mean = "" if workload == "digits_cnn" else f"; {runs.final_top1_worse.mean():.1f}"
            cells.append(f"{int(runs.collapsed.sum())}/{len(runs)} ({runs.final_top1_worse.min():.0f}{mean})"
                         if len(runs) else "")
        lines.append(f"| {label} | {lr:g} | {alpha:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


LOST = 2.0   # points of top-1 under the mean of the setting's alpha = 0 runs for a run to count as harmed


def by_pull(paths):
    """The docs' table from --out CSV files: per workload and alpha x max_lr / (1 - momentum) (and
    that over the classes: the pull on each logit), per period, runs harmed (the worse model more
    than LOST points under its optimizer setting's alpha = 0 runs) / runs, the collapsed among them,
    the runs the spread guard warned; which runs the Codistiller's PullGuard rule puts in its region
    (computed from each run's setting: this loop gives the Codistiller no optimizer)."""
    import pandas as pd

    from codistill.internals import PULL_LIMIT, SAFE_PERIOD  # the PullGuard's rule (not the loop's API)

    frames = [pd.read_csv(path) for path in paths]
    table = pd.concat([frame if "workload" in frame else frame.assign(workload="digits_cnn") for frame in frames])
    table = table[~table.cycle_momentum]
    keys = ["workload", "momentum", "max_lr"]
    baseline = table[table.alpha == 0].groupby(keys).final_top1_worse.mean().rename("baseline")
    runs = table[table.alpha > 0].join(baseline, on=keys)
    runs["pull"] = (runs.alpha * runs.max_lr / (1 - runs.momentum)).round(3)
    runs["per_logit"] = runs.pull / runs.workload.map(lambda name: WORKLOADS[name]["classes"])
    runs["harmed"] = runs.final_top1_worse < runs.baseline - LOST
    runs["warned"] = runs.warned_at.notna()
    periods = sorted(runs.period.unique())
    lines = ["| workload | alpha x max_lr / (1 - momentum) | per logit | " +
             " | ".join(f"T = {t}" for t in periods) + " |", "|---|--:|--:|" + "--:|" * len(periods)]
    for (workload, pull, per_logit), rows in runs.groupby(["workload", "pull", "per_logit"]):
        cells = []
        for period in periods:
            cell = rows[rows.period == period]
            cells.append(f"{int(cell.harmed.sum())}/{len(cell)} ({int(cell.collapsed.sum())}; "
                         f"{int(cell.warned.sum())})" if len(cell) else "")
        lines.append(f"| {workload} | {pull:g} | {per_logit:.2g} | " + " | ".join(cells) + " |")
    guard = runs.groupby(["workload", runs.collapsed.map({True: "collapsed", False: "not collapsed"}),
                          runs.harmed.map({True: "harmed", False: "not harmed"})]).warned.agg(["sum", "count"])
    lines += ["", "spread guard (runs warned / runs):", guard.to_string()]
    region = (runs.per_logit > PULL_LIMIT + 1e-12) & (runs.period < SAFE_PERIOD)
    lines += ["", f"harmed / runs in the PullGuard's region (per logit > {PULL_LIMIT:g}, T < {SAFE_PERIOD}) "
                  "and outside it:",
              runs.groupby(["workload", region.rename("region")]).harmed.agg(["sum", "count"]).to_string()]
    return "\n".join(lines)


def _collapsed(run, top1):
    return top1 < workload_of(run["config"])["collapsed_below"]


def _healthy(run, top1):
    return top1 >= workload_of(run["config"])["healthy_from"]


def _death(summary, window=10, dead=0.9, collapsed_below=50):
    """The first update from which model's hidden layer is >= 90 % dead on its batches (10-update
    mean) or its loss not finite, for the rest of the run; None when it never is."""
    series = summary["per_step"]
    bad = [d >= dead or not math.isfinite(c) for d, c in zip(series["dead"], series["ce"])]
    means = [sum(bad[t:t + window]) / len(bad[t:t + window]) for t in range(len(bad))]
    late = [t for t in range(len(bad)) if all(m >= 0.5 for m in means[t:])]
    return late[0] if late and summary["final_top1"] < collapsed_below else None


def analyse(runs):
    """The numbers of docs/library.md's explanation, from --raw's runs."""
    import statistics

    out = {}
    models = [(run, k, s) for run in runs for k, s in enumerate(run["summaries"]) if run["config"]["alpha"] > 0]
    collapsed = [(run, k, s) for run, k, s in models if _collapsed(run, s["final_top1"])]
    healthy = [(run, k, s) for run, k, s in models if _healthy(run, s["final_top1"])]
    tail_dead = [statistics.mean(s["per_step"]["dead"][-20:]) for _, _, s in collapsed]
    out["collapsed models"] = len(collapsed)
    out["their final dead hidden units (%)"] = (round(100 * min(tail_dead)), round(100 * max(tail_dead)))
    out["their final top-1 (%)"] = (round(min(s["final_top1"] for _, _, s in collapsed), 1),
                                    round(max(s["final_top1"] for _, _, s in collapsed), 1))
    out["their share of the most predicted class (%)"] = (min(s["top_class_share"] for _, _, s in collapsed),
                                                          max(s["top_class_share"] for _, _, s in collapsed))
    out["healthy models' final dead hidden units (%)"] = (
        round(100 * min(statistics.mean(s["per_step"]["dead"][-20:]) for _, _, s in healthy)),
        round(100 * max(statistics.mean(s["per_step"]["dead"][-20:]) for _, _, s in healthy)))
    deaths = [(run, k, s, _death(s, collapsed_below=workload_of(run["config"])["collapsed_below"]))
              for run, k, s in collapsed]
    spe = lambda run: len(run["summaries"][0]["per_step"]["d"]) / run["config"]["epochs"]   # noqa: E731
    epochs = sorted(t / spe(run) for run, _, _, t in deaths if t is not None)
    out["collapsed models without a dead hidden layer"] = sum(t is None for *_, t in deaths)
    out["epoch of death (min, median, max; OneCycleLR peaks at 3)"] = (round(epochs[0], 1),
                                                                      round(statistics.median(epochs), 1),
                                                                      round(epochs[-1], 1))
    # the update that kills: the largest gradient norm in the 20 updates before death, against the
    # median before; for healthy models the largest 20-update window max against the run's median
    spikes = []
    for _, _, s, t in deaths:
        if t is None:
            continue
        norms = s["per_step"]["grad_norm"][:t + 1]
        finite = [g for g in norms if math.isfinite(g)]
        before = statistics.median(finite[:max(t - 20, 1)]) if finite else float("nan")
        spikes.append(max(norms[max(t - 20, 0):t + 1]) / before)
    healthy_spikes = [max(g for g in s["per_step"]["grad_norm"]) / statistics.median(s["per_step"]["grad_norm"])
                      for _, _, s in healthy]
    out["largest gradient norm near death / median before (min, median)"] = (
        round(min(spikes), 1), round(statistics.median(spikes), 1))
    out["healthy: largest gradient norm / median (median, max)"] = (
        round(statistics.median(healthy_spikes), 1), round(max(healthy_spikes), 1))
    # precursors at the exchanges of model 0 (rank 0's records), from epoch 1 to 20 updates before
    # the first death (healthy runs: to epoch 6)
    def precursors(run):
        below = workload_of(run["config"])["collapsed_below"]
        first = [t for t in (_death(s, collapsed_below=below) for s in run["summaries"]) if t is not None]
        end = (min(first) - 20) if first else 6 * spe(run)
        rows = [r for r in run["records"] if spe(run) <= r["step"] <= end]
        ratio = max((r["g_kd"] / r["g_ce"] for r in rows), default=float("nan"))
        swapped = [r.get("cos", 1.0) < -0.5 for r in rows if "cos" in r]
        return ratio, (sum(swapped) / len(swapped) if swapped else float("nan"))
    for label, group in (("collapsed", [run for run in runs if run["config"]["alpha"] > 0 and
                                         _collapsed(run, min(s["final_top1"] for s in run["summaries"]))]),
                         ("healthy", [run for run in runs if run["config"]["alpha"] > 0 and
                                      _healthy(run, min(s["final_top1"] for s in run["summaries"]))])):
        values = [precursors(run) for run in group]
        ratios = sorted(v[0] for v in values if math.isfinite(v[0]))
        swaps = [v[1] for v in values if math.isfinite(v[1])]
        out[f"{label} runs: max g_kd / g_ce before death (quartiles)"] = [
            round(ratios[int(q * (len(ratios) - 1))], 2) for q in (0.25, 0.5, 0.75)]
        out[f"{label} runs: share with g_kd > g_ce before death"] = f"{sum(r > 1 for r in ratios)}/{len(ratios)}"
        out[f"{label} runs (T >= 5): mean share of exchanges that swap sides (cos < -0.5)"] = (
            round(statistics.mean(swaps), 2) if swaps else None)
    # what the guard reads: the spread of the logits over the batch, at the end against its largest
    def spread_drop(s):
        spread = s["per_step"].get("spread")
        if not spread:
            return float("nan")
        finite = [v for v in spread if math.isfinite(v)]
        last = statistics.mean(spread[-10:])
        return last / max(finite) if math.isfinite(last) else 0.0
    drops = [spread_drop(s) for _, _, s in collapsed]
    kept = [spread_drop(s) for _, _, s in healthy]
    out["final / largest logit spread: collapsed (max), healthy (min)"] = (
        f"{max(drops):.2g}" if drops else None, f"{min(kept):.2g}" if kept else None)
    # the trigger rejected: the term at exchanges growing at 3 exchanges in a row, 2x overall
    def grows(run, s, n=3, factor=2.0):
        period = run["config"]["period"]
        fresh = s["per_step"]["d"][::period]
        return any(all(b > a for a, b in zip(fresh[i - n:i], fresh[i - n + 1:i + 1])) and
                   fresh[i] >= factor * fresh[i - n] for i in range(n, len(fresh)))
    out["rejected trigger (term at exchanges up 3 times in a row, 2x): collapsed / healthy models flagged"] = (
        f"{sum(grows(run, s) for run, _, s in collapsed)}/{len(collapsed)}",
        f"{sum(grows(run, s) for run, _, s in healthy)}/{len(healthy)}")
    # the guard
    warned_collapsed = [(s["warned_at"], t) for run, k, s, t in deaths]
    lags = [w - t for w, t in warned_collapsed if w is not None and t is not None]
    out["guard: collapsed models warned"] = f"{sum(w is not None for w, _ in warned_collapsed)}/{len(deaths)}"
    out["guard: updates from death to warning (min, median, max)"] = (
        (min(lags), statistics.median(lags), max(lags)) if lags else None)
    after = [lag for lag in lags if lag >= 0]
    out["guard: warned after the death (range) / before it / with no death (diverged)"] = (
        len(after), (min(after), max(after)) if after else None, len(lags) - len(after),
        sum(w is not None and t is None for w, t in warned_collapsed))
    out["guard: false alarms (healthy models warned)"] = (
        f"{sum(s['warned_at'] is not None for _, _, s in healthy)}/{len(healthy)}")
    baseline = [(run, s) for run in runs for s in run["summaries"] if run["config"]["alpha"] == 0]
    out["guard: alpha = 0 models warned"] = f"{sum(s['warned_at'] is not None for _, s in baseline)}/{len(baseline)}"
    out.update(_more(runs, deaths, spe))
    return out


def _more(runs, deaths, spe):
    """The rest of the docs' numbers: the killing update, the swap, who follows, the grid by the
    pull's effective step, the paired test of alpha x max_lr and the guard's timing."""
    import statistics
    from collections import Counter

    out, phases, lr_share = {}, [], []
    for run, _, s, t in deaths:
        if t is None:
            continue
        norms = s["per_step"]["grad_norm"]
        kill = max(range(max(t - 20, 0), t + 1), key=lambda i: norms[i] if math.isfinite(norms[i]) else math.inf)
        lr = torch.optim.SGD([torch.zeros(1)], lr=run["config"]["max_lr"])
        schedule = torch.optim.lr_scheduler.OneCycleLR(lr, max_lr=run["config"]["max_lr"],
                                                       total_steps=len(norms), cycle_momentum=False)
        for _ in range(kill):
            lr.step()
            schedule.step()
        lr_share.append(schedule.get_last_lr()[0] / run["config"]["max_lr"])
        if run["config"]["period"] >= 10:
            phases.append(kill % run["config"]["period"] / run["config"]["period"])
    quartiles = sorted(lr_share)
    out["killing update's LR / max_lr (quartiles)"] = [round(quartiles[int(q * (len(quartiles) - 1))], 2)
                                                      for q in (0.25, 0.5, 0.75)]
    out["killing updates in the first fifth of a period (T >= 10); at the exchange"] = (
        f"{sum(p < 0.2 for p in phases)}/{len(phases)}", sum(p == 0 for p in phases))
    swap = {"collapsed": [], "healthy": []}
    for run in runs:
        config = run["config"]
        if config["alpha"] == 0 or config["period"] < 10 or config["cycle_momentum"]:
            continue
        below = workload_of(config)["collapsed_below"]
        first = [t for t in (_death(s, collapsed_below=below) for s in run["summaries"]) if t is not None]
        worse = min(s["final_top1"] for s in run["summaries"])
        label = "collapsed" if _collapsed(run, worse) and first else "healthy" if _healthy(run, worse) else None
        end = min(first) - 20 if first else 6 * spe(run)
        rows = [r for r in run["records"] if spe(run) <= r["step"] <= end and "cos" in r]
        if label and len(rows) >= 2:
            swap[label].append((statistics.median(r["cos"] for r in rows), statistics.median(r["r"] for r in rows)))
    for label, values in ((label, values) for label, values in swap.items() if values):
        out[f"T >= 10, {label} runs: median of the runs' median cos, r before death"] = (
            len(values), round(statistics.median(v[0] for v in values), 2),
            round(statistics.median(v[1] for v in values), 2))
    both = Counter()
    for run in runs:
        tops = [s["final_top1"] for s in run["summaries"]]
        if run["config"]["alpha"] > 0 and _collapsed(run, min(tops)):
            key = "momentum" if run["config"]["momentum"] or run["config"]["cycle_momentum"] else "no momentum"
            both[key, "both"] += _collapsed(run, max(tops))
            both[key, "runs"] += 1
    out["collapsed runs where both models collapsed (momentum / none)"] = (
        f"{both['momentum', 'both']}/{both['momentum', 'runs']}",
        f"{both['no momentum', 'both']}/{both['no momentum', 'runs']}")
    grid = [run for run in runs if run["config"]["alpha"] > 0 and not run["config"]["cycle_momentum"]]
    collapsed = lambda run: _collapsed(run, min(s["final_top1"] for s in run["summaries"]))   # noqa: E731
    by_step = Counter()
    for run in grid:
        c = run["config"]
        step = round(c["alpha"] * c["max_lr"] / (1 - c["momentum"]), 3)
        where = "T=50" if c["period"] == 50 else "T<=20"
        by_step[step, where, "collapsed"] += collapsed(run)
        by_step[step, where, "runs"] += 1
    out["collapsed / runs by alpha x max_lr / (1 - momentum), T <= 20 and T = 50"] = {
        step: (f"{by_step[step, 'T<=20', 'collapsed']}/{by_step[step, 'T<=20', 'runs']}",
               f"{by_step[step, 'T=50', 'collapsed']}/{by_step[step, 'T=50', 'runs']}")
        for step in sorted({key[0] for key in by_step})}
    for name in ("period", "alpha"):
        out[f"collapsed / runs by {name}"] = {value: f"{sum(collapsed(r) for r in grid if r['config'][name] == value)}/"
                                                     f"{sum(r['config'][name] == value for r in grid)}"
                                              for value in sorted({r["config"][name] for r in grid})}
    cell = Counter()
    for run in grid:
        c = run["config"]
        if c["period"] <= 20:
            cell[c["momentum"], c["max_lr"], c["alpha"]] += collapsed(run)
    out["T <= 20, collapsed of 12 per (momentum, max_lr, alpha)"] = dict(sorted(cell.items()))
    return out


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
