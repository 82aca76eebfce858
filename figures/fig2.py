"""Figure 2: all_reduce vs codistillation (fixed / decaying weight decay, and the ablation with the
shifted LR decays but fixed weight decay) on training loss (a) and top-1 (b) over updates, and
top-1 against the batch size per model (c). Reads logs only; the
registry (figures/registry.py) draws it like every other id.

    python -m figures.fig2 [--results paper/logs] [--scale mini] [--out figures/out]
"""
import argparse
from pathlib import Path

import matplotlib.ticker
import seaborn as sns

from .collect import COMMITTED
from .plots import last_step, line_panel, new_figure, point_panel

RECIPES = {  # (method, schedule) -> legend label, as in the paper
    ("allreduce", "goyal_step"): "all_reduce",
    ("codistill", "goyal_step_half"): "codistillation, fixed w.d.",
    ("codistill", "codistill_tuned"): "codistillation, variable w.d.",
    ("codistill", "codistill_shifted_lr"): "codistillation, shifted LR decays, fixed w.d. (ablation)",
    ("independent", "goyal_step_half"): "independent (alpha = 0), control",
}
OUT = Path(__file__).resolve().parent / "out"


def per_run_means(records):
    """Mean over a run's models at each evaluation: one curve per run (seed)."""
    records = records.assign(recipe=[RECIPES.get(key) for key in
                                     zip(records["cfg.method.name"], records["cfg.schedule.name"])])
    keys = ["recipe", "run_id", "seed", "cfg.batch_scale", "batch_per_model", "step"]
    if "setting" in records.columns:
        keys.insert(3, "setting")
    return records.dropna(subset=["recipe"]).groupby(keys, as_index=False)[
        ["train_loss", "val_top1"]].mean()


def seeds_note(curves):
    seeds = curves.groupby("recipe")["seed"].nunique()
    fewest = int(seeds.min()) if len(seeds) else 0
    return f"mean ± s.e. over {fewest} seed{'s' if fewest != 1 else ''}" + (
        "" if fewest >= 3 else f" (FEWER THAN 3 SEEDS: {dict(seeds)})")


def draw(data, notes):
    curves = per_run_means(data.records[data.records["kind"] == "eval"])
    main = curves[curves["cfg.batch_scale"] == 1]
    fig, axes = new_figure(3)
    order = list(RECIPES.values())
    palette = dict(zip(order, sns.color_palette("tab10", n_colors=len(order))))  # one colour per recipe, every panel
    line_panel(axes[0], main, "train_loss", "recipe", notes, order, title="(a) training loss", task=data.task,
               palette=palette)
    line_panel(axes[1], main, "val_top1", "recipe", notes, order, title="(b) top-1 validation accuracy",
               task=data.task, palette=palette)
    tuned = last_step(curves[curves["recipe"] == RECIPES[("codistill", "codistill_tuned")]])
    point_panel(axes[2], tuned, "batch_per_model", "val_top1", "recipe", notes, "batch_per_model", palette=palette)
    axes[2].set(title="(c) final top-1, 2 models (LR ∝ b, updates ∝ 1/b)", ylabel="top-1 validation accuracy (%)",
                xlabel="batch size per model b (samples)")
    axes[2].set_xscale("log", base=2)
    batches = sorted(tuned["batch_per_model"].unique())
    axes[2].set_xticks(batches, labels=[str(int(b)) for b in batches])
    axes[2].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    return fig


def main(argv=None):
    from . import registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(COMMITTED))
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    parser.add_argument("--out", default=None, help="output folder (default figures/out, or figures/out/paper)")
    args = parser.parse_args(argv)
    spec = registry.SPECS["fig2"]
    data = registry.load(spec, args.results, args.scale)
    print("\n".join(data.status_lines()))
    if data.records.empty:
        raise SystemExit(f"fig2: no finished run to plot ({data.problem or 'none finished'})")
    paths = registry.render(spec, data, Path(args.out) if args.out else None)
    print(f"wrote {', '.join(map(str, paths))} from {data.records['run_id'].nunique()} runs")


if __name__ == "__main__":
    main()
