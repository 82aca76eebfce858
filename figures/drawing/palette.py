"""One colour per method in every figure, from seaborn's colorblind palette: all_reduce blue,
codistillation orange, the alpha = 0 control grey (method independent: the same models trained apart,
no distillation; Anil et al.'s single-model baseline and ensembles of such models are runs of it too),
PowerSGD green, local SGD purple, DiLoCo brown, Streaming DiLoCo vermillion, SparseLoCo pink, MuLoCo
olive; Anil et al.'s label smoothing sky blue and two-phase distillation magenta.

Where a figure shows several series of one method (schedules, exchange periods, n-way, batch sizes,
architectures), they are shades of that method's colour, from the colour itself towards dark, in
the figure's legend order, so that a colour names the method in every figure and its shade the
variant. The control's series are dashed lines and open markers, so that a control reads apart from
the arm it controls where their curves meet."""
import seaborn as sns

from .labels import cfg

_COLORBLIND = sns.color_palette("colorblind").as_hex()
_DARK = sns.color_palette("dark").as_hex()
METHOD_COLOURS = {       # keys: the runs' method.name (cfg), and Anil et al.'s label smoothing
    "allreduce": _COLORBLIND[0],
    "codistill": _COLORBLIND[1],
    "independent": _COLORBLIND[7],
    "powersgd": _COLORBLIND[2],
    "localsgd": _COLORBLIND[4],
    "diloco": _COLORBLIND[5],
    "streaming_diloco": _COLORBLIND[3],
    "sparseloco": _COLORBLIND[6],
    "muloco": _COLORBLIND[8],
    "label_smoothing": _COLORBLIND[9],
    "two_phase": _DARK[6],
}
CONTROL = "independent"
NEUTRAL = "0.35"   # a legend entry that names no method (a budget, a marker fill), grey apart from every method
CONTROL_DASHES = (4, 2)


def method_of(row):
    """The key of a run's colour in METHOD_COLOURS: its method."""
    return cfg(row, "method.name")


def colour(method):
    if method not in METHOD_COLOURS:
        raise KeyError(f"no colour for method {method!r}: add it to figures/drawing/palette.py METHOD_COLOURS")
    return METHOD_COLOURS[method]


def series_colours(methods):
    """{label: method} in legend order -> {label: colour}: a method's first label its colour, its
    further labels darker shades of it (at most two thirds of the way to seaborn's darkest)."""
    by_method = {}
    for label, method in methods.items():
        by_method.setdefault(method, []).append(label)
    colours = {}
    for method, labels in by_method.items():
        shades = sns.dark_palette(colour(method), len(labels) + 2, reverse=True).as_hex()
        colours.update(zip(labels, shades))
    return colours


def controls(methods):
    """The labels of {label: method} that are the alpha = 0 control's."""
    return {label for label, method in methods.items() if method == CONTROL}


def series_dashes(methods):
    """{label: dash pattern}: the control's dashed, every other series solid."""
    return {label: CONTROL_DASHES if method == CONTROL else "" for label, method in methods.items()}


def series_methods(frame, hue, order=None, method="method"):
    """{label: method} of the `hue` labels of `frame` (one row or more per run, with a `method`
    column), in `order` (labels absent from `frame` left out) or by label."""
    firsts = frame.drop_duplicates(hue).set_index(hue)[method]
    labels = [h for h in (order or sorted(firsts.index, key=str)) if h in firsts.index]
    return {label: firsts[label] for label in labels}
