"""The plot and table of every id: each takes a registry.FigureData (the collected records of the
id's sweep at one scale) and returns a matplotlib figure, or a table as a pandas DataFrame.
Series are named from the runs' config columns (cfg.*), so mini and paper sweeps that differ in
workload or in some values (e.g. exchange periods) are drawn the same way and labelled with what
the logs say."""
import numpy as np
import pandas as pd
import seaborn as sns

from . import fig2
from .fig2_regimes import fig2_regimes  # noqa: F401  (the registry draws every id from this module)
from .plots import (ARCH_NAMES, LOSS_UNITS, aggregate, arch_name, axis_label, category_points, cfg,
                    check_one_run_per_seed, keep_panel_legends, last_step, line_panel, log_axis, new_figure, number,
                    per_run, point_panel, value_band)

CURVE_METRICS = ["train_loss", "val_top1", "val_top1_mean_over_models", "val_nll", "param_distance_from_init",
                 "bits_per_iteration", "batch_per_model", "epoch"]
SCENARIOS = {"pretrained_frozen": "pretrained, frozen", "pretrained_trainable": "pretrained, not frozen",
             "random_init": "random init", "full": "full network"}
SCHEDULES = {"goyal_step": "", "goyal_step_half": "fixed w.d.", "codistill_tuned": "variable w.d.",
             "cosine": "", "codistill_cosine": ""}


# ---- labels from config columns -------------------------------------------------------------
def method_label(row):
    name, n = cfg(row, "method.name"), int(cfg(row, "method.n", 1))
    if name == "allreduce":
        return "all_reduce"
    if name == "independent":
        return f"independent, {n} models (α = 0)"
    return "codistillation" if n == 2 else f"{n}-way codistillation"


def recipe_label(row):
    detail = SCHEDULES.get(cfg(row, "schedule.name"), cfg(row, "schedule.name"))
    return method_label(row) + (f", {detail}" if detail and cfg(row, "method.name") != "allreduce" else "")


def exchange_label(row):
    if cfg(row, "method.name") != "codistill":
        return method_label(row)
    period = cfg(row, "method.period")
    every = "every update" if float(period) == 1 else f"every {number(period)} updates"
    return f"codistillation, {cfg(row, 'method.exchange')} {every}"


def nway_label(row):
    return f"{int(cfg(row, 'method.n'))}-way"


def architectures(row):
    models = cfg(row, "workload.models")
    if isinstance(models, list) and models:
        return [model.get("arch", cfg(row, "workload.arch")) for model in models]
    return [cfg(row, "workload.arch")] * int(cfg(row, "method.n", 1))


def setup_label(row):
    archs = architectures(row)
    if len(set(archs)) == 1:
        return f"{len(archs)} × {arch_name(archs[0])}"
    return " + ".join(arch_name(a) for a in archs)


def with_labels(records, **labels):
    """Adds per-run label columns, each computed once per run from its config columns."""
    runs = records.drop_duplicates("run_id").set_index("run_id")
    return records.assign(**{column: records["run_id"].map({rid: fn(row) for rid, row in runs.iterrows()})
                             for column, fn in labels.items()})


def evals(data):
    return data.records[data.records["kind"] == "eval"]


def curves(data, **labels):
    """Per-run means over models at each evaluation, with label columns."""
    records = with_labels(evals(data), **labels)
    return per_run(records, CURVE_METRICS, extra=tuple(labels))


def label_order(frame, column, key):
    """Label values of `column` sorted by a numeric config value of their runs."""
    firsts = frame.drop_duplicates(column)
    return list(firsts.sort_values(key, key=lambda v: pd.to_numeric(v, errors="coerce"))[column])


# ---- generic shapes ---------------------------------------------------------------------------
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


# ---- figures ----------------------------------------------------------------------------------
def fig1(data, notes):
    """Top-1 against the bits each device sends between servers per iteration, measured: the
    logged inter-node bit counter over the updates made (comm_bits_inter_node / step)."""
    frame = last_step(curves(data, label=lambda r: method_label(r) if cfg(r, "method.name") != "codistill"
                             else f"codistillation, {cfg(r, 'method.exchange')}",
                             period=lambda r: cfg(r, "method.period")))
    fig, axes = new_figure(1, width=7.5, height=4.8)
    order = ["all_reduce", "codistillation, predictions", "codistillation, checkpoints"]
    control = frame[frame["label"] == "independent, 2 models (α = 0)"]
    point_panel(axes[0], frame[frame["label"] != "independent, 2 models (α = 0)"], "bits_per_iteration", "val_top1",
                "label", notes, "period", annotate=lambda period: f"T={number(period)}", series_order=order)
    if len(control):   # 0 bits has no place on a log axis: the control is a line across it
        value_band(axes, control["val_top1"], "grey", "α = 0 control, 0 bits (mean ± s.e.)", ses=1, alpha=0.2,
                   linestyle="--")
        notes.record(control, "label")
        axes[0].legend()
    axes[0].set_xscale("log")
    axes[0].set(xlabel="bits sent between servers per iteration and device (measured)",
                ylabel="top-1 validation accuracy (%)")
    return fig


WITH_CONTROL = ["all_reduce", "codistillation", "independent, 2 models (α = 0)"]


def fig3(data, notes):
    return curve_figure(data, method_label, [("val_top1", "top-1, cosine LR")], notes,
                        WITH_CONTROL, facet="workload.arch", facet_name=arch_name)


def fig10(data, notes):
    return curve_figure(data, method_label, [("train_loss", "training loss, cosine LR")], notes,
                        WITH_CONTROL, facet="workload.arch", facet_name=arch_name)


def fig8(data, notes):
    return curve_figure(data, method_label, [("val_top1", "top-1, variable w.d., shifted LR decays")], notes,
                        WITH_CONTROL, facet="workload.arch", facet_name=arch_name)


def fig9(data, notes):
    return curve_figure(data, method_label, [("train_loss", "training loss, variable w.d., shifted LR decays")],
                        notes, WITH_CONTROL, facet="workload.arch", facet_name=arch_name)


def label_smoothing_label(row):
    """Figs. 4 and 12 run both readings of the paper (docs/paper-discrepancies.md): label smoothing
    removed (A.3) or decayed per epoch (Sec. 4.2)."""
    if cfg(row, "method.name") not in ("codistill", "independent"):   # the control follows codistillation's recipe
        return method_label(row)
    decayed = cfg(row, "schedule.label_smoothing_schedule") == "exponential" and float(cfg(row, "schedule.label_smoothing"))
    return method_label(row) + (", label smoothing decayed" if decayed else ", label smoothing removed")


TRANSLATION_ORDER = ["all_reduce", "codistillation, label smoothing removed", "codistillation, label smoothing decayed",
                     "independent, 2 models (α = 0), label smoothing removed",
                     "independent, 2 models (α = 0), label smoothing decayed"]


def fig4(data, notes):
    return curve_figure(data, label_smoothing_label, [("val_nll", "validation NLL")], notes, TRANSLATION_ORDER)


def fig12(data, notes):
    return curve_figure(data, label_smoothing_label, [("val_nll", "(a) validation NLL"),
                                                      ("train_loss", "(b) training loss")], notes, TRANSLATION_ORDER)


def iwslt_overfit(data, notes):
    return fig12(data, notes)


def fig5(data, notes):
    return curve_figure(data, nway_label, [("train_loss", "(a) training loss"), ("val_top1", "(b) top-1")], notes,
                        order_by=lambda r: cfg(r, "method.n"))


def fig7(data, notes):
    return curve_figure(data, recipe_label, [("param_distance_from_init", "distance from initialisation")], notes,
                        ["all_reduce", "codistillation, fixed w.d.", "independent, 2 models (α = 0), fixed w.d."])


def fig11(data, notes):
    """Against epochs, as the paper: every batch size runs the same epochs, with 1/b as many updates."""
    frame = curves(data)
    frame = frame.assign(label=[f"2 × {int(b)}" for b in frame["batch_per_model"]])
    fig, axes = new_figure(1, width=7.5)
    line_panel(axes[0], frame, "train_loss", "label", notes, label_order(frame, "label", "batch_per_model"),
               x="epoch", title="training loss per batch size (b per model; LR ∝ b, updates ∝ 1/b)", task=data.task)
    return fig


def fig13(data, notes):
    return curve_figure(data, exchange_label, [("train_loss", "(a) training loss"), ("val_top1", "(b) top-1")], notes)


def per_arch_curves(data, notes):
    """Figs. 14-15: one curve per (setup, architecture of the model), the models of one
    architecture in a run averaged."""
    records = with_labels(evals(data), setup=setup_label)
    records = records.assign(label=records["setup"] + ": " + records["model_arch"].map(arch_name))
    frame = per_run(records, CURVE_METRICS, extra=("label",))
    fig, axes = new_figure(2)
    line_panel(axes[0], frame, "train_loss", "label", notes, title="(a) training loss", task=data.task)
    line_panel(axes[1], frame, "val_top1", "label", notes, title="(b) top-1 of each model", task=data.task)
    return fig


fig14 = fig15 = per_arch_curves


def fig16(data, notes):
    frame = last_step(curves(data, label=method_label, fraction=lambda r: f"1/{number(1 / cfg(r, 'data.fraction'))}",
                             k=lambda r: 1 / cfg(r, "data.fraction")))
    order = list(frame.drop_duplicates("fraction").sort_values("k")["fraction"])
    fig, axes = new_figure(2)
    for ax, metric, title in ((axes[0], "val_top1", "(a) final top-1"), (axes[1], "train_loss", "(b) final training loss")):
        category_points(ax, frame, "fraction", metric, "label", notes, order, ["all_reduce", "codistillation"],
                        task=data.task)
        ax.set(xlabel="fraction of the training set (k × the epochs)", title=title)
    return fig


fig17 = fig5   # the same n-way panels, on a fixed budget of updates


def multiview(data, notes):
    """Fig. 6: the final mean top-1 over all models per scenario and n, points with s.e. bars (bars
    would have to start at zero, where differences of a point or two vanish)."""
    def group(row):
        name, n = cfg(row, "method.name"), int(cfg(row, "method.n", 1))
        return {"allreduce": "all_reduce", "independent": "n = 1"}.get(name, f"n = {n}")
    frame = last_step(curves(data, label=group, scenario=lambda r: SCENARIOS.get(cfg(r, "workload.scenario"),
                                                                                cfg(r, "workload.scenario"))))
    fig, axes = new_figure(1, width=9, height=4.5)
    category_points(axes[0], frame, "scenario", "val_top1_mean_over_models", "label", notes,
                    [SCENARIOS[s] for s in ("pretrained_frozen", "pretrained_trainable", "random_init")],
                    ["all_reduce", "n = 1", "n = 2", "n = 4", "n = 8"])
    axes[0].set(xlabel="multi-view scenario", ylabel="mean top-1 over all models (%)")
    return fig


fig6 = multiview


def exchange_frequency(data, notes):
    return curve_figure(data, exchange_label, [("val_top1", "(a) top-1"), ("train_loss", "(b) training loss")],
                        notes, order_by=lambda r: cfg(r, "method.period"))


def nmt_exchange_frequency(data, notes):
    return curve_figure(data, exchange_label, [("val_nll", "validation NLL")], notes,
                        order_by=lambda r: cfg(r, "method.period"))


def lr_robustness(data, notes):
    return curve_figure(data, lambda r: f"base LR {number(cfg(r, 'schedule.lr.base'))}",
                        [("val_top1", "(a) top-1"), ("train_loss", "(b) training loss")], notes,
                        order_by=lambda r: cfg(r, "schedule.lr.base"))


def alpha_schedule_vision(data, notes):
    def label(row):
        if cfg(row, "method.alpha_schedule") == "step":
            return f"step-wise α (× {number(cfg(row, 'method.alpha_step_factor'))} at each LR decay)"
        return f"constant α = {number(cfg(row, 'method.alpha'))}"
    fig = curve_figure(data, label, [("val_top1", "(a) top-1"), ("train_loss", "(b) training loss")], notes)
    return fig


def alpha_gamma(data, notes):
    """(a) final validation NLL against the initial α for each γ; (b) the curves of each γ's best α.
    One colour per γ in both panels, and a legend beside each panel: (a) names each γ, (b) each γ with
    its best α₀."""
    frame = curves(data, gamma=lambda r: (f"γ = {number(cfg(r, 'method.alpha_gamma'))}"
                                          if cfg(r, "method.alpha_schedule") == "exponential" else "γ = 1 (constant α)"),
                   gamma_value=lambda r: cfg(r, "method.alpha_gamma") if cfg(r, "method.alpha_schedule") == "exponential"
                   else 1.0, alpha0=lambda r: cfg(r, "method.alpha"))
    final = last_step(frame)
    gammas = label_order(frame, "gamma", "gamma_value")
    fig, axes = new_figure(2)
    palette = dict(zip(gammas, sns.color_palette(n_colors=len(gammas))))   # the theme's colours (new_figure sets it)
    point_panel(axes[0], final, "alpha0", "val_nll", "gamma", notes, "alpha0", series_order=gammas, palette=palette)
    axes[0].set(xlabel="initial α", ylabel="final " + axis_label("val_nll", data.task), title="(a) final validation NLL")
    log_axis(axes[0])
    alphas = final["alpha0"].astype(float)
    if alphas.min() > 0 and alphas.max() >= 10 * alphas.min():   # a grid over decades reads on a log axis
        log_axis(axes[0], "x")
    means = final.groupby(["gamma", "alpha0"])["val_nll"].mean().reset_index()
    best = means.loc[means.groupby("gamma")["val_nll"].idxmin()]
    chosen = frame.merge(best[["gamma", "alpha0"]], on=["gamma", "alpha0"])
    chosen = chosen.assign(label=chosen["gamma"] + ", α₀ = " + chosen["alpha0"].map(number))
    labels = dict(zip(chosen["gamma"], chosen["label"]))
    line_panel(axes[1], chosen, "val_nll", "label", notes, [labels[g] for g in gammas if g in labels],
               title="(b) each γ with its best initial α", task=data.task,
               palette={labels[g]: palette[g] for g in gammas if g in labels})
    keep_panel_legends(fig)
    return fig


def wrn_pretrain(data, notes):
    return curve_figure(data, lambda r: f"Wide-ResNet-{cfg(r, 'workload.depth')}-{cfg(r, 'workload.widen')}",
                        [("val_top1", "(a) top-1"), ("train_loss", "(b) training loss")], notes)


def figure2(data, notes):
    return fig2.draw(data, notes)


# ---- tables -----------------------------------------------------------------------------------
def separating_decimals(means, ses=(), least=2, most=6):
    """The fewest decimals (at least `least`, at most `most`) at which means that differ print
    differently, and no nonzero mean or standard error prints as zero."""
    means = [float(m) for m in means if pd.notna(m)]
    nonzero = [abs(float(v)) for v in [*means, *ses] if pd.notna(v) and v != 0]
    distinct = sorted(set(means))
    differ = [(a, b) for a, b in zip(distinct, distinct[1:]) if not np.isclose(a, b, rtol=1e-12, atol=0)]
    for digits in range(least, most):
        separated = all(f"{a:.{digits}f}" != f"{b:.{digits}f}" for a, b in differ)
        if separated and all(float(f"{v:.{digits}f}") > 0 for v in nonzero):
            return digits
    return most


def mean_se_column(stats):
    """'mean ± s.e.' of each row of `stats` (columns mean, se), all with the decimals that separate them."""
    digits = separating_decimals(stats["mean"], stats["se"])
    return [f"{row['mean']:.{digits}f}" + ("" if pd.isna(row["se"]) else f" ± {row['se']:.{digits}f}")
            for _, row in stats.iterrows()]


def table1(data, notes):
    """Final training loss and top-1 per batch size of 2-way codistillation (variable w.d.)."""
    frame = last_step(curves(data, label=recipe_label))
    frame = frame[frame["label"] == "codistillation, variable w.d."]
    loss = aggregate(frame, ["batch_per_model"], "train_loss").sort_values("batch_per_model")
    top1 = aggregate(frame, ["batch_per_model"], "val_top1").sort_values("batch_per_model")
    notes.record(frame.assign(b=frame["batch_per_model"].map(lambda b: f"2 × {int(b)}")), "b")
    return pd.DataFrame({"Batch Size": [f"2 × {int(b)}" for b in loss["batch_per_model"]],
                         f"Training Loss ({LOSS_UNITS[data.task]})": mean_se_column(loss),
                         "Validation Accuracy (%)": mean_se_column(top1),
                         "seeds": loss["seeds"].tolist()})


def table2(data, notes):
    """BLEU of n-way codistillation (n = 1: one model), the same updates per device."""
    tests = data.records[data.records["kind"] == "test"]
    if tests.empty or "bleu" not in tests:
        raise ValueError("no `test` records with bleu in these logs")
    tests = tests.assign(n=tests["n_way"])   # 1: one model (all_reduce); n: n-way codistillation
    frame = per_run(tests, ["bleu"], keys=(), extra=("n",))
    check_one_run_per_seed(frame, ["n"])
    bleu = aggregate(frame, ["n"], "bleu").sort_values("n")
    notes.record(frame.assign(label=frame["n"].map(lambda n: f"n = {n}")), "label")
    return pd.DataFrame({"n": bleu["n"].tolist(), "BLEU Score": mean_se_column(bleu),
                         "seeds": bleu["seeds"].tolist()})



from .frontier_figure import frontier  # noqa: E402,F401  (the registry draws every id from this module)
