"""The frontier at 8 servers (beyond the paper; sweep frontier8, in the regime of sweep frontier_regime
where training apart costs clearly): all_reduce over 8 servers against 8 models or groups that exchange
predictions, checkpoints (whole, 8-bit, 4-bit, sparse deltas), averaged parameters (local SGD, DiLoCo)
or compressed outer gradients (SparseLoCo, MuLoCo), and PowerSGD; each method at its tuned base LR
(seeds 3-5), the 0-bit point the tuned control (8 groups that never communicate).

- frontier8: final top-1 against bits per update, as the frontier (figures/drawing/frontier.py).
- frontier8_curves: top-1 against the bits each device has sent in all (MuLoCo's Fig. 1 reads its
  methods so): one curve per method at its setting that reaches 99 % of all_reduce's final top-1 with
  the fewest bits (the best final top-1 where none does), all_reduce's final top-1 and 99 % of it,
  and the control's final top-1; the panel's title says which methods reach 99 % and which are
  drawn at their best final top-1 instead (curves_title).
- frontier8_bits: the table of bits to those targets per method and setting, read from each setting's
  seed-mean curve (figures/claims/to_target.py, the reading the claims use)."""
import dataclasses
import math

import matplotlib.pyplot as plt
import pandas as pd

from ..logs.to_target import curves as bit_curves
from ..logs.to_target import targets, to_target
from .curves import curves, evals, with_labels
from .frontier import FRONTIER_LABELS, frontier_figure, frontier_knob
from .labels import METRIC_LABELS, cfg, number
from .palette import CONTROL as CONTROL_METHOD
from .palette import DASHES, colour, kind_of, linestyle, series_methods, series_styles
from .panels import apply_theme
from .seed_means import last_step

CONTROL = "tuned 0-bit control (8 groups apart)"
TUNED_SEEDS = (3, 4, 5)   # each method at its tuned base LR (sweeps/frontier8.yaml); all_reduce too where it has them
ORDER = ["all_reduce", "codistillation, predictions", "codistillation, checkpoints",
         "codistillation, 8-bit checkpoints", "codistillation, 4-bit checkpoints",
         "codistillation, 1 % checkpoint deltas", "PowerSGD", "local SGD", "DiLoCo", "SparseLoCo", "MuLoCo"]
METRIC = "val_top1"
SHARES = (1.0, 0.99)   # the targets: all_reduce's final top-1 and 99 % of it
REACH = 6.0   # top-1 points below all_reduce that the y axes span: the tuned control is 4.7 below it


def compared_runs(records):
    """The runs the frontier compares: all_reduce, the tuned control and every method at its tuned
    base LR; not the tuning runs (held-out data) nor the control's untuned seeds. all_reduce is its
    tuned seeds where the sweep has them (vision: tuned with the methods' budget), else the seeds it
    has (the language model's regime runs all_reduce at its tuned base LR with seeds 0-2)."""
    holdout = pd.to_numeric(records.get("cfg.data.holdout", pd.Series(0, index=records.index)), errors="coerce")
    seed = pd.to_numeric(records["seed"], errors="coerce")
    method = records["cfg.method.name"]
    trained = holdout.fillna(0) == 0
    allreduce = trained & (method == "allreduce")
    if (allreduce & seed.isin(TUNED_SEEDS)).any():
        allreduce &= seed.isin(TUNED_SEEDS)
    return records[allreduce | (trained & (method != "allreduce") & seed.isin(TUNED_SEEDS))]


def is_control(row):
    """The 0-bit control: local SGD whose period outlasts the run (frontier_regime's H = 1000 > 954)."""
    return cfg(row, "method.name") == "localsgd" and cfg(row, "method.period", 0) >= 1000


def frontier8_label(row):
    name = cfg(row, "method.name")
    if is_control(row):
        return CONTROL
    if name != "codistill":
        return FRONTIER_LABELS.get(name, name)
    if cfg(row, "method.exchange") == "predictions":
        return "codistillation, predictions"
    fraction = cfg(row, "method.checkpoint_delta_fraction")
    if fraction is not None:
        return f"codistillation, {number(100 * fraction)} % checkpoint deltas"
    bits = cfg(row, "method.checkpoint_bits", 32)
    return "codistillation, checkpoints" if bits == 32 else f"codistillation, {number(bits)}-bit checkpoints"


def series_method(row):
    """The colour's kind of arm: the control grey as every alpha = 0 control, the rest their own."""
    return CONTROL_METHOD if is_control(row) else kind_of(row)


def labelled(data):
    """The compared eval records with their series (label), knob and colour's method (method)."""
    records = compared_runs(evals(data))
    return with_labels(records, label=frontier8_label, knob=frontier_knob, method=series_method)


def frontier8(data, notes):
    compared = dataclasses.replace(data, records=compared_runs(data.records))
    frame = last_step(curves(compared, label=frontier8_label, knob=frontier_knob, method=series_method))
    return frontier_figure(frame, notes, ORDER, CONTROL, reach=REACH, zero_tick="0 bits\n(tuned\ncontrol)")


def reference_final(records):
    """all_reduce's final top-1: the mean over its seeds of each run's last evaluation."""
    runs = bit_curves(records[records["label"] == "all_reduce"], METRIC)
    if runs.empty:
        raise ValueError("no all_reduce run in these logs: the targets are read from its final top-1")
    return runs[runs["step"] == runs.groupby("run_id")["step"].transform("max")]["value"].mean()


def bits_table(records):
    """One row per method and setting: its seeds, final top-1, bits per update, and the bits per device
    it had sent by the first evaluation at each target (inf: never), with how many seeds reach it."""
    final = reference_final(records)
    rows = []
    for (label, knob), part in records.groupby(["label", "knob"], dropna=False, sort=False):
        runs = bit_curves(part, METRIC)
        last = runs[runs["step"] == runs.groupby("run_id")["step"].transform("max")]
        row = {"method": label, "setting": knob if isinstance(knob, str) else "", "seeds": runs["run_id"].nunique(),
               "final top-1": last["value"].mean(), "final s.e.": last["value"].sem(),
               "bits per update": (last["bits"] / last["step"]).mean()}
        for share, target in targets(final, SHARES).items():
            reached = to_target(part, METRIC, target)
            row[f"bits to {share:.0%}"] = reached.bits
            row[f"seeds reaching {share:.0%}"] = reached.seeds_reaching
        rows.append(row)
    table = pd.DataFrame(rows)
    table["order"] = table["method"].map({label: i for i, label in enumerate([*ORDER, CONTROL])})
    return table.sort_values(["order", "bits per update"], kind="stable").drop(columns="order").reset_index(drop=True), final


def _bits(value):
    return "not reached" if not math.isfinite(value) else ("0" if value == 0 else f"{value:.3g}")


def frontier8_bits(data, notes):
    """The table of bits to all_reduce's final top-1 and to 99 % of it, per method and setting."""
    records = labelled(data)
    table, final = bits_table(records)
    notes.record(records.drop_duplicates("run_id"), "label")
    shown = pd.DataFrame({
        "Method": table["method"], "Setting": table["setting"], "Seeds": table["seeds"],
        "Final top-1": [f"{m:.2f} ± {s:.2f}" if pd.notna(s) else f"{m:.2f}"
                        for m, s in zip(table["final top-1"], table["final s.e."])],
        "Bits per update": [_bits(v) for v in table["bits per update"]]})
    for share in SHARES:
        shown[f"Bits to {share:.0%} of all_reduce ({share * final:.2f})"] = [
            f"{_bits(bits)} ({reached}/{seeds})" for bits, reached, seeds
            in zip(table[f"bits to {share:.0%}"], table[f"seeds reaching {share:.0%}"], table["seeds"])]
    return shown


def best_settings(table):
    """{method: setting} of the curves figure: the setting that reaches 99 % of all_reduce with the
    fewest bits, else the one with the best final top-1."""
    return {method: setting for method, (setting, _) in chosen_settings(table).items()}


def chosen_settings(table):
    """{method: (setting, whether its seed-mean curve reaches 99 % of all_reduce)}: best_settings with
    the reason each was chosen."""
    chosen = {}
    for method, rows in table.groupby("method", sort=False):
        reaching = rows[rows["bits to 99%"].map(math.isfinite)]
        pick = reaching.loc[reaching["bits to 99%"].idxmin()] if len(reaching) else rows.loc[rows["final top-1"].idxmax()]
        chosen[method] = (pick["setting"], len(reaching) > 0)
    return chosen


def _and(names):
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def curves_title(chosen, shown, target):
    """What the curves panel draws, from the settings chosen ({method: (setting, reaches)}): which
    methods' seed-mean curves reach 99 % of all_reduce (`target`), each at its setting that does with
    the fewest bits, and how many reach it at none of their settings, drawn at their best final top-1."""
    reach = [f"{m} {chosen[m][0]}".strip() for m in shown if chosen[m][1]]
    never = [m for m in shown if not chosen[m][1]]
    lines = []
    if reach:
        lines.append(f"reaching 99 % of all_reduce ({target:.2f}), each at its setting that does with the fewest bits: "
                     + _and(reach))
    if never and reach:
        lines.append(f"the other {len(never)} method{'s' if len(never) > 1 else ''}: no setting reaches it, each "
                     "drawn at its best final top-1")
    elif never:
        lines.append(f"no setting of any of the {len(never)} method{'s' if len(never) > 1 else ''} reaches 99 % of "
                     f"all_reduce ({target:.2f}): each drawn at its best final top-1")
    return "\n".join(line[0].upper() + line[1:] for line in lines)


SIZE = (9.5, 5.6)


def frontier8_curves(data, notes):
    records = labelled(data)
    table, final = bits_table(records)
    reasons = chosen_settings(table)
    chosen = {method: setting for method, (setting, _) in reasons.items()}
    apply_theme()
    fig, ax = plt.subplots(figsize=SIZE)
    shown = [label for label in [*ORDER, *sorted(set(chosen) - set(ORDER))] if label in chosen and label != CONTROL]
    styles = series_styles(series_methods(records.drop_duplicates("label"), "label", shown))
    for label in shown:
        part = records[(records["label"] == label) & (records["knob"].fillna("") == chosen[label])]
        runs = bit_curves(part, METRIC)
        mean = runs.groupby("step", as_index=False).agg(value=("value", "mean"), bits=("bits", "mean"))
        mean = mean[mean["bits"] > 0]   # a log axis cannot place the evaluations before the first exchange
        name = f"{label}, {chosen[label]}" if chosen[label] else label
        style = styles[label]
        ax.plot(mean["bits"], mean["value"], marker=style.marker, markersize=3.5, color=style.colour,
                linestyle=linestyle(style.dashes), label=name, gid=label)
        notes.record(part.drop_duplicates("run_id"), "label")
    # dash-dot and dotted: the reference lines apart from all_reduce's own (solid) curve
    ax.axhline(final, color=colour("allreduce"), linewidth=1, linestyle=linestyle(DASHES[3]),
               label=f"all_reduce's final top-1 ({final:.2f})")
    ax.axhline(SHARES[1] * final, color=colour("allreduce"), linewidth=1, linestyle=":",
               label=f"99 % of it ({SHARES[1] * final:.2f})")
    control = table[table["method"] == CONTROL]
    if len(control):
        ax.axhline(control["final top-1"].iloc[0], color=colour(CONTROL_METHOD), linewidth=1, linestyle="--",
                   label=f"{CONTROL}, final ({control['final top-1'].iloc[0]:.2f}, 0 bits)")
        notes.record(records[records["label"] == CONTROL].drop_duplicates("run_id"), "label")
    ax.set_xscale("log")
    low = min(control["final top-1"].min() if len(control) else final, final) - 2
    ax.set_ylim(low, final + 2)
    ax.set(xlabel="bits each device has sent between servers (measured, cumulative)",
           ylabel=METRIC_LABELS[METRIC])
    ax.set_title(curves_title(reasons, [label for label in shown if label != "all_reduce"], SHARES[1] * final),
                 fontsize=9)
    ax.legend(fontsize=8)
    return fig
