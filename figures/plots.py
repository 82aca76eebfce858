"""What every figure shares: one seaborn theme, means over seeds with a standard-error band (or
error bars on points), losses on log axes labelled with their unit and ticks that cover the data,
and a record of how many seeds each plotted series has, so that a figure drawn from fewer than three
seeds says so on the figure. figures/layout.py lays the finished figure out (legends, title, footer)."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .layout import finish, gather_legends, keep_panel_legends  # noqa: E402,F401  (drawing functions import them here)

THEME = dict(style="whitegrid", context="paper", palette="colorblind", font_scale=1.1)
MIN_SEEDS = 3
ARCH_NAMES = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "resnext101_32x8d": "ResNeXt-101"}
METRIC_LABELS = {
    "train_loss": "training loss",
    "val_top1": "top-1 validation accuracy (%)",
    "val_top1_mean_over_models": "mean top-1 over models (%)",
    "val_nll": "validation NLL",
    "val_loss": "validation loss",
    "param_distance_from_init": "‖θ − θ₀‖₂ (L2 norm over all weights)",
    "bleu": "BLEU",
    "step": "updates per model",
    "epoch": "epochs",
}
LOSSES = {"train_loss", "val_nll", "val_loss"}    # drawn on a log axis, labelled with their unit
# vision: mean cross-entropy per sample, natural log; translation (fairseq): NLL per target token, log base 2
LOSS_UNITS = {"vision": "cross-entropy, nats", "translation": "bits per token"}


def axis_label(metric, task="vision"):
    """A metric's axis label; a loss names its unit, which depends on the task (vision or translation)."""
    label = METRIC_LABELS.get(metric, metric)
    return f"{label} ({LOSS_UNITS[task]})" if metric in LOSSES else label


class PlainLogLocator(ticker.Locator):
    """Ticks of a log axis chosen at draw time from the range shown: 1-2-5 per decade, decades only
    when those are too many, every integer multiple when too few, and evenly spaced values (as on a
    linear axis) in a range too narrow for any of these. Autoscaled limits end on a tick at or beyond
    the data (view_limits), so that the labelled ticks cover the data."""
    SUBS = ((1.0, 2.0, 5.0), (1.0,), tuple(float(i) for i in range(1, 10)))
    MIN_TICKS = 4   # labelled ticks inside the range: with fewer a reader cannot interpolate
    MAX_WASTE = 0.15   # share of the axis (in log terms) that widening it to the enclosing ticks may add

    def __init__(self):
        self.chosen = None   # (low, high, ticks) that view_limits settled on

    def __call__(self):
        low, high = sorted(self.axis.get_view_interval())
        if self.chosen and np.allclose(self.chosen[:2], (low, high), rtol=1e-9):
            return self.chosen[2]
        return self.tick_values(low, high)

    def tick_values(self, vmin, vmax, nbins=6):
        low, high = sorted((vmin, vmax))
        if low <= 0:   # no positive range to choose from: matplotlib's own choice
            return ticker.LogLocator(base=10).tick_values(vmin, vmax)
        decades = np.arange(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for subs in self.SUBS:
            ticks = np.array([sub * 10.0 ** decade for decade in decades for sub in subs])
            if self.MIN_TICKS <= ((ticks >= low) & (ticks <= high)).sum() <= 10:
                return ticks
        if high / low > 10:   # too many decades for a tick at each
            return ticker.LogLocator(base=10, numticks=8).tick_values(low, high)
        return ticker.MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)

    def view_limits(self, vmin, vmax):
        """The nearest ticks at or beyond the data; of the tick spacings tried, the first that widens
        the axis by at most MAX_WASTE (else the one that widens it least)."""
        low, high = sorted((vmin, vmax))
        if low <= 0:
            return vmin, vmax
        low, high = self.without_margin(low, high)
        best = None
        for nbins in (6, 8, 10, 12):
            ticks = np.asarray(self.tick_values(low, high, nbins))
            below, above = ticks[ticks <= low * (1 + 1e-9)], ticks[ticks >= high * (1 - 1e-9)]
            if not (len(below) and len(above)) or below.max() <= 0:
                continue
            start, stop = below.max(), above.min()
            waste = 1 - math.log(high / low) / math.log(stop / start) if high > low else 0.0
            if best is None or waste < best[0]:
                best = (waste, start, stop, ticks[(ticks >= start) & (ticks <= stop)])
            if waste <= self.MAX_WASTE:
                break
        if best is None:
            return vmin, vmax
        self.chosen = best[1:]
        return best[1], best[2]

    def without_margin(self, low, high):
        """The data's range inside autoscaled limits: matplotlib adds its margin (a share of the log
        range each side) before asking for view limits, and ticks enclosing the margin would waste up to
        a decade of the panel."""
        if self.axis is None or high <= low:
            return low, high
        margins = dict(zip("xy", self.axis.axes.margins()))
        share = margins.get(self.axis.axis_name, 0.0)
        cut = math.log(high / low) * share / (1 + 2 * share)
        return low * math.exp(cut), high / math.exp(cut)


def log_axis(ax, which="y"):
    """A log scale whose ticks read as plain numbers (0.05, 2, 3), chosen from the data's range."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    getattr(ax, f"set_{which}scale")("log")
    axis.set_major_locator(PlainLogLocator())
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())
    if getattr(ax, f"get_autoscale{which}_on")():   # set_*scale autoscaled with the old locator; again, to end on its ticks
        ax.autoscale(enable=True, axis=which)


def apply_theme():
    sns.set_theme(**THEME)


def cfg(row, key, default=None):
    """A run's config value `key` (dotted, without the cfg. prefix) from a collected row."""
    value = row.get(f"cfg.{key}", default)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return value


def number(value):
    """1.0 -> '1', 0.125 -> '0.125': config numbers as a reader writes them."""
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def arch_name(arch):
    return ARCH_NAMES.get(arch, arch)


class SeedNotes:
    """Seeds behind each plotted series: the footer of a figure."""

    def __init__(self):
        self.seeds = {}

    def record(self, frame, series):
        """frame: the plotted rows (one per run and x); series: the column(s) naming a series."""
        for name, rows in frame.groupby(series, sort=False):
            key = " / ".join(map(str, name)) if isinstance(name, tuple) else str(name)
            self.seeds[key] = min(self.seeds.get(key, math.inf), rows["seed"].nunique())

    def fewest(self):
        return min(self.seeds.values()) if self.seeds else 0

    def text(self):
        """'mean ± s.e. over 3 seeds', and which series have fewer than three, grouped by count."""
        if not self.seeds:
            return "no series plotted"
        fewest, most = self.fewest(), max(self.seeds.values())
        line = f"mean ± s.e. over {fewest} seed{'s' if fewest != 1 else ''}" if fewest == most else \
            f"mean ± s.e. over {fewest}-{most} seeds"
        short = sorted({v for v in self.seeds.values() if v < MIN_SEEDS})
        if short:
            groups = []
            for count in short:
                names = [k for k, v in self.seeds.items() if v == count]
                which = "every series" if len(names) == len(self.seeds) else ", ".join(names)
                groups.append(f"{count} seed{'s' if count != 1 else ''}: {which}")
            line += "; FEWER THAN 3 SEEDS (" + "; ".join(groups) + ")"
        return line


def per_run(records, metrics, keys=("step",), extra=()):
    """Mean over a run's models of `metrics` at each `keys` value: one row per run (= seed) and
    step. `extra` are per-run columns carried along (labels, config values)."""
    metrics = [m for m in metrics if m in records.columns]
    group = ["run_id", "seed", "setting", *extra, *keys]
    return records.groupby(group, as_index=False, dropna=False)[metrics].mean()


def last_step(curves):
    """Each run's rows at its last evaluation."""
    return curves[curves["step"] == curves.groupby("run_id")["step"].transform("max")]


def check_one_run_per_seed(frame, keys):
    """A plotted point must average one run per seed; two runs of one seed under one label means
    the label merges different settings, which would be averaged silently."""
    counts = frame.groupby([*keys, "seed"], dropna=False)["run_id"].nunique()
    merged = counts[counts > 1]
    if len(merged):
        where = merged.index[0]
        settings = frame.set_index([*keys, "seed"]).loc[where, "setting"]
        raise ValueError(f"label {where[:-1]} merges different settings: {sorted(set(settings))}")


def aggregate(frame, keys, value):
    """Mean, standard error (sample s.d. / sqrt(n)) and number of seeds of `value` per `keys`."""
    check_one_run_per_seed(frame, keys)
    grouped = frame.groupby(list(keys), sort=False, dropna=False)[value]
    out = grouped.agg(mean="mean", se="sem", seeds="count").reset_index()
    return out


def line_panel(ax, curves, y, hue, notes, hue_order=None, x="step", title=None, task="vision", palette=None,
               dashes=None):
    """Mean over seeds with a standard-error band, one line per `hue` value (colours from `palette`,
    a dict label -> colour, and dash patterns from `dashes`, label -> '' or (on, off), when given);
    a loss on a log axis."""
    data = curves.dropna(subset=[y])
    if data.empty:
        ax.text(0.5, 0.5, f"no {y} in these logs", ha="center", va="center", transform=ax.transAxes)
        return
    check_one_run_per_seed(data, [hue, x])
    order = [h for h in (hue_order or sorted(data[hue].unique(), key=str)) if h in set(data[hue])]
    styles = {"style": hue, "style_order": order, "dashes": {h: dashes[h] for h in order}} if dashes else {}
    sns.lineplot(data=data, x=x, y=y, hue=hue, hue_order=order, errorbar="se", ax=ax,
                 palette={h: palette[h] for h in order} if palette else None, **styles)
    tag_lines(ax, order)
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


def category_points(ax, finals, x, y, hue, notes, order=None, hue_order=None, palette=None, task="vision",
                    hollow=()):
    """Mean over seeds of `y` per (`x` category, `hue`) as a point with standard-error bars, the hues of
    one category side by side (Figs. 6, 16 and fig2_regimes: points, not bars, so that the axis need not
    start at zero and a loss can sit on a log axis). Each point is named `hue|x` (its s.e. bars
    `hue|x s.e.`); hues in `hollow` get open markers. Returns the means, s.e. and seeds."""
    data = finals.dropna(subset=[y])
    stats = aggregate(data, [x, hue], y)
    order = [v for v in (order or sorted(data[x].unique(), key=str))]
    hue_order = [h for h in (hue_order or sorted(data[hue].unique(), key=str)) if h in set(data[hue])]
    colors = palette or dict(zip(hue_order, sns.color_palette(n_colors=max(len(hue_order), 1))))
    width = 0.7 / max(len(hue_order), 1)   # the hues of a category share 0.7 of the unit between categories
    for i, name in enumerate(hue_order):
        rows = stats[stats[hue] == name]
        for _, row in rows.iterrows():
            if row[x] not in order:
                continue
            position = order.index(row[x]) + (i - (len(hue_order) - 1) / 2) * width
            drawn = ax.errorbar([position], [row["mean"]], yerr=[0 if pd.isna(row["se"]) else row["se"]], fmt="o",
                                capsize=3, color=colors[name], markerfacecolor="white" if name in hollow else None,
                                label=name if row[x] == rows[x].iloc[0] else None)
            drawn.lines[0].set_gid(f"{name}|{row[x]}")
            drawn.lines[2][0].set_gid(f"{name}|{row[x]} s.e.")
    ax.set_xticks(range(len(order)), labels=order)
    ax.set_xlim(-0.5, len(order) - 0.5)
    if y in LOSSES:
        log_axis(ax)
    notes.record(data, [x, hue])
    ax.set(xlabel=None, ylabel=axis_label(y, task))
    if hue_order:
        ax.legend()
    return stats


def value_band(axes, values, color, label, ses=2, alpha=0.18, linestyle=":"):
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


def point_panel(ax, finals, x, y, series, notes, point_key, annotate=None, series_order=None, palette=None):
    """Mean (x, y) over seeds of each (series, point_key) with standard-error bars on y; the points
    of a series are joined in x order and, with `annotate(point_key value)`, tagged (Fig. 1: each
    point is one exchange period). Colours from `palette` (label -> colour) when given."""
    keys = [series, point_key]
    check_one_run_per_seed(finals, keys)
    # dropna=False: a series without the point key (all_reduce has no exchange period) is one point.
    agg = finals.groupby(keys, sort=False, dropna=False).agg(x=(x, "mean"), y=(y, "mean"), se=(y, "sem"),
                                                             seeds=("seed", "nunique")).reset_index()
    order = [s for s in (series_order or sorted(agg[series].unique())) if s in set(agg[series])]
    colors = [palette[name] for name in order] if palette else sns.color_palette(n_colors=max(len(order), 1))
    for color, name in zip(colors, order):
        points = agg[agg[series] == name].sort_values("x")
        drawn = ax.errorbar(points["x"], points["y"], yerr=points["se"].fillna(0), marker="o", capsize=3,
                            color=color, label=name)
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
