"""The frontier (beyond the paper, Fig. 1's setting): top-1 against the measured bits each device
sends between servers per update, codistillation against what a practitioner would pick instead
(PowerSGD, local SGD, DiLoCo, Streaming DiLoCo through torchft), one curve per method over its
knob, each in its method's colour (figures/drawing/palette.py; a method's tuned setting and compressed
predictions a darker shade of it). all_reduce is a band (its mean ± 1 s.e. over seeds, as every error
bar) across the whole figure, and the alpha = 0 control (method independent: the same models and batches, no distillation, 0 bits) is the
frontier's 0-bit point, in a narrow panel left of the log axis, which cannot place 0. Compressed
predictions (each example's top k logits, or 8-bit values) are a series of their own, each point
tagged with its T, k and bits."""
import matplotlib.pyplot as plt
import pandas as pd

from .curves import curves
from .labels import cfg, number
from .palette import CONTROL as CONTROL_METHOD, colour, series_colours, series_methods
from .panels import apply_theme, point_panel, value_band
from .seed_means import SES, last_step

FRONTIER_LABELS = {"allreduce": "all_reduce", "powersgd": "PowerSGD", "localsgd": "local SGD", "diloco": "DiLoCo",
                   "streaming_diloco": "Streaming DiLoCo",
                   "independent": "α = 0 control (independent, 0 bits)"}
FRONTIER_KNOBS = {"codistill": ("method.period", "T"), "localsgd": ("method.period", "H"),
                  "diloco": ("method.period", "H"), "streaming_diloco": ("method.period", "H"),
                  "powersgd": ("method.rank", "r")}
COMPRESSED = "codistillation, predictions top-k / 8-bit"   # method.prediction_topk or prediction_bits=8
ORDER = ["all_reduce", "codistillation, predictions", "codistillation, checkpoints", "PowerSGD", "local SGD", "DiLoCo",
         "Streaming DiLoCo", COMPRESSED]
CONTROL = FRONTIER_LABELS["independent"]
BAND = f"all_reduce, mean ± {SES} s.e. over seeds"
# The tuned series: each method's best setting on held-out training data (sweep frontier_tuning,
# python -m figures.tuning ranks them), run with fresh seeds in the frontier sweep.
TUNED_SEEDS = (3, 4, 5)   # the fresh seeds of each method's tuned setting in the frontier sweep
# What each method tunes: the config keys that tell its settings apart.
TUNED = {"codistill": ["method.alpha", "method.exchange"], "diloco": ["method.outer_lr", "method.outer_momentum"],
         "localsgd": ["method.warmup_steps"], "powersgd": ["method.start_iter", "method.warm_start"]}
INTEGER_KEYS = {"method.warmup_steps", "method.start_iter"}


def setting_value(key, value):
    """A config value as an override writes it (pandas stores integers beside NaN as floats)."""
    return int(value) if key in INTEGER_KEYS else value


def frontier_label(row):
    """A method's series; its tuned setting (sweep frontier_tuning's best on held-out data, run with the
    fresh seeds TUNED_SEEDS) is a series of its own, named by what was tuned."""
    name = cfg(row, "method.name")
    if int(cfg(row, "seed", 0)) in TUNED_SEEDS:
        method = "codistillation" if name == "codistill" else FRONTIER_LABELS.get(name, name)
        setting = ", ".join(f"{key.split('.')[-1]}={setting_value(key, cfg(row, key))}"
                            for key in TUNED.get(name, []))
        return f"{method}, tuned ({setting})"
    if name == "codistill":
        return COMPRESSED if compressed(row) else f"codistillation, {cfg(row, 'method.exchange')}"
    return FRONTIER_LABELS.get(name, name)


def compressed(row):
    """Predictions sent as each example's top k logits or as 8-bit values (not the paper's float32)."""
    return cfg(row, "method.prediction_topk") is not None or cfg(row, "method.prediction_bits", 32) == 8


def frontier_knob(row):
    """Each point's knob: the exchange period T, the averaging period H or PowerSGD's rank r."""
    key, symbol = FRONTIER_KNOBS.get(cfg(row, "method.name"), (None, None))
    if key and cfg(row, "method.name") == "codistill" and compressed(row):   # what each example sends
        topk = cfg(row, "method.prediction_topk")
        return (f"T={number(cfg(row, key))}, {'all' if topk is None else f'k={number(topk)}'}, "
                f"{number(cfg(row, 'method.prediction_bits'))}-bit")
    return f"{symbol}={number(cfg(row, key))}" if key else None


def frontier(data, notes):
    frame = last_step(curves(data, label=frontier_label, knob=frontier_knob))
    control, rest = frame[frame["label"] == CONTROL], frame[frame["label"] != CONTROL]
    # a setting that never communicates (a period beyond the run's length) sends 0 bits: beside the control
    silent, rest = rest[rest["bits_per_iteration"] <= 0], rest[rest["bits_per_iteration"] > 0]
    apply_theme()
    fig, (zero, ax) = plt.subplots(1, 2, figsize=(9.5, 5.2), sharey=True,
                                   width_ratios=[1.6, 8])
    labels = set(rest["label"]) | set(silent["label"])
    palette = series_colours(series_methods(pd.concat([rest, silent]), "label", ORDER + sorted(labels - set(ORDER))))
    point_panel(ax, rest, "bits_per_iteration", "val_top1", "label", notes, "knob",
                annotate=str, series_order=[s for s in palette if s in set(rest["label"])], palette=palette)
    ax.set_xscale("log")
    ax.set(xlabel="bits sent between servers per update and device (measured)", ylabel=None)
    value_band([zero, ax], rest.loc[rest["label"] == "all_reduce", "val_top1"], colour("allreduce"), BAND)
    if len(control):
        values = control["val_top1"]
        drawn = zero.errorbar([0], [values.mean()], yerr=[values.sem() if len(values) > 1 else 0], fmt="D",
                              capsize=3, color=colour(CONTROL_METHOD),
                              markerfacecolor="white", label=CONTROL)
        drawn.lines[0].set_gid(CONTROL)
        notes.record(control, "label")
        zero.legend()
    else:
        zero.text(0.5, 0.5, "no α = 0\ncontrol runs\nin these logs", ha="center", va="center",
                  transform=zero.transAxes, fontsize=8)
    for offset, ((label, knob), runs) in enumerate(silent.groupby(["label", "knob"]), start=1):
        values = runs["val_top1"]
        zero.errorbar([0.4 * offset], [values.mean()], yerr=[values.sem() if len(values) > 1 else 0], fmt="o",
                      capsize=3, color=palette[label])
        zero.annotate(knob, (0.4 * offset, values.mean()), textcoords="offset points", xytext=(3, 3),
                      fontsize=7, color=palette[label])
        notes.record(runs, "label")
    zero.set_xticks([0], labels=["0 bits\n(α = 0\ncontrol)"])
    zero.set_xlim(-1, 1 + 0.4 * silent.groupby(["label", "knob"]).ngroups)
    zero.set(ylabel="top-1 validation accuracy (%)", xlabel=None)
    ax.legend()   # the band joins the methods' entries in the legend under the panels
    return fig
