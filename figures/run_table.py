"""The runs a sweep made, in numbers: per arm (method, schedule, batch scale) the final top-1 (the
validation NLL where no top-1 is logged: translation) and training loss, mean ± s.e. over seeds
(each run's value is the mean over its models at its last evaluation), and the number of seeds.
`make reproduce` prints it after drawing the figure, so that a newcomer reads the numbers of the
runs just made without parsing metrics.jsonl.

    python -m figures.run_table fig2 [--results results] [--scale mini]
"""
import argparse

import pandas as pd

from . import registry
from .drawing.seed_means import last_step, per_run
from .drawing.tables import mean_se_column
from .paths import COMMITTED

ARM = {"cfg.method.name": "method", "cfg.schedule.name": "schedule", "cfg.batch_scale": "batch scale"}
SCORES = {"val_top1": "final top-1 (%)", "val_nll": "final validation NLL"}   # the first one logged
LOSS = {"train_loss": "final training loss"}


def metrics_of(records):
    """{column: title} of the table: the first of SCORES the runs log, and the training loss."""
    logged = [m for m in SCORES if m in records and records[m].notna().any()]
    return {**({logged[0]: SCORES[logged[0]]} if logged else {}), **LOSS}


def final_runs(records):
    """One row per finished run: its models' mean of each metric at its last evaluation."""
    evals = records[records["kind"] == "eval"]
    extra = tuple(column for column in ARM if column in evals)
    return last_step(per_run(evals, list(metrics_of(evals)), extra=extra)).rename(columns=ARM)


def arm_stats(records):
    """Mean, s.e. (sample s.d. / sqrt(n)) and seeds of each metric per arm, numbers (not text). Runs
    that share an arm and a seed but differ in another setting (a sweep over weight decay, say) are
    kept apart by their setting."""
    finals = final_runs(records)
    arm = [column for column in ARM.values() if column in finals]
    if finals.groupby([*arm, "seed"], dropna=False)["run_id"].nunique().max() > 1:
        arm.append("setting")
    grouped = finals.groupby(arm, dropna=False, sort=False)
    metrics = metrics_of(records[records["kind"] == "eval"])
    stats = grouped.agg(**{f"{m}_{s}": (m, s) for m in metrics for s in ("mean", "sem")}, seeds=("seed", "nunique"))
    return stats.reset_index().sort_values(arm, ignore_index=True)


def printable(stats):
    """The table as text cells: 'mean ± s.e.' with the decimals that tell the arms apart."""
    table = stats.drop(columns=[c for c in stats if c.endswith(("_mean", "_sem"))])
    for metric, title in (SCORES | LOSS).items():
        if f"{metric}_mean" not in stats:
            continue
        cells = mean_se_column(stats.rename(columns={f"{metric}_mean": "mean", f"{metric}_sem": "se"}))
        table.insert(len(table.columns) - 1, title, cells)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("id", help="a figure id of figures/registry.py, e.g. fig2")
    parser.add_argument("--results", default=str(COMMITTED), help="results root holding runs/ and sweeps/")
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    args = parser.parse_args(argv)
    spec = registry.SPECS[args.id]
    data = registry.load(spec, args.results, args.scale)
    figure = registry.output_dir(args.scale) / f"{spec.id}.png"
    print(f"figure: {figure} (and .pdf)" if figure.exists() else f"figure: none drawn yet at {figure}")
    if data.records.empty:
        print(f"no finished run of sweep {spec.sweep_id} in {args.results}: {data.problem or 'none finished'}")
        return 1
    with pd.option_context("display.width", 200):
        print(f"\nRuns of sweep {spec.sweep_id} in {args.results} ({data.scale_note}); mean ± s.e. over seeds "
              "of each run's final value (mean over its models):\n")
        print(printable(arm_stats(data.records)).to_markdown(index=False))
    if data.status_text():
        print(f"\n{data.status_text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
