"""What every figure shares: one seaborn theme, means over seeds with a standard-error band (or
bar), and a record of how many seeds each plotted series has, so that a figure drawn from fewer
than three seeds says so on the figure."""
import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
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
    "param_distance_from_init": "distance from initialisation ||θ - θ₀||",
    "bleu": "BLEU",
    "step": "updates per model",
}


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


def line_panel(ax, curves, y, hue, notes, hue_order=None, x="step", title=None):
    """Mean over seeds with a standard-error band, one line per `hue` value."""
    data = curves.dropna(subset=[y])
    if data.empty:
        ax.text(0.5, 0.5, f"no {y} in these logs", ha="center", va="center", transform=ax.transAxes)
        return
    check_one_run_per_seed(data, [hue, x])
    order = [h for h in (hue_order or sorted(data[hue].unique(), key=str)) if h in set(data[hue])]
    sns.lineplot(data=data, x=x, y=y, hue=hue, hue_order=order, errorbar="se", ax=ax)
    tag_lines(ax, order)
    notes.record(data, hue)
    ax.set(xlabel=METRIC_LABELS.get(x, x), ylabel=METRIC_LABELS.get(y, y), title=title)
    if ax.get_legend():
        ax.get_legend().set_title(None)
        plt.setp(ax.get_legend().get_texts(), fontsize="small")


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


def bar_panel(ax, finals, x, y, hue, notes, order=None, hue_order=None, title=None, zoom=False):
    """Mean over seeds as bars with black standard-error lines (Figs. 6 and 16)."""
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
    notes.record(data, [x, hue])
    ax.set(xlabel=None, ylabel=METRIC_LABELS.get(y, y), title=title)
    if ax.get_legend():
        ax.get_legend().set_title(None)


def point_panel(ax, finals, x, y, series, notes, point_key, annotate=None, series_order=None):
    """Mean (x, y) over seeds of each (series, point_key) with standard-error bars on y; the points
    of a series are joined in x order and, with `annotate(point_key value)`, tagged (Fig. 1: each
    point is one exchange period)."""
    keys = [series, point_key]
    check_one_run_per_seed(finals, keys)
    # dropna=False: a series without the point key (all_reduce has no exchange period) is one point.
    agg = finals.groupby(keys, sort=False, dropna=False).agg(x=(x, "mean"), y=(y, "mean"), se=(y, "sem"),
                                                             seeds=("seed", "nunique")).reset_index()
    order = [s for s in (series_order or sorted(agg[series].unique())) if s in set(agg[series])]
    palette = sns.color_palette(n_colors=max(len(order), 1))
    for color, name in zip(palette, order):
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


def new_figure(n_panels, width=5.2, height=4.0):
    apply_theme()
    fig, axes = plt.subplots(1, n_panels, figsize=(width * n_panels, height), squeeze=False)
    return fig, list(axes[0])


def finish(fig, title, scale_note, notes_text, status_text):
    """Title with the scale the logs say, and a footer with the seeds and what was not plotted."""
    width, height = fig.get_size_inches()
    heading = "\n".join(textwrap.fill(line, width=int(width * 11)) for line in (title, scale_note))
    fig.suptitle(heading, fontsize=11)
    footer = "\n".join(textwrap.fill(part, width=int(width * 17)) for part in (notes_text, status_text) if part)
    fig.text(0.01, 0.01, footer, fontsize=8, ha="left", va="bottom")
    footer_height = (footer.count("\n") + 1) * 8 * 1.35 / 72 + 0.1   # inches
    heading_height = (heading.count("\n") + 1) * 11 * 1.3 / 72 + 0.1   # inches
    fig.tight_layout(rect=(0, footer_height / height, 1, 1 - heading_height / height))
    return fig


def message_figure(title, message):
    """What is drawn for an id whose runs are not in the logs: the reason, never invented data."""
    apply_theme()
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10)
    fig.suptitle(title, fontsize=11)
    return fig
