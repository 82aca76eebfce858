"""Figure 2: all_reduce vs codistillation (fixed / decaying weight decay, and the ablation with the
shifted LR decays but fixed weight decay), each beside its alpha = 0 control (the same two models,
batches and schedule, no distillation): training loss (a) and top-1 (b) over updates, (b') the final
top-1 of each arm with its standard error, and top-1 against the batch size per model (c); all_reduce's
final top-1 is a band (mean ± 1 s.e. over seeds, as every bar and band) in (b') and (c), which share
one y scale. Colours are the kinds of arm's (figures/drawing/palette.py): each codistillation schedule
in codistillation's (predictions) with a line style of its own, each control in the control's grey,
dashed or dotted, with open markers."""
import matplotlib.ticker

from ..records import record
from .palette import controls, series_styles
from .panels import category_points, line_panel, new_figure, point_panel, value_band
from .seed_means import SES, last_step

RECORD = record("fig2")
# (method, schedule) -> legend label: the record's drawn arms, in its legend's order
RECIPES = {(RECORD.arm(name)["method.name"], RECORD.arm(name)["schedule.name"]): name for name in RECORD.drawn}
# each label's kind of arm: Fig. 2's codistillation exchanges predictions (the method's default)
METHODS = {label: "codistill_predictions" if method == "codistill" else method for (method, _), label in RECIPES.items()}
STYLES = series_styles(METHODS)
PALETTE = {label: style.colour for label, style in STYLES.items()}
CONTROLS = controls(METHODS)
DASHES = {label: style.dashes for label, style in STYLES.items()}
MARKERS = {label: style.marker for label, style in STYLES.items()}
BAND = f"all_reduce's final top-1, mean ± {SES} s.e. over seeds"
MIN_HALF_RANGE = 1.0   # points: (b') and (c) show at least all_reduce ± 1, so that 0.3 points do not look steep


def per_run_means(records):
    """Mean over a run's models at each evaluation: one curve per run (seed)."""
    records = records.assign(recipe=[RECIPES.get(key) for key in
                                     zip(records["cfg.method.name"], records["cfg.schedule.name"])])
    keys = ["recipe", "run_id", "seed", "cfg.batch_scale", "batch_per_model", "step"]
    if "setting" in records.columns:
        keys.insert(3, "setting")
    return records.dropna(subset=["recipe"]).groupby(keys, as_index=False)[
        ["train_loss", "val_top1"]].mean()


def layer(ax):
    """Controls under the codistillation arms, all_reduce on top: where two curves meet, the one
    compared against stays visible."""
    for line in ax.lines:
        gid = line.get_gid()
        if gid in RECIPES.values():
            line.set_zorder(2.4 if gid == "all_reduce" else 1.8 if gid in CONTROLS else 2.1)


def reference(axes, finals):
    """all_reduce's final top-1 (mean ± 1 s.e. over seeds) as a band across `axes`; returns the mean or None."""
    band = value_band(axes, finals.loc[finals["recipe"] == "all_reduce", "val_top1"], PALETTE["all_reduce"], BAND,
                      alpha=0.12)
    return band[0] if band else None


def common_range(axes, centre):
    """One y range for `axes`: their data and error bars, and at least centre ± MIN_HALF_RANGE."""
    lows, highs = zip(*(ax.dataLim.intervaly for ax in axes if ax.has_data()))
    low, high = min(lows), max(highs)
    if centre is not None:
        low, high = min(low, centre - MIN_HALF_RANGE), max(high, centre + MIN_HALF_RANGE)
    margin = 0.08 * (high - low)
    for ax in axes:
        ax.set_ylim(low - margin, high + margin)


def fig2(data, notes):
    curves = per_run_means(data.records[data.records["kind"] == "eval"])
    main = curves[curves["cfg.batch_scale"] == 1]
    fig, axes = new_figure(4, width=4.6)
    order = list(RECIPES.values())
    for ax, metric, title in ((axes[0], "train_loss", "(a) training loss"),
                              (axes[1], "val_top1", "(b) top-1 validation accuracy")):
        line_panel(ax, main, metric, "recipe", notes, order, title=title, task=data.task, palette=PALETTE,
                   dashes=DASHES, markers=MARKERS)
        layer(ax)
    finals = last_step(main).assign(when="final")
    category_points(axes[2], finals, "when", "val_top1", "recipe", notes, ["final"], order, palette=PALETTE,
                    task=data.task, hollow=CONTROLS, markers=MARKERS)
    axes[2].set(title=f"(b′) final top-1 of (b), mean ± {SES} s.e.", xticks=[])
    tuned = last_step(curves[curves["recipe"] == RECIPES[("codistill", "codistill_tuned")]])
    if len(tuned):
        point_panel(axes[3], tuned, "batch_per_model", "val_top1", "recipe", notes, "batch_per_model",
                    palette=PALETTE, styles=STYLES)
        axes[3].set_xscale("log", base=2)
        batches = sorted(tuned["batch_per_model"].unique())
        axes[3].set_xticks(batches, labels=[str(int(b)) for b in batches])
        axes[3].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[3].set(title="(c) final top-1, 2 models (LR ∝ b, updates ∝ 1/b)", ylabel="top-1 validation accuracy (%)",
                xlabel="batch size per model b (samples)")
    centre = reference(axes[2:], finals)
    common_range(axes[2:], centre)
    for ax in axes[2:]:
        ax.legend()
    return fig
