"""What every figure's panels share: one seaborn theme, one colour per method (figures/drawing/palette.py),
means over seeds with a band of ±1 standard error (line_panel) or ±1 s.e. bars on points
(category_points, point_panel), a reference value as a ±1 s.e. band across panels (value_band): one
error convention in every figure, which its footer states (SeedNotes). Curves with few evaluations
carry a marker at each, losses sit on log axes labelled with their unit. figures/drawing/layout.py lays
the finished figure out (legends, title, footer)."""
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from .labels import LOSSES, axis_label
from .log_axis import log_axis
from .palette import NEUTRAL, controls, linestyle, series_methods, series_styles
from .seed_means import SES, aggregate, check_one_run_per_seed

THEME = dict(style="whitegrid", context="paper", palette="colorblind", font_scale=1.1)
FEW_EVALUATIONS = 6   # a curve of at most this many evaluations marks each: a straight segment is no measurement


def apply_theme():
    sns.set_theme(**THEME)


def line_panel(ax, curves, y, hue, notes, hue_order=None, x="step", title=None, task="vision", palette=None,
               dashes=None, markers=None):
    """Mean over seeds with a ±1 standard-error band, one line per `hue` value (colours from `palette`,
    a dict label -> colour, dash patterns from `dashes`, label -> '' or (on, off), and markers from
    `markers` when given; else from the kind of each label's runs, a `method` column, through
    figures/drawing/palette.py's series_styles); a marker at each evaluation of a curve with few of
    them; a loss on a log axis."""
    data = curves.dropna(subset=[y])
    if data.empty:
        ax.text(0.5, 0.5, f"no {y} in these logs", ha="center", va="center", transform=ax.transAxes)
        return
    check_one_run_per_seed(data, [hue, x])
    order = [h for h in (hue_order or sorted(data[hue].unique(), key=str)) if h in set(data[hue])]
    if "method" in data:   # what a caller did not give, from the kinds: one kind's labels apart in style
        styled = series_styles(series_methods(data, hue, order))
        palette = palette or {label: style.colour for label, style in styled.items()}
        dashes = dashes or {label: style.dashes for label, style in styled.items()}
        markers = markers or {label: style.marker for label, style in styled.items()}
    styles = {"style": hue, "style_order": order, "dashes": {h: dashes[h] for h in order}} if dashes else {}
    sns.lineplot(data=data, x=x, y=y, hue=hue, hue_order=order, errorbar="se", ax=ax,
                 palette={h: palette[h] for h in order} if palette else None, **styles)
    tag_lines(ax, order)
    mark_few_evaluations(ax, markers or {})
    notes.record(data, hue)
    ax.set(xlabel=axis_label(x, task), ylabel=axis_label(y, task), title=title)
    if y in LOSSES:
        log_axis(ax)
    if ax.get_legend():
        ax.get_legend().set_title(None)


def tag_lines(ax, names):
    """Names each mean line (gid = its label) and its s.e. band (gid = label + ' s.e.'), matched
    by colour, so that tests and readers can take the plotted numbers back from the figure."""
    lines = [line for line in ax.lines if len(line.get_xydata())]
    for name, line in zip(names, lines):
        line.set_gid(name)
        color = np.array(matplotlib.colors.to_rgb(line.get_color()))
        for band in ax.collections:
            if band.get_gid() is None and np.allclose(band.get_facecolor()[0][:3], color):
                band.set_gid(f"{name} s.e.")
                break


def mark_few_evaluations(ax, markers):
    """A marker at each point of the named curves with at most FEW_EVALUATIONS points: the series'
    own (`markers`, label -> marker), else a circle."""
    set_markers(ax, {line.get_gid(): markers.get(line.get_gid(), "o") for line in ax.lines
                     if line.get_gid() and len(line.get_xydata()) <= FEW_EVALUATIONS})


def set_markers(ax, markers):
    """{label: marker} on the curves named label (their gid) and on seaborn's legend entries for them
    (empty lines labelled label, which the figure's legend is made of)."""
    for line in ax.lines:
        name = line.get_gid() if len(line.get_xydata()) else line.get_label()
        if name in markers:
            line.set_marker(markers[name])
            line.set_markersize(4)


def category_points(ax, finals, x, y, hue, notes, order=None, hue_order=None, palette=None, task="vision",
                    hollow=None, colour_by="hue", markers=None):
    """Mean over seeds of `y` per (`x` category, `hue`) as a point with ±1 standard-error bars, the hues of
    one category side by side (Figs. 6, 16 and fig2_regimes: points, not bars, so that the axis need not
    start at zero and a loss can sit on a log axis). Each point is named `hue|x` (its s.e. bars
    `hue|x s.e.`). Colours from `palette` (hue -> colour, or x category -> colour with
    colour_by="x"), else from the kind of each hue's runs (a `method` column); markers from `markers`
    (hue -> marker), else the hues of one kind apart (figures/drawing/palette.py); hues in `hollow`
    get open markers, by default the alpha = 0 control's. Returns the means, s.e. and seeds."""
    data = finals.dropna(subset=[y])
    stats = aggregate(data, [x, hue], y)
    order = [v for v in (order or sorted(data[x].unique(), key=str))]
    hue_order = [h for h in (hue_order or sorted(data[hue].unique(), key=str)) if h in set(data[hue])]
    methods = series_methods(data, hue, hue_order) if "method" in data else {}
    styled = series_styles(methods)
    colors = (palette or {label: style.colour for label, style in styled.items()}
              or dict(zip(hue_order, sns.color_palette(n_colors=max(len(hue_order), 1)))))
    markers = markers or {label: style.marker for label, style in styled.items()}
    hollow = controls(methods) if hollow is None else hollow
    width = 0.7 / max(len(hue_order), 1)   # the hues of a category share 0.7 of the unit between categories
    for i, name in enumerate(hue_order):
        rows = stats[stats[hue] == name]
        for _, row in rows.iterrows():
            if row[x] not in order:
                continue
            position = order.index(row[x]) + (i - (len(hue_order) - 1) / 2) * width
            drawn = ax.errorbar([position], [row["mean"]], yerr=[0 if pd.isna(row["se"]) else row["se"]],
                                fmt=markers.get(name, "o"),
                                capsize=3, color=colors[row[x] if colour_by == "x" else name],
                                markerfacecolor="white" if name in hollow else None,
                                label=name if row[x] == rows[x].iloc[0] and colour_by == "hue" else None)
            drawn.lines[0].set_gid(f"{name}|{row[x]}")
            drawn.lines[2][0].set_gid(f"{name}|{row[x]} s.e.")
    ax.set_xticks(range(len(order)), labels=order)
    ax.set_xlim(-0.5, len(order) - 0.5)
    if y in LOSSES:
        log_axis(ax)
    notes.record(data, [x, hue])
    ax.set(xlabel=None, ylabel=axis_label(y, task))
    if hue_order and colour_by == "x":   # the colour names the category: the legend shows each hue in grey
        ax.legend(handles=[Line2D([], [], marker=markers.get(name, "o"), linestyle="none", color=NEUTRAL, label=name,
                                  markerfacecolor="white" if name in hollow else NEUTRAL) for name in hue_order])
    elif hue_order:
        ax.legend()
    return stats


def value_band(axes, values, color, label, ses=SES, alpha=0.18, linestyle=":"):
    """A reference value across panels: the mean of `values` (one per seed) as a line and mean ±
    `ses` standard errors as a band, on every axis of `axes` (label and gid `label`); returns
    (mean, s.e.), or None without values."""
    if len(values) == 0:
        return None
    mean, se = values.mean(), values.sem() if len(values) > 1 else 0.0
    for ax in axes:
        ax.axhspan(mean - ses * se, mean + ses * se, color=color, alpha=alpha, lw=0, zorder=0.5, label=label, gid=label)
        ax.axhline(mean, color=color, lw=0.8, ls=linestyle, zorder=0.6)
    return mean, se


def point_panel(ax, finals, x, y, series, notes, point_key, annotate=None, series_order=None, palette=None,
                styles=None):
    """Mean (x, y) over seeds of each (series, point_key) with ±1 standard-error bars on y; the points
    of a series are joined in x order and, with `annotate(point_key value)`, tagged (Fig. 1: each
    point is one exchange period). Colours from `palette` (label -> colour) when given, line styles and
    markers from `styles` (label -> palette.Style); else both from the kind of each series' runs (a
    `method` column, figures/drawing/palette.py's series_styles)."""
    keys = [series, point_key]
    check_one_run_per_seed(finals, keys)
    # dropna=False: a series without the point key (all_reduce has no exchange period) is one point.
    agg = finals.groupby(keys, sort=False, dropna=False).agg(x=(x, "mean"), y=(y, "mean"), se=(y, "sem"),
                                                             seeds=("seed", "nunique")).reset_index()
    order = [s for s in (series_order or sorted(agg[series].unique())) if s in set(agg[series])]
    if styles is None and "method" in finals:
        styles = series_styles(series_methods(finals, series, order))
    if palette is None and styles:
        palette = {label: style.colour for label, style in styles.items()}
    styles = styles or {}
    colors = [palette[name] for name in order] if palette else sns.color_palette(n_colors=max(len(order), 1))
    for color, name in zip(colors, order):
        points = agg[agg[series] == name].sort_values("x")
        style = styles.get(name)
        drawn = ax.errorbar(points["x"], points["y"], yerr=points["se"].fillna(0), capsize=3, color=color, label=name,
                            marker=style.marker if style else "o",
                            linestyle=linestyle(style.dashes) if style else "-",
                            markerfacecolor="white" if style and style.hollow else None)
        drawn.lines[0].set_gid(name)
        for _, point in points.iterrows():
            if annotate and pd.notna(point[point_key]):
                ax.annotate(annotate(point[point_key]), (point["x"], point["y"]), textcoords="offset points",
                            xytext=(4, 4), fontsize=8, color=color)
    notes.record(finals, series)
    ax.legend()
    return agg


MIN_WIDTH = 7.5   # inches: a single panel as wide as a two-line title needs


def new_figure(n_panels, width=5.2, height=4.0):
    """n panels side by side, each `width` wide; `height` is the panels' own height (finish() adds
    the title, the legend and the footer above and below it)."""
    apply_theme()
    fig, axes = plt.subplots(1, n_panels, figsize=(max(width * n_panels, MIN_WIDTH), height), squeeze=False)
    return fig, list(axes[0])


def message_figure(title, message):
    """What is drawn for an id whose runs are not in the logs: the reason, never invented data."""
    apply_theme()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    fig.suptitle(title, fontsize=11)
    return fig
