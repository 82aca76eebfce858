"""The figures and the table of Anil et al. 2018 (Large scale distributed neural network training
through online distillation) that this repository reproduces: validation cross-entropy against
updates for codistillation and its baselines (Fig. 2a), on disjoint data shards (Fig. 2b), with a
checkpoint exchange period (Fig. 4), against two-phase distillation (Sec. 3.4.1), and the churn
between retrains (Table 1). Each takes a registry.FigureData and a SeedNotes; the curves are means
over seeds with a ±1 standard-error band (panels.line_panel), in the colour of each series' method
(figures/drawing/palette.py: label smoothing its own; the baseline, its ensembles and two-phase's
teachers are models trained apart, the alpha = 0 control's).

The validation loss of a run is the mean over its models of each model's own val_loss; an
ensemble's (method independent, n >= 2) is its ensemble_val_loss (NLL of the mean of its models'
probabilities), drawn as a series of its own."""
import numpy as np
import pandas as pd

from .curves import evals, with_labels
from .labels import cfg, method_label, number
from .palette import NEUTRAL, method_of
from .panels import line_panel, new_figure
from .seed_means import aggregate, last_step, per_run
from .tables import mean_se_column

BASELINE = "single model (baseline)"
METRICS = ["val_loss", "ensemble_val_loss", "teacher_steps", "epoch"]


def _smoothing(row):
    return float(cfg(row, "supervised.label_smoothing", 0.0) or 0.0)


def _method(row):
    """The key of a run's colour: label smoothing is a method of its own here, whatever trains it."""
    return "label_smoothing" if _smoothing(row) else method_of(row)


def _ensemble(row):
    """The label of a run's ensemble series: an ensemble of independent models trained without
    label smoothing; None for any other run."""
    n = int(cfg(row, "method.n", 1))
    if cfg(row, "method.name") == "independent" and n >= 2 and not _smoothing(row):
        return f"ensemble of {n} (baseline models)"
    return None


def loss_curves(data, label, ensemble=None):
    """One row per (run, step, series): `val_loss` of the series `label` (mean over the run's
    models; a run whose label is None has no such series) and, for runs with an `ensemble(row)`
    label, the run's ensemble_val_loss as that series. Columns run_id, seed, setting, step,
    label, method (its colour, figures/drawing/palette.py), val_loss, teacher_steps (where logged)."""
    records = with_labels(evals(data), label=label, ensemble=ensemble or (lambda row: None), method=_method)
    frame = per_run(records, METRICS, extra=("label", "ensemble", "method"))
    own = frame[frame["label"].notna()]
    parts = [own.drop(columns=["ensemble_val_loss", "ensemble"], errors="ignore")]
    if "ensemble_val_loss" in frame:
        ens = frame[frame["ensemble"].notna() & frame["ensemble_val_loss"].notna()]
        parts.append(ens.assign(label=ens["ensemble"], val_loss=ens["ensemble_val_loss"])
                     .drop(columns=["ensemble_val_loss", "ensemble"]))
    return pd.concat(parts, ignore_index=True)


def _ordered(frame, first):
    """`first` (the labels present), then any other label present, by name: no series is dropped."""
    present = set(frame["label"])
    return [name for name in first if name in present] + sorted(present - set(first))


def _loss_figure(frame, notes, order, title, task, x="step"):
    fig, axes = new_figure(1, width=7.5, height=4.6)
    line_panel(axes[0], frame, "val_loss", "label", notes, _ordered(frame, order), x=x, title=title, task=task)
    axes[0].set_ylabel("validation cross-entropy (" + ("bits per token" if task == "translation" else "nats") + ")")
    return fig, axes[0]


# ---------------------------------------------------------------- Fig. 2a

def fig2a_label(row):
    if _smoothing(row):
        prior = cfg(row, "supervised.smoothing_prior", "uniform")
        return f"label smoothing, {prior} prior (w = {number(_smoothing(row))})"
    name, n = cfg(row, "method.name"), int(cfg(row, "method.n", 1))
    if name == "codistill":
        return f"{n}-way codistillation"
    return BASELINE if name == "independent" else method_label(row)


def fig2a(data, notes):
    """Codistillation vs the single-model baseline, label smoothing (uniform, unigram prior) and
    an ensemble of two baseline models."""
    frame = loss_curves(data, fig2a_label, _ensemble)
    order = [BASELINE, *sorted(label for label in set(frame["label"]) if label.startswith("label smoothing")),
             "ensemble of 2 (baseline models)", "2-way codistillation"]
    return _loss_figure(frame, notes, order, "validation cross-entropy per update", data.task)[0]


# ---------------------------------------------------------------- Fig. 2b

def fig2b_label(row):
    name, n = cfg(row, "method.name"), int(cfg(row, "method.n", 1))
    disjoint = cfg(row, "data.split", "same") == "disjoint"
    if name == "codistill":
        return f"{n}-way codistillation, " + ("disjoint data shards" if disjoint else "same data")
    if name == "independent":
        return "single model, its own shard" if disjoint else BASELINE
    return method_label(row)


def fig2b(data, notes):
    """Codistillation where each model trains on its own shard of the training set vs on the same
    data, and the single-model baseline (same data)."""
    frame = loss_curves(data, fig2b_label)
    order = [BASELINE, "2-way codistillation, same data", "2-way codistillation, disjoint data shards"]
    return _loss_figure(frame, notes, order, "codistillation on disjoint vs the same data", data.task)[0]


# ---------------------------------------------------------------- Fig. 4

def fig4_label(row):
    if cfg(row, "method.name") != "codistill":
        return BASELINE if cfg(row, "method.name") == "independent" else method_label(row)
    return f"codistillation, checkpoints exchanged every {number(cfg(row, 'method.period'))} updates"


def fig4(data, notes):
    """Codistillation exchanging checkpoints every T updates (staler teachers as T grows)."""
    frame = loss_curves(data, fig4_label, lambda row: None)
    periods = with_labels(evals(data), label=fig4_label, period=lambda r: float(cfg(r, "method.period", 0) or 0))
    by_period = periods.drop_duplicates("label").sort_values("period")["label"].tolist()
    return _loss_figure(frame, notes, [BASELINE, *(label for label in by_period if label != BASELINE)],
                        "checkpoint exchange period T", data.task)[0]


# ---------------------------------------------------------------- two-phase distillation

CODISTILL = "2-way codistillation"
STUDENT = "two-phase: student distilling the teachers (phase 2)"
TEACHERS = "two-phase: the teachers' ensemble (phase 1)"


def two_phase_label(row):
    name = cfg(row, "method.name")
    if name == "codistill":
        return f"{int(cfg(row, 'method.n', 2))}-way codistillation"
    return STUDENT if name == "two_phase" else None   # an independent run is drawn as the teachers' ensemble


def _teachers(row):
    return TEACHERS if cfg(row, "method.name") == "independent" else None


def first_reaching(curve, target):
    """The first x at which a mean curve (Series indexed by x) is at or below `target`; None if never."""
    reached = curve[curve <= target]
    return None if reached.empty else float(reached.index.min())


def two_phase_marks(frame):
    """(the student's final loss: mean over seeds at its last total step, {series: first total
    step at which its mean over seeds reaches that loss}) of a two_phase figure's frame."""
    student = frame[frame["label"] == STUDENT]
    if student.empty:
        return None, {}
    last = student[student["total_steps"] == student.groupby("run_id")["total_steps"].transform("max")]
    target = float(last["val_loss"].mean())
    means = frame.groupby(["label", "total_steps"])["val_loss"].mean()
    return target, {name: first_reaching(means[name], target) for name in means.index.unique("label")}


def two_phase(data, notes):
    """Validation cross-entropy against total updates: codistillation (its own updates), two-phase
    distillation's student after the teachers' (teacher_steps + step), and the teachers' ensemble
    (the independent run two-phase trains its teachers as) over its own updates. Marked: the
    student's final loss and the total updates at which each series first reaches it."""
    frame = loss_curves(data, two_phase_label, _teachers)
    steps = frame["teacher_steps"] if "teacher_steps" in frame else pd.Series(np.nan, index=frame.index)
    is_student = frame["label"] == STUDENT
    if is_student.any() and steps[is_student].isna().any():
        raise ValueError("two_phase eval records without teacher_steps: total updates unknown")
    frame = frame.assign(total_steps=frame["step"] + steps.where(is_student, 0).fillna(0))
    if is_student.any():   # the teachers' curve ends where the student's phase begins
        teacher_end = steps[is_student].max()
        frame = frame[(frame["label"] != TEACHERS) | (frame["total_steps"] <= teacher_end)]
    fig, ax = _loss_figure(frame, notes, [TEACHERS, STUDENT, CODISTILL], "codistillation vs two-phase distillation",
                           data.task, x="total_steps")
    ax.set_xlabel("total updates per model (two-phase: the teachers' and then the student's)")
    target, reaches = two_phase_marks(frame)
    if target is not None:
        ax.axhline(target, color=NEUTRAL, lw=0.8, ls="--", gid="student's final loss",
                   label=f"two-phase student's final loss {target:.3f}")
        colors = {line.get_gid(): line.get_color() for line in ax.lines if line.get_gid()}
        for name, step in reaches.items():
            if step is None:
                continue
            ax.axvline(step, color=colors.get(name, "grey"), lw=0.8, ls=":", gid=f"reaches: {name}")
            ax.annotate(f"{step:.0f} updates", (step, target), textcoords="offset points", xytext=(3, 6), fontsize=8,
                        color=colors.get(name, "grey"))
        ax.legend()
    return fig


# ---------------------------------------------------------------- Table 1

# (row, its runs, the paper's log loss and mean absolute difference between retrains: Criteo, mean ±
# half the range over 5 retrains, Anil et al. Table 1)
DNN, ENSEMBLE, CODISTILLED = "DNN", "Ensemble of two DNNs", "Two-way codistilled DNN"
TABLE1_PAPER = {DNN: ("0.4480 ± 0.001", "0.029 ± 0.001"), ENSEMBLE: ("0.4461 ± 0.0002", "0.022 ± 0.002"),
                CODISTILLED: ("0.4458 ± 0.002", "0.019 ± 0.002")}
PAPER = "Anil et al. (Criteo; ± half the range of 5 retrains)"


def table1_label(row):
    name, n = cfg(row, "method.name"), int(cfg(row, "method.n", 1))
    if name == "allreduce" and n == 1:
        return DNN
    if name == "independent" and n == 2:
        return ENSEMBLE
    return CODISTILLED if name == "codistill" and n == 2 else None


def _column(stats, rows, scale=1.0):
    """'mean ± s.e.' per row (the decimals that separate them), 'not run' where a row has no value;
    and the number of seeds (or pairs) behind each."""
    stats = stats.set_index("label").reindex(rows)
    known = stats["mean"].notna()
    cells = pd.Series("not run", index=stats.index)
    if known.any():
        cells[known] = mean_se_column(stats[known][["mean", "se"]] * scale)
    return cells.tolist(), stats["seeds"].fillna(0).astype(int).tolist()


def table1(data, notes):
    """Per setting: final validation log loss (mean over seeds ± s.e.; the ensemble's is the loss of
    its mean prediction) and the churn between retrains (figures/logs/churn.py: mean absolute
    difference of the served predicted probabilities, and the share of examples whose predicted
    class differs; mean ± s.e. over disjoint pairs of seeds), beside Anil et al.'s numbers (Criteo)."""
    records = with_labels(data.records, label=table1_label)
    records = records[records["label"].notna()]
    finals = last_step(per_run(records[records["kind"] == "eval"], ["val_loss", "ensemble_val_loss"],
                               extra=("label",)))
    loss = finals["val_loss"]
    if "ensemble_val_loss" in finals:
        loss = loss.where(finals["label"] != ENSEMBLE, finals["ensemble_val_loss"])
    finals = finals.assign(log_loss=loss).dropna(subset=["log_loss"])
    notes.record(finals, "label")
    rows = list(TABLE1_PAPER)
    empty = pd.DataFrame(columns=["label", "mean", "se", "seeds"])
    loss_cells, seeds = _column(aggregate(finals, ["label"], "log_loss") if len(finals) else empty, rows)
    pairs = records[records["kind"] == "churn"]
    churn_stats = {metric: aggregate(pairs, ["label"], metric) if len(pairs) else empty
                   for metric in ("retrain_mad", "retrain_flip_share")}
    mad_cells, pair_counts = _column(churn_stats["retrain_mad"], rows)
    flip_cells, _ = _column(churn_stats["retrain_flip_share"], rows, scale=100.0)
    return pd.DataFrame({
        "Model": rows,
        "Validation log loss (nats)": loss_cells,
        "Mean absolute difference between retrains": mad_cells,
        "Predicted class differs between retrains (% of examples)": flip_cells,
        "seeds": seeds,
        "pairs of retrains": pair_counts,
        f"{PAPER}: log loss": [TABLE1_PAPER[row][0] for row in rows],
        f"{PAPER}: mean absolute difference": [TABLE1_PAPER[row][1] for row in rows],
    })
