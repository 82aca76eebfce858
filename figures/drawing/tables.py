"""The tables of the paper (Table 1: training loss and top-1 per batch size; Table 2: BLEU of n-way
codistillation), each a pandas DataFrame of 'mean ± s.e.' cells printed with the decimals that tell
its rows apart."""
import numpy as np
import pandas as pd

from .curves import curves
from .labels import LOSS_UNITS, recipe_label
from .seed_means import aggregate, check_one_run_per_seed, last_step, per_run


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
    """BLEU of n-way codistillation (n = 1: one model), the same updates per device; each row says its
    label smoothing (the recipe's one model keeps 0.1, codistillation removes it, A.3)."""
    tests = data.records[data.records["kind"] == "test"]
    if tests.empty or "bleu" not in tests:
        raise ValueError("no `test` records with bleu in these logs")
    smoothing = tests["cfg.schedule.label_smoothing"] if "cfg.schedule.label_smoothing" in tests else np.nan
    tests = tests.assign(n=tests["n_way"], smoothing=smoothing)   # 1: one model; n: n-way codistillation
    frame = per_run(tests, ["bleu"], keys=(), extra=("n", "smoothing"))
    check_one_run_per_seed(frame, ["n", "smoothing"])
    bleu = aggregate(frame, ["n", "smoothing"], "bleu").sort_values(["n", "smoothing"], ascending=[True, False])
    notes.record(frame.assign(label=[f"n = {n}, label smoothing {ls:g}" for n, ls in zip(frame["n"], frame["smoothing"])]),
                 "label")
    return pd.DataFrame({"n": bleu["n"].tolist(), "label smoothing": [f"{ls:g}" for ls in bleu["smoothing"]],
                         "BLEU Score": mean_se_column(bleu), "seeds": bleu["seeds"].tolist()})
