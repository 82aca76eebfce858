"""One colour per kind of arm in every figure, so that a colour names the same arm wherever it is
drawn. A kind is all_reduce, the alpha = 0 control (method independent: the same models trained apart,
no distillation; Anil et al.'s single-model baseline, its ensembles and the frontiers' 0-bit control
are runs of it or stand in for it), each codistillation variant (predictions, checkpoints, compressed
predictions, compressed checkpoints), each baseline (PowerSGD, local SGD, DiLoCo, Streaming DiLoCo,
SparseLoCo, MuLoCo) and Anil et al.'s label smoothing and two-phase distillation.

The ten most common kinds take seaborn's colorblind palette (Okabe-Ito's hues), the four that never
share a figure with most others the darker hues of seaborn's "dark" palette, picked so that no two
kinds drawn together are shades of one hue.

Where a figure shows several series of one kind (schedules, exchange periods, n-way, learning rates,
setups), they keep the kind's colour and differ in line style and marker (series_styles), in the
figure's legend order: the first solid with circles, the next dashed with squares, and so on. The
control's series start dashed with open markers, so that a control reads apart from the arm it
controls where their curves meet."""
from typing import NamedTuple

import seaborn as sns

from .labels import cfg

_COLORBLIND = sns.color_palette("colorblind").as_hex()
_DARK = sns.color_palette("dark").as_hex()
KIND_COLOURS = {
    "allreduce": _COLORBLIND[0],                          # blue
    "independent": _COLORBLIND[7],                        # grey: the alpha = 0 control
    "codistill_predictions": _COLORBLIND[1],              # orange
    "codistill_checkpoints": _COLORBLIND[3],              # vermillion
    "codistill_compressed_predictions": _DARK[9],         # teal: top-k or 8-bit predictions
    "codistill_compressed_checkpoints": _DARK[3],         # dark red: 8/4/2-bit or sparse-delta checkpoints
    "powersgd": _COLORBLIND[2],                           # green
    "localsgd": _COLORBLIND[4],                           # reddish purple
    "diloco": _COLORBLIND[5],                             # tan
    "streaming_diloco": _DARK[0],                         # navy
    "sparseloco": _COLORBLIND[6],                         # pink
    "muloco": _DARK[5],                                   # dark brown
    "label_smoothing": _COLORBLIND[9],                    # sky blue
    "two_phase": _DARK[6],                                # magenta
}
CONTROL = "independent"
NEUTRAL = "0.35"   # a legend entry that names no kind (a budget, a marker fill), grey apart from every kind
# A kind's series in legend order: dash patterns ("" solid; on, off ... in line widths) and markers.
DASHES = ["", (5, 2), (1.5, 1.5), (6, 2, 1.5, 2), (3, 1), (8, 2, 1.5, 2, 1.5, 2), (10, 3)]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">"]
CONTROL_DASHES = DASHES[1]


class Style(NamedTuple):
    colour: str
    dashes: object   # "" (solid) or a dash pattern (on, off, ...)
    marker: str
    hollow: bool     # open markers: the control's


def kind_of(row):
    """The kind of a run's arm (the key of its colour in KIND_COLOURS) from its config columns:
    the method, and for codistillation what it exchanges and whether compressed."""
    name = cfg(row, "method.name")
    if name != "codistill":
        return name
    exchange = cfg(row, "method.exchange", "predictions")
    exchange = "checkpoints" if exchange == "sharded_checkpoints" else exchange   # the same models, sent in shards
    if exchange == "predictions":
        compressed = cfg(row, "method.prediction_topk") is not None or cfg(row, "method.prediction_bits", 32) != 32
    else:
        compressed = (cfg(row, "method.checkpoint_delta_fraction") is not None
                      or cfg(row, "method.checkpoint_bits", 32) != 32)
    return f"codistill_{'compressed_' if compressed else ''}{exchange}"


method_of = kind_of   # the `method` column of the drawing's frames holds the kind


def colour(kind):
    if kind not in KIND_COLOURS:
        raise KeyError(f"no colour for kind of arm {kind!r}: add it to figures/drawing/palette.py KIND_COLOURS")
    return KIND_COLOURS[kind]


def series_styles(kinds):
    """{label: kind} in legend order -> {label: Style}: every label of a kind in the kind's colour, the
    i-th of them in the i-th dash pattern and marker (the control's from the dashed one on, open)."""
    seen, styles = {}, {}
    for label, kind in kinds.items():
        i = seen.get(kind, 0)
        seen[kind] = i + 1
        shift = 1 if kind == CONTROL else 0
        styles[label] = Style(colour(kind), DASHES[(i + shift) % len(DASHES)], MARKERS[i % len(MARKERS)],
                              kind == CONTROL)
    return styles


def series_colours(kinds):
    """{label: kind} -> {label: colour}: the kind's colour for every label of it."""
    return {label: style.colour for label, style in series_styles(kinds).items()}


def series_dashes(kinds):
    """{label: dash pattern}, as series_styles: the labels of one kind apart, the control's dashed."""
    return {label: style.dashes for label, style in series_styles(kinds).items()}


def series_markers(kinds):
    return {label: style.marker for label, style in series_styles(kinds).items()}


def linestyle(dashes):
    """A dash pattern as matplotlib's linestyle argument."""
    return "-" if not dashes else (0, dashes)


def controls(kinds):
    """The labels of {label: kind} that are the alpha = 0 control's."""
    return {label for label, kind in kinds.items() if kind == CONTROL}


def series_methods(frame, hue, order=None, method="method"):
    """{label: kind} of the `hue` labels of `frame` (one row or more per run, with a `method` column
    holding each run's kind), in `order` (labels absent from `frame` left out) or by label."""
    firsts = frame.drop_duplicates(hue).set_index(hue)[method]
    labels = [h for h in (order or sorted(firsts.index, key=str)) if h in firsts.index]
    return {label: firsts[label] for label in labels}
