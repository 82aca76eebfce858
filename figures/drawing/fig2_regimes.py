"""Fig. 2 across regimes (beyond the paper; sweeps/fig2_regimes.yaml): Fig. 2's four arms in four
regimes of the mini stand-in fixed before any run (weight decay x {10, 30} x the paper's epochs /
{5, 10}), with the alpha = 0 control of each codistillation recipe. Per regime the final top-1 (a) and
training loss (b) of each arm, mean ± 1 s.e. over seeds as points with error bars; each arm one colour
in both panels, its kind's (figures/drawing/palette.py: a recipe a marker of its own, a control open). A
regime without finished runs keeps its place on the axis, empty, so that the four regimes always read
in the same order."""
from .curves import curves
from .labels import cfg, number
from .palette import controls, series_styles
from .panels import category_points, new_figure
from .seed_means import last_step

REGIMES = {(10.0, 0.2): "today\n(w.d. ×10, epochs/5)", (30.0, 0.2): "w.d. ×30", (10.0, 0.1): "epochs/10",
           (30.0, 0.1): "both\n(w.d. ×30, epochs/10)"}
CONTROL = "independent (α = 0), control"
ARMS = {("allreduce", "goyal_step"): "all_reduce",   # the legend's order: each control after its recipe
        ("codistill", "goyal_step_half"): "codistillation, constant w.d.",
        ("independent", "goyal_step_half"): f"{CONTROL}, constant w.d.",
        ("codistill", "codistill_tuned"): "codistillation, decaying w.d. (shifted LR decays)",
        ("independent", "codistill_tuned"): f"{CONTROL}, decaying w.d. (shifted LR decays)"}
# each label's kind of arm: codistillation exchanges predictions here (the method's default)
METHODS = {label: "codistill_predictions" if method == "codistill" else method for (method, _), label in ARMS.items()}
STYLES = series_styles(METHODS)
ARM_COLOURS = {label: style.colour for label, style in STYLES.items()}


def regime_label(row):
    key = (float(cfg(row, "workload.weight_decay_scale", "nan")), float(cfg(row, "workload.epoch_scale", "nan")))
    return REGIMES.get(key, f"w.d. ×{number(key[0])}, epochs ×{number(key[1])}")


def arm_label(row):
    return ARMS.get((cfg(row, "method.name"), cfg(row, "schedule.name")))


def fig2_regimes(data, notes):
    frame = last_step(curves(data, arm=arm_label, regime=regime_label)).dropna(subset=["arm"])
    order = list(REGIMES.values()) + sorted(set(frame["regime"]) - set(REGIMES.values()))
    fig, axes = new_figure(2, width=6.0)
    for ax, metric, title in ((axes[0], "val_top1", "(a) final top-1"), (axes[1], "train_loss", "(b) final training loss")):
        category_points(ax, frame, "regime", metric, "arm", notes, order, list(ARMS.values()), palette=ARM_COLOURS,
                        task=data.task, hollow=controls(METHODS),
                        markers={label: style.marker for label, style in STYLES.items()})
        ax.set(title=title, xlabel="regime of the mini stand-in (weight decay, epochs)")
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    return fig
