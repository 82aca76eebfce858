"""The frontier (beyond the paper, Fig. 1's setting): top-1 against the measured bits each device
sends between servers per update, codistillation against what a practitioner would pick instead
(PowerSGD, local SGD, DiLoCo, Streaming DiLoCo through torchft), one curve per method over its
knob, each in its kind's colour (figures/drawing/palette.py: codistillation's predictions, checkpoints
and compressed predictions each a kind of its own; a method's tuned setting in its kind's colour with
a marker and line style of its own). A series of one point (a tuned setting, a compressed variant at one
period) has its knob in its legend entry, not beside the point, so that a knob is not written twice
where several such points share it. all_reduce is a band (its mean ± 1 s.e. over seeds, as every error
bar) across the whole figure, and the alpha = 0 control (method independent: the same models and batches, no distillation, 0 bits) is the
frontier's 0-bit point, in a narrow panel left of the log axis, which cannot place 0. Compressed
predictions (each example's top k logits, or 8-bit values) are a series of their own, each point
tagged with its T, k and bits.

The y axis spans where the comparisons happen: all_reduce's band and every setting within REACH points
of its mean, with a margin. A setting that falls further (DiLoCo at long periods) is a downward
triangle in a shaded strip at the bottom, named with its setting and true top-1 ("DiLoCo H=256: 74.0"),
its curve still running down towards it. Each point is tagged with its knob; where several series
crowd, figures/drawing/layout.py moves the tags apart."""
import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd

from .curves import curves
from .labels import METRIC_LABELS, cfg, number
from .palette import CONTROL as CONTROL_METHOD
from .palette import colour, series_methods, series_styles
from .panels import apply_theme, point_panel, value_band
from .seed_means import SES, last_step

FRONTIER_LABELS = {"allreduce": "all_reduce", "powersgd": "PowerSGD", "localsgd": "local SGD", "diloco": "DiLoCo",
                   "streaming_diloco": "Streaming DiLoCo", "sparseloco": "SparseLoCo", "muloco": "MuLoCo",
                   "independent": "α = 0 control (independent, 0 bits)"}
FRONTIER_KNOBS = {"codistill": ("method.period", "T"), "localsgd": ("method.period", "H"),
                  "diloco": ("method.period", "H"), "streaming_diloco": ("method.period", "H"),
                  "sparseloco": ("method.period", "H"), "muloco": ("method.period", "H"),
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
# all_reduce and the control tune their base LR (the frontier's reference and 0-bit point, tuned alike).
TUNED = {"codistill": ["method.alpha", "method.exchange"], "diloco": ["method.outer_lr", "method.outer_momentum"],
         "localsgd": ["method.warmup_steps"], "powersgd": ["method.start_iter", "method.warm_start"],
         "allreduce": ["schedule.lr.base"], "independent": ["schedule.lr.base"]}
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


SIZE = (9.5, 5.6)   # inches: the two panels (finish() adds the title, legend and footer)
REACH = 2.0    # top-1 points: a setting within this of all_reduce's mean sets the y axis; one further below is off it
PAD = 0.1      # of the range those settings span (their ±1 s.e. bars and all_reduce's band): the margin round them
ROW = 0.08     # of that range: one row of the shaded strip under it where the settings off the scale are marked
OFF_SCALE = "off the scale"   # gid of the strip; each off-scale marker's gid is its series and knob + " " + this


def y_scale(points, reference, reach=REACH):
    """(floor, high) of the top-1 axis: all_reduce's band (reference: its mean, s.e.) and every point
    within REACH of its mean, with their ±1 s.e. bars, span it with a margin, rounded out to 0.1;
    a point below floor is off the scale. None without all_reduce (the axis then spans every point)."""
    if reference is None:
        return None
    mean, se = reference
    shown = points[points["y"] >= mean - reach]
    spread = shown["se"].fillna(0)
    lowest, highest = min(mean - se, (shown["y"] - spread).min()), max(mean + se, (shown["y"] + spread).max())
    margin = max(PAD * (highest - lowest), 0.05)
    return np.floor(round((lowest - margin) * 10, 6)) / 10, np.ceil(round((highest + margin) * 10, 6)) / 10


def off_scale(axes, points, floor, high):
    """Each point below `floor` as a downward triangle in its colour in a shaded strip under the
    range, tagged with its series, knob and true top-1 ("DiLoCo H=256: 74.0"), in the first row of the
    strip (from the top, left to right, the higher top-1 first at one x) where its triangle and tag
    clear those already there. Returns the strip's bottom and {(axis, series, x): the height its
    triangle is drawn at}."""
    renderer = axes[0].figure.canvas.get_renderer()
    unit = ROW * (high - floor)
    spans, placed = {}, []   # spans: (axis, row) -> [(left, right) in pixels]
    for _, point in points[points["y"] < floor].sort_values(["x", "y"], ascending=[True, False]).iterrows():
        ax, name = point["axis"], f"{point['series']} {point['tag']}".strip()
        tag = ax.annotate(f"{name}: {point['y']:.1f}", (point["x"], floor), textcoords="offset points",
                          xytext=(4, 4), fontsize=8, color=point["colour"],
                          bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.7))   # over the curves
        left = ax.transData.transform((point["x"], floor))[0]
        span = (left - 8, left + 8 + 1.15 * tag.get_window_extent(renderer).width)
        row = next(r for r in range(len(points) + 1)
                   if all(span[1] < a or b < span[0] for a, b in spans.get((id(ax), r), [])))
        spans.setdefault((id(ax), row), []).append(span)
        placed.append((ax, point, name, tag, row))
    low = floor - (max(row for *_, row in placed) + 1.35) * unit
    for ax in axes:
        ax.axhspan(low, floor, color="0.5", alpha=0.12, lw=0, zorder=0.4, gid=OFF_SCALE)
    drawn_at = {}
    for ax, point, name, tag, row in placed:
        at = floor - (row + 0.85) * unit
        tag.xy = (point["x"], at)
        ax.plot([point["x"]], [at], marker="v", markersize=7, linestyle="none", color=point["colour"],
                gid=f"{name} {OFF_SCALE}", zorder=3)
        drawn_at[(id(ax), point["series"], point["x"])] = at
    return low, drawn_at


def point_curves_to(ax, series, drawn_at):
    """Each series' curve runs to its points' triangles in the strip (drawn_at, from off_scale) instead
    of off the panel, its circles left on the points within the range."""
    for line in ax.lines:
        if line.get_gid() not in series or not len(line.get_xydata()):
            continue
        y = [drawn_at.get((id(ax), line.get_gid(), x), value) for x, value in line.get_xydata()]
        kept = [i for i, (x, _) in enumerate(line.get_xydata()) if (id(ax), line.get_gid(), x) not in drawn_at]
        line.set_ydata(y)
        line.set_markevery(kept) if kept else line.set_marker("None")


def single_point_knobs(points):
    """{series: its knob} of the series with one point of `points` that has a knob."""
    counts = points.groupby("series")["tag"].agg(["count", "first"])
    return {series: row["first"] for series, row in counts.iterrows() if row["count"] == 1 and row["first"]}


def frontier(data, notes):
    return frontier_figure(last_step(curves(data, label=frontier_label, knob=frontier_knob)), notes, ORDER, CONTROL)


def frontier_figure(frame, notes, order, control_label, reach=REACH, zero_tick="0 bits\n(α = 0\ncontrol)"):
    """The frontier's two panels from each run's final rows (columns label, knob, method,
    bits_per_iteration, val_top1): the 0-bit panel (the runs labelled `control_label`, and any
    setting that sent nothing) and the log-bits panel, series in `order` first; the y axis spans the
    settings within `reach` points of all_reduce."""
    control, rest = frame[frame["label"] == control_label], frame[frame["label"] != control_label]
    # a setting that never communicates (a period beyond the run's length) sends 0 bits: beside the control
    silent, rest = rest[rest["bits_per_iteration"] <= 0], rest[rest["bits_per_iteration"] > 0]
    apply_theme()
    fig, (zero, ax) = plt.subplots(1, 2, figsize=SIZE, sharey=True,
                                   width_ratios=[1.6, 8])
    labels = set(rest["label"]) | set(silent["label"])
    styles = series_styles(series_methods(pd.concat([rest, silent]), "label", order + sorted(labels - set(order))))
    palette = {label: style.colour for label, style in styles.items()}
    means = point_panel(ax, rest, "bits_per_iteration", "val_top1", "label", notes, "knob",
                        series_order=[s for s in palette if s in set(rest["label"])], palette=palette, styles=styles)
    points = [dict(axis=ax, series=p["label"], tag=p["knob"] if pd.notna(p["knob"]) else "", x=p["x"], y=p["y"],
                   se=p["se"], colour=palette[p["label"]]) for _, p in means.iterrows()]
    ax.set_xscale("log")
    ax.set(xlabel="bits sent between servers per update and device (measured)", ylabel=None)
    reference = value_band([zero, ax], rest.loc[rest["label"] == "all_reduce", "val_top1"], colour("allreduce"), BAND)
    if len(control):
        values = control["val_top1"]
        drawn = zero.errorbar([0], [values.mean()], yerr=[values.sem() if len(values) > 1 else 0], fmt="D",
                              capsize=3, color=colour(CONTROL_METHOD),
                              markerfacecolor="white", label=control_label)
        drawn.lines[0].set_gid(control_label)
        points.append(dict(axis=zero, series="α = 0 control", tag="", x=0, y=values.mean(), se=values.sem(),
                           colour=colour(CONTROL_METHOD)))
        notes.record(control, "label")
    else:
        zero.text(0.5, 0.5, "no α = 0\ncontrol runs\nin these logs", ha="center", va="center",
                  transform=zero.transAxes, fontsize=8)
    for offset, ((label, knob), runs) in enumerate(silent.groupby(["label", "knob"], dropna=False), start=1):
        values = runs["val_top1"]
        # a series drawn only here (the tuned control) is named in the legend; the others are on the right
        own = label not in set(rest["label"])
        zero.errorbar([0.4 * offset], [values.mean()], yerr=[values.sem() if len(values) > 1 else 0],
                      fmt=styles[label].marker, capsize=3, color=palette[label], label=label if own else None)
        points.append(dict(axis=zero, series=label, tag=knob if pd.notna(knob) else "", x=0.4 * offset,
                           y=values.mean(), se=values.sem(), colour=palette[label]))
        notes.record(runs, "label")
    if zero.get_legend_handles_labels()[0]:
        zero.legend()
    zero.set_xticks([0], labels=[zero_tick])
    zero.set_xlim(-1, 1 + 0.4 * silent.groupby(["label", "knob"], dropna=False).ngroups)
    zero.set(ylabel=METRIC_LABELS["val_top1"], xlabel=None)
    points = pd.DataFrame(points, columns=["axis", "series", "tag", "x", "y", "se", "colour"]).dropna(subset=["y"])
    scale = y_scale(points, reference, reach)
    floor = -np.inf
    if scale:
        floor, high = scale
        ticks = [t for t in mticker.MaxNLocator(nbins=7, steps=[1, 2, 2.5, 5, 10]).tick_values(floor, high)
                 if floor <= t <= high]
        low, tick_labels = floor, [f"{t:g}" for t in ticks]
        if (points["y"] < floor).any():
            low, drawn_at = off_scale([zero, ax], points, floor, high)
            point_curves_to(ax, set(points["series"]), drawn_at)
            zero.set_yticks([(floor + low) / 2], labels=[f"< {floor:g}"], minor=True)   # a minor tick: no grid line
        zero.set_yticks(ticks, labels=tick_labels)
        zero.set_ylim(low, high)
    single = single_point_knobs(points[points["axis"] == ax])
    for container in ax.containers:   # a series of one point: its knob in its legend entry
        if container.get_label() in single:
            container.set_label(f"{container.get_label()}, {single[container.get_label()]}")
    for _, point in points[(points["y"] >= floor) & (points["tag"] != "")].iterrows():   # the knob beside each point
        if point["axis"] is ax and point["series"] in single:
            continue
        point["axis"].annotate(point["tag"], (point["x"], point["y"]), textcoords="offset points", xytext=(4, 4),
                               fontsize=8 if point["axis"] is ax else 7, color=point["colour"])
    ax.legend()   # the band joins the methods' entries in the legend under the panels
    return fig
