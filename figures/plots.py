"""What every figure shares: one seaborn theme, means over seeds with a standard-error band (or
bar), losses on log axes labelled with their unit, one legend under the panels (never over data),
a title and footer measured into the figure's height, and a record of how many seeds each plotted
series has, so that a figure drawn from fewer than three seeds says so on the figure."""
import math
import textwrap

import matplotlib
import matplotlib.container
import matplotlib.patches

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

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
    linear axis) in a range too narrow for any of these."""
    SUBS = ((1.0, 2.0, 5.0), (1.0,), tuple(float(i) for i in range(1, 10)))
    MIN_TICKS = 4   # labelled ticks inside the range: with fewer a reader cannot interpolate

    def __call__(self):
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, vmin, vmax):
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
        return ticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)


def log_axis(ax, which="y"):
    """A log scale whose ticks read as plain numbers (0.05, 2, 3), chosen from the data's range."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    getattr(ax, f"set_{which}scale")("log")
    axis.set_major_locator(PlainLogLocator())
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


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


def line_panel(ax, curves, y, hue, notes, hue_order=None, x="step", title=None, task="vision", palette=None):
    """Mean over seeds with a standard-error band, one line per `hue` value (colours from `palette`,
    a dict label -> colour, when given); a loss on a log axis."""
    data = curves.dropna(subset=[y])
    if data.empty:
        ax.text(0.5, 0.5, f"no {y} in these logs", ha="center", va="center", transform=ax.transAxes)
        return
    check_one_run_per_seed(data, [hue, x])
    order = [h for h in (hue_order or sorted(data[hue].unique(), key=str)) if h in set(data[hue])]
    sns.lineplot(data=data, x=x, y=y, hue=hue, hue_order=order, errorbar="se", ax=ax,
                 palette={h: palette[h] for h in order} if palette else None)
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


def tag_bars(ax, order, hue_order):
    """Names each bar `hue|x` and its black s.e. line `hue|x s.e.` (matched by the bar's centre)."""
    for hue_value, container in zip(hue_order, ax.containers):
        for patch in container.patches:
            center = patch.get_x() + patch.get_width() / 2
            slot = int(round(center))
            patch.set_gid(f"{hue_value}|{order[slot] if 0 <= slot < len(order) else None}")
            for line in ax.lines:
                xs = np.asarray(line.get_xdata(), dtype=float)
                xs = xs[np.isfinite(xs)]
                if line.get_gid() is None and len(xs) and abs(xs.mean() - center) < 1e-6:
                    line.set_gid(f"{patch.get_gid()} s.e.")


def bar_panel(ax, finals, x, y, hue, notes, order=None, hue_order=None, title=None, zoom=False, task="vision"):
    """Mean over seeds as bars with black standard-error lines (Figs. 6 and 16); `zoom` starts the
    axis near the lowest bar; a loss is drawn on a log axis spanning its bars."""
    data = finals.dropna(subset=[y])
    check_one_run_per_seed(data, [x, hue])
    order = [v for v in (order or sorted(data[x].unique(), key=str)) if v in set(data[x])]
    hue_order = [h for h in (hue_order or sorted(data[hue].unique(), key=str)) if h in set(data[hue])]
    sns.barplot(data=data, x=x, y=y, hue=hue, order=order, hue_order=hue_order, errorbar="se",
                capsize=0.15, err_kws={"color": "black", "linewidth": 1.2}, ax=ax)
    tag_bars(ax, order, hue_order)
    if zoom:   # differences of a few points of top-1 are invisible on bars that start at 0
        low = min(p.get_height() for p in ax.patches if p.get_height() > 0)
        high = max(p.get_height() for p in ax.patches)
        span = max(high - low, 1.0)
        ax.set_ylim(max(0.0, low - 0.6 * span), min(100.0, high + 0.3 * span))
    if y in LOSSES:
        heights = [p.get_height() for p in ax.patches if p.get_height() > 0]
        ratio = max(heights) / min(heights) if heights else 1.0
        if heights:   # the bars' range and a third of it again (in log terms) each side, at least x 1.5
            margin = max(ratio ** (1 / 3), 1.5)
            ax.set_ylim(min(heights) / margin, max(heights) * margin)
        log_axis(ax)
    notes.record(data, [x, hue])
    ax.set(xlabel=None, ylabel=axis_label(y, task), title=title)
    if ax.get_legend():
        ax.get_legend().set_title(None)


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


def handle_color(handle):
    """The colour a legend entry shows: a line's, a bar's face, or an error bar's line."""
    if isinstance(handle, matplotlib.container.ErrorbarContainer):
        handle = handle.lines[0]
    if isinstance(handle, matplotlib.patches.Patch):
        return matplotlib.colors.to_hex(handle.get_facecolor())
    return matplotlib.colors.to_hex(handle.get_color())


def legend_entries(ax):
    """(label, handle) of each entry of the panel's legend, the handle being the plotted artist."""
    legend = ax.get_legend()
    if legend is None:
        return []
    plotted = dict(zip(*reversed(ax.get_legend_handles_labels())))
    return [(text.get_text(), plotted.get(text.get_text(), shown))
            for text, shown in zip(legend.get_texts(), legend.legend_handles)]


def figure_legend(fig, entries):
    """One legend for the whole figure, in as few balanced rows as fit its width."""
    renderer = fig.canvas.get_renderer()
    labels, handles = [label for label, _ in entries], [handle for _, handle in entries]
    for columns in range(len(entries), 0, -1):
        legend = fig.legend(handles, labels, loc="lower center", ncol=columns, fontsize="small", frameon=False)
        fits = legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width
        legend.remove()
        if fits or columns == 1:
            rows = math.ceil(len(entries) / columns)
            return fig.legend(handles, labels, loc="lower center", ncol=math.ceil(len(entries) / rows),
                              fontsize="small", frameon=False)


def gather_legends(fig):
    """Legends never cover data: the panels' legends become one legend under the panels when each label
    has one colour in every panel; otherwise each panel's legend moves to its right. Returns the figure
    legend, or None."""
    per_axes = [(ax, legend_entries(ax)) for ax in fig.axes]
    per_axes = [(ax, entries) for ax, entries in per_axes if entries]
    colours = {}
    for _, entries in per_axes:
        for label, handle in entries:
            colours.setdefault(label, set()).add(handle_color(handle))
    if not per_axes:
        return None
    if all(len(shown) == 1 for shown in colours.values()):
        union = {}
        for _, entries in per_axes:
            for label, handle in entries:
                union.setdefault(label, handle)
        for ax, _ in per_axes:
            ax.get_legend().remove()
        return figure_legend(fig, list(union.items()))
    for ax, entries in per_axes:
        ax.legend([h for _, h in entries], [label for label, _ in entries], loc="upper left",
                  bbox_to_anchor=(1.02, 1.0), fontsize="small", borderaxespad=0.0)
    return None


def finish(fig, title, scale_note, notes_text, status_text):
    """Title with the scale the logs say, the panels, one legend under them, and a footer with the
    seeds and what was not plotted. The figure grows by the measured height of the title, legend and
    footer, so the panels keep the height they were made with."""
    width, panels_height = fig.get_size_inches()
    pad = 0.08   # inches between the blocks
    heading = "\n".join(textwrap.fill(line, width=int(width * 11)) for line in (title, scale_note))
    footer = "\n".join(textwrap.fill(part, width=int(width * 17)) for part in (notes_text, status_text) if part)
    title_text = fig.suptitle(heading, fontsize=11, va="top")
    footer_text = fig.text(0.01, 0.0, footer, fontsize=8, ha="left", va="bottom")
    legend = gather_legends(fig)
    renderer = fig.canvas.get_renderer()

    def inches(artist):
        return artist.get_window_extent(renderer).height / fig.dpi if artist is not None else 0.0

    top = inches(title_text) + 2 * pad
    footer_height = inches(footer_text) + pad if footer else 0.0
    bottom = footer_height + (inches(legend) + pad if legend else 0.0) + pad
    height = panels_height + top + bottom
    fig.set_size_inches(width, height)
    title_text.set_y(1 - pad / height)
    footer_text.set_y(pad / height)
    if legend:
        legend.set_bbox_to_anchor((0.5, (footer_height + pad) / height), transform=fig.transFigure)
    title_text.set_in_layout(False)   # tight_layout would reserve its height a second time
    fig.tight_layout(rect=(0, bottom / height, 1, 1 - top / height), pad=0.4)
    return fig


def message_figure(title, message):
    """What is drawn for an id whose runs are not in the logs: the reason, never invented data."""
    apply_theme()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    fig.suptitle(title, fontsize=11)
    return fig
