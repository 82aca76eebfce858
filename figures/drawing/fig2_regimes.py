"""Fig. 2 across regimes (beyond the paper; sweeps/fig2_regimes.yaml): Fig. 2's four arms in four
regimes of the mini stand-in fixed before any run (weight decay x {10, 30} x the paper's epochs /
{5, 10}), with the alpha = 0 control of each codistillation recipe. Per regime the final top-1 (a) and
training loss (b) of each arm, mean ± 1 s.e. over seeds as points with error bars; each arm one colour
in both panels, its kind's (figures/drawing/palette.py: a recipe a marker of its own, a control open). A
regime without finished runs keeps its place on the axis, empty, so that the four regimes always read
in the same order."""
from ..records import record
from .curves import curves
from .labels import cfg, number
from .palette import controls, series_styles
from .panels import category_points, new_figure
from .seed_means import last_step

RECORD = record("fig2_regimes")
# (weight-decay scale, epoch scale) -> the regime's tick label; (method, schedule) -> the arm's legend label:
# the record's regimes and drawn arms, in its order
REGIMES = {(sel["workload.weight_decay_scale"], sel["workload.epoch_scale"]): name.replace(" (", "\n(")
           for name, sel in RECORD.regimes.items()}
ARMS = {(RECORD.arm(name)["method.name"], RECORD.arm(name)["schedule.name"]): name for name in RECORD.drawn}
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
