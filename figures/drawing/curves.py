"""Curves of an id's runs, named from their config columns: per-run means over models at each
evaluation with label columns, and the generic figure most ids are drawn as (one panel per metric
and facet value, one line per label, mean over seeds with a standard-error band). Series are named
from the runs' config columns (cfg.*), so mini and paper sweeps that differ in workload or in some
values (e.g. exchange periods) are drawn the same way and labelled with what the logs say."""
import pandas as pd

from .labels import ARCH_NAMES, cfg
from .palette import method_of
from .panels import line_panel, new_figure
from .seed_means import per_run

CURVE_METRICS = ["train_loss", "val_top1", "val_top1_mean_over_models", "val_nll", "param_distance_from_init",
                 "bits_per_iteration", "batch_per_model", "epoch"]


def with_labels(records, **labels):
    """Adds per-run label columns, each computed once per run from its config columns."""
    runs = records.drop_duplicates("run_id").set_index("run_id")
    return records.assign(**{column: records["run_id"].map({rid: fn(row) for rid, row in runs.iterrows()})
                             for column, fn in labels.items()})


def evals(data):
    return data.records[data.records["kind"] == "eval"]


def curves(data, **labels):
    """Per-run means over models at each evaluation, with label columns; `method` (what picks a
    series' colour, figures/drawing/palette.py) is the run's method unless a label says otherwise."""
    labels = {"method": method_of, **labels}
    records = with_labels(evals(data), **labels)
    return per_run(records, CURVE_METRICS, extra=tuple(labels))


def label_order(frame, column, key):
    """Label values of `column` sorted by a numeric config value of their runs."""
    firsts = frame.drop_duplicates(column)
    return list(firsts.sort_values(key, key=lambda v: pd.to_numeric(v, errors="coerce"))[column])


def facet_order(value):
    """Architectures from the smallest (as the paper's panels), anything else by its text."""
    return (list(ARCH_NAMES).index(value), "") if value in ARCH_NAMES else (len(ARCH_NAMES), str(value))


def curve_figure(data, label, panels, notes, order=None, facet=None, facet_name=str, order_by=None):
    """One panel per (metric, facet value): mean over seeds of each label's curve with an s.e. band.
    Labels come in `order`, or sorted by the number order_by(run) when it is given."""
    extra = {"facet": lambda row: cfg(row, facet)} if facet else {}
    frame = curves(data, label=label, **extra, **({"order_by": order_by} if order_by else {}))
    if order_by:
        order = label_order(frame, "label", "order_by")
    facets = sorted(frame["facet"].unique(), key=facet_order) if facet else [None]
    fig, axes = new_figure(len(panels) * len(facets))
    ax_iter = iter(axes)
    for metric, title in panels:
        for value in facets:
            part = frame if value is None else frame[frame["facet"] == value]
            name = f"{title} — {facet_name(value)}" if value is not None else title
            line_panel(next(ax_iter), part, metric, "label", notes, order, title=name, task=data.task)
    return fig
