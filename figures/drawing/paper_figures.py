"""The plot of every figure id but Figure 2 (figures/drawing/fig2.py), its regimes and the frontier:
each takes a registry.FigureData (the collected records of the id's sweep at one scale) and a
SeedNotes, and returns a matplotlib figure."""
from .curves import CURVE_METRICS, curve_figure, curves, evals, facet_order, label_order, with_labels
from .labels import (
    arch_name,
    axis_label,
    cfg,
    exchange_label,
    method_label,
    number,
    nway_label,
    recipe_label,
    setup_label,
)
from .layout import keep_panel_legends
from .log_axis import log_axis
from .palette import CONTROL, DASHES, colour, kind_of, series_colours, series_methods, series_styles
from .panels import category_points, line_panel, new_figure, point_panel, set_markers, value_band
from .seed_means import SES, last_step, per_run

SCENARIOS = {"pretrained_frozen": "pretrained, frozen", "pretrained_trainable": "pretrained, not frozen",
             "random_init": "random init", "full": "full network"}


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
        value_band(axes, control["val_top1"], colour(CONTROL), f"α = 0 control, 0 bits (mean ± {SES} s.e.)",
                   alpha=0.2, linestyle="--")
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
    removed (A.3) or decayed per epoch (Sec. 4.2); every series says its label smoothing, all_reduce's
    too (the recipe keeps 0.1; the matched arm of the IWSLT figure removes it, as codistillation)."""
    if cfg(row, "method.name") not in ("codistill", "independent"):   # the control follows codistillation's recipe
        smoothing = float(cfg(row, "schedule.label_smoothing", 0.0))
        return method_label(row) + (f", label smoothing {smoothing:g}" if smoothing else ", label smoothing removed")
    decayed = cfg(row, "schedule.label_smoothing_schedule") == "exponential" and float(cfg(row, "schedule.label_smoothing"))
    return method_label(row) + (", label smoothing decayed" if decayed else ", label smoothing removed")


TRANSLATION_ORDER = ["all_reduce, label smoothing 0.1", "all_reduce, label smoothing removed",
                     "codistillation, label smoothing removed", "codistillation, label smoothing decayed",
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
    architecture in a run averaged: (a) training loss, (b) top-1; and (c) the final top-1 of each
    architecture that more than one setup trains, per setup (its marker) side by side with ±1 s.e. bars, where
    curves that end a few tenths apart would coincide. Every series in its runs' kind's colour
    (codistillation's): a setup is a marker, an architecture a line style."""
    records = with_labels(evals(data), setup=setup_label, method=kind_of)
    records = records.assign(arch=records["model_arch"].map(arch_name), arch_rank=records["model_arch"].map(
        lambda arch: facet_order(arch)[0]), label=records["setup"] + ": " + records["model_arch"].map(arch_name))
    frame = per_run(records, CURVE_METRICS, extra=("label", "setup", "arch", "arch_rank", "method"))
    firsts = frame.drop_duplicates("label").sort_values(["setup", "arch_rank"])
    order = list(firsts["label"])
    setups = series_styles(series_methods(frame, "setup", list(firsts["setup"].unique())))
    palette = {row["label"]: setups[row["setup"]].colour for _, row in firsts.iterrows()}
    markers = {row["label"]: setups[row["setup"]].marker for _, row in firsts.iterrows()}
    dashes = {row["label"]: DASHES[row["arch_rank"] % len(DASHES)] for _, row in firsts.iterrows()}
    fig, axes = new_figure(3, width=4.8)
    for ax, metric, title in ((axes[0], "train_loss", "(a) training loss"),
                              (axes[1], "val_top1", "(b) top-1 of each model")):
        line_panel(ax, frame, metric, "label", notes, order, title=title, task=data.task, palette=palette,
                   dashes=dashes, markers=markers)
        set_markers(ax, markers)   # at every evaluation: a setup's marker tells its curves apart
    setups_per_arch = firsts.groupby("arch")["setup"].nunique()
    shared = [arch for arch in firsts.sort_values("arch_rank")["arch"].unique() if setups_per_arch[arch] > 1]
    axes[2].set(title="(c) final top-1 of an architecture, per setup")
    if shared:
        finals = last_step(frame[frame["arch"].isin(shared)])
        category_points(axes[2], finals, "arch", "val_top1", "setup", notes, shared,
                        [setup for setup in setups if setup in set(finals["setup"])], task=data.task,
                        palette={setup: style.colour for setup, style in setups.items()},
                        markers={setup: style.marker for setup, style in setups.items()})
        axes[2].set(xlabel="the model's architecture")
    else:
        axes[2].text(0.5, 0.5, "no architecture in\nmore than one setup", ha="center", va="center",
                     transform=axes[2].transAxes)
        axes[2].set(xticks=[], yticks=[])
    return fig


fig14 = fig15 = per_arch_curves


def fig16(data, notes):
    frame = last_step(curves(data, label=method_label, fraction=lambda r: f"1/{number(1 / cfg(r, 'data.fraction'))}",
                             k=lambda r: 1 / cfg(r, "data.fraction")))
    order = list(frame.drop_duplicates("fraction").sort_values("k")["fraction"])
    fig, axes = new_figure(2)
    for ax, metric, title in ((axes[0], "val_top1", "(a) final top-1"), (axes[1], "train_loss", "(b) final training loss")):
        category_points(ax, frame, "fraction", metric, "label", notes, order, WITH_CONTROL, task=data.task)
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


TUNED_SEEDS = (3, 4, 5)   # the fresh seeds of each arm's tuned base LR (sweeps/tuned_baselines.yaml)
BASELINE_ARMS = ["all_reduce", "codistillation, predictions", "codistillation, checkpoints", "α = 0 control"]
RECIPE, TUNED = "paper's recipe (base LR 0.1), seeds 0-2", "tuned (best base LR on held-out data), seeds 3-5"


def baseline_arm(row):
    method = cfg(row, "method.name")
    if method == "codistill":
        return f"codistillation, {cfg(row, 'method.exchange')}"
    return "α = 0 control" if method == "independent" else method_label(row)


def tuned_baselines(data, notes):
    """Each arm's final (a) top-1 and (b) training loss at the paper's recipe (open markers) and at its
    best base LR of one tuning budget (sweeps/baseline_tuning.yaml, filled): mean over seeds with ±1 s.e.
    bars, in the arm's method's colour; each tuned point names its base LR."""
    frame = last_step(curves(data, arm=baseline_arm,
                             budget=lambda r: TUNED if r["seed"] in TUNED_SEEDS else RECIPE,
                             base_lr=lambda r: cfg(r, "schedule.lr.base")))
    arm_colours = series_colours(series_methods(frame, "arm", BASELINE_ARMS))
    fig, axes = new_figure(2, width=12, height=4.6)
    for ax, metric in zip(axes, ("val_top1", "train_loss")):
        stats = category_points(ax, frame, "arm", metric, "budget", notes, order=BASELINE_ARMS,
                                hue_order=[RECIPE, TUNED], hollow=(RECIPE,), palette=arm_colours, colour_by="x")
        tuned = frame[frame["budget"] == TUNED].groupby("arm")["base_lr"].first()
        for _, row in stats[stats["budget"] == TUNED].iterrows():
            position = BASELINE_ARMS.index(row["arm"]) + 0.175
            ax.annotate(f"LR {number(tuned[row['arm']])}", (position, row["mean"]), xytext=(6, 0),
                        textcoords="offset points", fontsize=8, va="center")
        ax.tick_params(axis="x", labelrotation=12)
    axes[0].set_title(f"(a) final top-1 (mean ± {SES} s.e. over seeds)")
    axes[1].set_title(f"(b) final training loss (mean ± {SES} s.e. over seeds)")
    return fig


def alpha_schedule_vision(data, notes):
    def label(row):
        if cfg(row, "method.alpha_schedule") == "step":
            return f"step-wise α (× {number(cfg(row, 'method.alpha_step_factor'))} at each LR decay)"
        return f"constant α = {number(cfg(row, 'method.alpha'))}"
    fig = curve_figure(data, label, [("val_top1", "(a) top-1"), ("train_loss", "(b) training loss")], notes)
    return fig


def alpha_gamma(data, notes):
    """(a) final validation NLL against the initial α for each γ; (b) the curves of each γ's best α.
    One line style and marker per γ in both panels (every γ is codistillation: one colour), and a legend
    beside each panel: (a) names each γ, (b) each γ with
    its best α₀."""
    frame = curves(data, gamma=lambda r: (f"γ = {number(cfg(r, 'method.alpha_gamma'))}"
                                          if cfg(r, "method.alpha_schedule") == "exponential" else "γ = 1 (constant α)"),
                   gamma_value=lambda r: cfg(r, "method.alpha_gamma") if cfg(r, "method.alpha_schedule") == "exponential"
                   else 1.0, alpha0=lambda r: cfg(r, "method.alpha"))
    final = last_step(frame)
    gammas = label_order(frame, "gamma", "gamma_value")
    fig, axes = new_figure(2)
    styles = series_styles(series_methods(frame, "gamma", gammas))
    palette = {gamma: style.colour for gamma, style in styles.items()}
    point_panel(axes[0], final, "alpha0", "val_nll", "gamma", notes, "alpha0", series_order=gammas, styles=styles)
    axes[0].set(xlabel="initial α", ylabel="final " + axis_label("val_nll", data.task), title="(a) final validation NLL")
    log_axis(axes[0])
    alphas = final["alpha0"].astype(float)
    if alphas.min() > 0 and alphas.max() >= 10 * alphas.min():   # a grid over decades reads on a log axis
        log_axis(axes[0], "x")
        axes[0].set_xticks(sorted(alphas.unique()))   # the grid's values: a decade's nine ticks crowd the axis
    means = final.groupby(["gamma", "alpha0"])["val_nll"].mean().reset_index()
    best = means.loc[means.groupby("gamma")["val_nll"].idxmin()]
    chosen = frame.merge(best[["gamma", "alpha0"]], on=["gamma", "alpha0"])
    chosen = chosen.assign(label=chosen["gamma"] + ", α₀ = " + chosen["alpha0"].map(number))
    labels = dict(zip(chosen["gamma"], chosen["label"]))
    line_panel(axes[1], chosen, "val_nll", "label", notes, [labels[g] for g in gammas if g in labels],
               title="(b) each γ with its best initial α", task=data.task,
               palette={labels[g]: palette[g] for g in gammas if g in labels},
               dashes={labels[g]: styles[g].dashes for g in gammas if g in labels},
               markers={labels[g]: styles[g].marker for g in gammas if g in labels})
    keep_panel_legends(fig)
    return fig


WRN_PAPER_TOP1 = 94.92   # Sec. 5.1: the pretrained Wide-ResNet-28-10's top-1 on CIFAR-10


def wrn_pretrain(data, notes):
    """The network the multi-view models start from (paper scale only: figures/registry.py says why
    not at mini): (a) top-1 beside the paper's final value, (b) training loss."""
    fig = curve_figure(data, lambda r: f"Wide-ResNet-{cfg(r, 'workload.depth')}-{cfg(r, 'workload.widen')}",
                       [("val_top1", "(a) top-1"), ("train_loss", "(b) training loss")], notes)
    fig.axes[0].axhline(WRN_PAPER_TOP1, color="black", lw=0.8, ls=":", gid="paper",
                        label=f"the paper's final top-1, {WRN_PAPER_TOP1} %")
    fig.axes[0].legend()
    return fig
