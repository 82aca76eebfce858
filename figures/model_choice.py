"""Which of a run's models to keep (docs/library.md, "At the end: which model to keep"): per kind
of run in the logs (method, what it exchanges, how many models, one architecture or several),
the gap between the models' final top-1, the best model's lead over their mean, the ensemble's
lead over the best, and how much the models disagree (churn as the engine logs it: the total-variation
distance between two models' predicted distributions, mean over validation examples and pairs),
from every finished run of one workload at its last evaluation.
A run shared by several sweeps counts once.

    python -m figures.model_choice [--results paper/logs] [--workload clusters_resnet] [--scale mini]
"""
import argparse

import pandas as pd

from .drawing.seed_means import last_step
from .logs import collect
from .logs.manifests import manifest, manifests
from .paths import COMMITTED

KIND = ["method", "exchange", "models", "architectures"]


def architectures(models, arch):
    """The architectures of a run's models, in order, as one label: several for a run whose
    `workload.models` names each model's (fig15), else the workload's one `arch`."""
    named = [model["arch"] for model in models] if isinstance(models, list) and models else []
    return " + ".join(named) if len(set(named)) > 1 else (named[0] if named else arch)


def per_run(records):
    """One row per run with more than one model, at its last evaluation: its kind (KIND), the gap
    between its models' top-1, best - mean of its models, ensemble - best (points) and churn."""
    rows = []
    for run_id, evals in last_step(records).groupby("run_id"):
        top1 = evals.groupby("model")["val_top1"].first()
        if len(top1) < 2:
            continue
        first = evals.iloc[0]
        rows.append({"run_id": run_id, "method": first["cfg.method.name"],
                     "exchange": first.get("cfg.method.exchange") if first["cfg.method.name"] == "codistill" else None,
                     "models": len(top1),
                     "architectures": architectures(first.get("cfg.workload.models"), first.get("cfg.workload.arch")),
                     "gap": top1.max() - top1.min(), "best_minus_mean": top1.max() - top1.mean(),
                     "ensemble_minus_best": first["ensemble_top1"] - top1.max(), "churn": first.get("churn")})
    return pd.DataFrame(rows, columns=["run_id", *KIND, "gap", "best_minus_mean", "ensemble_minus_best", "churn"])


def summary(runs):
    """Per kind: runs, mean and largest gap, mean best - mean, ensemble - best (mean, least, most)
    and mean churn."""
    grouped = runs.fillna({"exchange": "-"}).groupby(KIND)
    return grouped.agg(runs=("run_id", "count"), gap=("gap", "mean"), largest_gap=("gap", "max"),
                       best_minus_mean=("best_minus_mean", "mean"), ensemble_minus_best=("ensemble_minus_best", "mean"),
                       least=("ensemble_minus_best", "min"), most=("ensemble_minus_best", "max"),
                       churn=("churn", "mean")).reset_index()


def runs_of(results, workload, scale="mini"):
    """per_run() over every finished run of `workload` in the sweeps of `results` at `scale`; a sweep
    whose runs were all read with another's (a figure drawn from another's runs) is not read again."""
    tables, seen = [], set()
    for path in manifests(results, scale):
        sweep_id = path.parent.name
        run_ids = {entry["run_id"] for entry in manifest(results, sweep_id, scale)}
        if run_ids <= seen:
            continue
        seen |= run_ids
        records, status = collect.collect(results, sweep_id, scale)
        if records.empty:
            continue
        finished = set(status.loc[status["state"] == "finished", "run_id"])
        records = records[records["run_id"].isin(finished) & (records["cfg.workload.name"] == workload)]
        if not records.empty:
            tables.append(per_run(records))
    runs = pd.concat(tables) if tables else per_run(pd.DataFrame(columns=["run_id", "step"]))
    return runs.drop_duplicates("run_id")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(COMMITTED))
    parser.add_argument("--workload", default="clusters_resnet")
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    args = parser.parse_args(argv)
    table = summary(runs_of(args.results, args.workload, args.scale))
    print(f"{args.scale.upper()} scale, {args.workload}, {args.results}: final top-1 (points), each run at its last evaluation")
    print(table.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
