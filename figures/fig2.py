"""Figure 2: all_reduce vs codistillation (fixed / decaying weight decay) on training loss (a) and
top-1 (b) over updates, and top-1 against the batch size per model (c). Reads logs only.

    python figures/fig2.py [--results results] [--scale mini]
"""
import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from collect import collect, report_status  # noqa: E402

RECIPES = {  # (method, schedule) -> legend label, as in the paper
    ("allreduce", "goyal_step"): "all_reduce",
    ("codistill", "goyal_step_half"): "codistillation, fixed w.d.",
    ("codistill", "codistill_tuned"): "codistillation, variable w.d.",
    ("independent", "goyal_step_half"): "independent (alpha = 0), control",
}
OUT = Path(__file__).resolve().parent / "out"


def per_run_means(records):
    """Mean over a run's models at each evaluation: one curve per run (seed)."""
    records = records.assign(recipe=[RECIPES.get(key) for key in
                                     zip(records["cfg.method.name"], records["cfg.schedule.name"])])
    keys = ["recipe", "run_id", "seed", "cfg.batch_scale", "batch_per_model", "step"]
    return records.dropna(subset=["recipe"]).groupby(keys, as_index=False)[
        ["train_loss", "val_top1"]].mean()


def seeds_note(curves):
    seeds = curves.groupby("recipe")["seed"].nunique()
    fewest = int(seeds.min()) if len(seeds) else 0
    return f"mean ± s.e. over {fewest} seed{'s' if fewest != 1 else ''}" + (
        "" if fewest >= 3 else f" (FEWER THAN 3 SEEDS: {dict(seeds)})")


def draw(records, scale_note):
    sns.set_theme(style="whitegrid", context="paper")
    curves = per_run_means(records)
    main = curves[curves["cfg.batch_scale"] == 1]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, metric, title in ((axes[0], "train_loss", "(a) training loss"),
                              (axes[1], "val_top1", "(b) top-1 validation accuracy (%)")):
        sns.lineplot(data=main, x="step", y=metric, hue="recipe", errorbar="se", ax=ax,
                     hue_order=[r for r in RECIPES.values() if r in set(main["recipe"])])
        ax.set(title=title, xlabel="updates per model", ylabel=metric.replace("_", " "))
    axes[0].set_yscale("log")
    axes[1].legend_.remove()
    tuned = curves[curves["recipe"] == RECIPES[("codistill", "codistill_tuned")]]
    final = tuned[tuned["step"] == tuned.groupby("run_id")["step"].transform("max")]
    sns.lineplot(data=final, x="batch_per_model", y="val_top1", marker="o", errorbar="se", ax=axes[2],
                 label="codistillation, variable w.d.")
    axes[2].set(title="(c) final top-1 vs batch size per model", ylabel="top-1 (%)",
                xlabel="batch size per model (2 models; LR and updates scaled)")
    axes[2].set_xscale("log", base=2)
    batches = sorted(final["batch_per_model"].unique())
    axes[2].set_xticks(batches, labels=[str(int(b)) for b in batches])
    axes[2].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.suptitle(f"Figure 2 — {scale_note}; {seeds_note(curves)}", fontsize=10)
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    records, status = collect(args.results, "fig2", args.scale)
    report_status(status, "fig2")
    if records.empty:
        raise SystemExit("fig2: no finished run to plot")
    fig = draw(records, records["scale_note"].iloc[0])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for suffix in ("pdf", "png"):
        fig.savefig(out / f"fig2.{suffix}", dpi=150)
    print(f"wrote {out / 'fig2.pdf'} and {out / 'fig2.png'} from {records['run_id'].nunique()} runs")


if __name__ == "__main__":
    main()
