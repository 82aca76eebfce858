"""Prediction churn between retrains (Anil et al. 2018, Sec. 3.5 and Table 1): how much the
predictions of two runs that differ only in their seed differ, from each run's saved validation
predictions (<run dir>/predictions-model<i>.npy, float16 [validation samples, classes] in validation
order, written by a run with save_predictions=true; figures/pack.py packs them into one
predictions.npz).

The prediction a run serves: a single model its own; an ensemble (method independent, n >= 2) the
mean of its models' probabilities; any other run of several models (codistillation, two-phase
students) model 0, "picking one of the copies arbitrarily to make predictions" (Anil et al.).

Two served predictions differ by
- the mean absolute difference of predicted probabilities: the total-variation distance
  1/2 sum_c |p_a,c - p_b,c| averaged over examples (for 2 classes |p_a(click) - p_b(click)|, the
  paper's "mean absolute difference between retrains");
- the share of examples whose predicted class (argmax) differs.

Retrains are paired disjointly in seed order, (0, 1), (2, 3), ..., so that pairs are independent:
one churn row per (setting, pair), with `seed` the pair's index, so that the claims' mean and
standard error over seeds (figures/claims/groups.py) are over pairs. registry.load appends these
rows (kind "churn") to the records of every id whose runs saved predictions.
"""
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

PREDICTIONS = re.compile(r"predictions-model(\d+)\.npy")
PACKED = "predictions.npz"           # the committed form: every model's array, keys model<i>
CHURN_METRICS = ("retrain_mad", "retrain_flip_share")


def prediction_files(directory):
    """{model index: path} of a run directory's saved predictions (the engine's form)."""
    found = {}
    for path in Path(directory).glob("predictions-model*.npy"):
        match = PREDICTIONS.fullmatch(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def read_predictions(directory):
    """{model index: float32 array [samples, classes]} from a run directory: the engine's
    predictions-model<i>.npy files, else the packed predictions.npz; {} when it has neither."""
    files = prediction_files(directory)
    if files:
        return {model: np.load(path).astype(np.float32) for model, path in files.items()}
    packed = Path(directory) / PACKED
    if packed.exists():
        with np.load(packed) as arrays:
            return dict(sorted((int(key[len("model"):]), arrays[key].astype(np.float32)) for key in arrays.files))
    return {}


def packed_predictions(directory):
    """The bytes of predictions.npz holding a run directory's predictions-model<i>.npy files
    (deflated; fixed timestamps, so the same arrays always give the same bytes); None without any."""
    files = prediction_files(directory)
    if not files:
        return None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for model, path in files.items():
            entry = zipfile.ZipInfo(f"model{model}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def served(predictions, method):
    """The probabilities a run serves: the mean over models for an ensemble (method independent),
    model 0 for anything else (a single model; one copy of a codistilled or distilled set)."""
    if not predictions:
        raise ValueError("no predictions")
    if method == "independent":
        return np.mean([predictions[m] for m in sorted(predictions)], axis=0)
    return predictions[min(predictions)]


def churn(a, b):
    """(mean total-variation distance, share of examples whose argmax differs) between two
    prediction arrays [samples, classes] of the same validation examples."""
    if a.shape != b.shape:
        raise ValueError(f"predictions of different shapes {a.shape} and {b.shape}: not the same validation set")
    mad = 0.5 * np.abs(a.astype(np.float64) - b.astype(np.float64)).sum(axis=1).mean()
    flips = (a.argmax(axis=1) != b.argmax(axis=1)).mean()
    return float(mad), float(flips)


def seed_pairs(seeds):
    """Disjoint pairs in seed order: [(s0, s1), (s2, s3), ...]; an odd last seed is left out."""
    ordered = sorted(seeds)
    return list(zip(ordered[0::2], ordered[1::2]))


def churn_records(records, results_root):
    """One row per (setting, disjoint pair of seeds) of the finished runs in `records` whose
    directories under results_root/runs hold predictions: retrain_mad, retrain_flip_share, seed =
    the pair's index, pair_seeds, run_id '<a>+<b>', kind 'churn', step (the runs' last), the
    validation samples, and the first run's config and derived columns. Empty without predictions."""
    if records.empty:
        return pd.DataFrame()
    runs = records.drop_duplicates("run_id")
    served_by_run = {}
    for _, run in runs.iterrows():
        predictions = read_predictions(Path(results_root) / "runs" / run["run_id"])
        if predictions:
            served_by_run[run["run_id"]] = served(predictions, run.get("cfg.method.name"))
    if not served_by_run:
        return pd.DataFrame()
    last_step = records.groupby("run_id")["step"].max()
    run_level = [c for c in records.columns if c.startswith("cfg.") or c in RUN_LEVEL]
    rows = []
    with_predictions = runs[runs["run_id"].isin(served_by_run)]
    for setting, group in with_predictions.groupby("setting", sort=False):
        by_seed = dict(zip(group["seed"], group["run_id"]))
        for index, (seed_a, seed_b) in enumerate(seed_pairs(by_seed)):
            a, b = by_seed[seed_a], by_seed[seed_b]
            mad, flips = churn(served_by_run[a], served_by_run[b])
            first = group[group["run_id"] == a].iloc[0]
            rows.append({**{c: first[c] for c in run_level}, "run_id": f"{a}+{b}", "seed": index,
                         "pair_seeds": f"{seed_a},{seed_b}", "setting": setting, "kind": "churn",
                         "step": min(last_step[a], last_step[b]), "val_samples": len(served_by_run[a]),
                         "retrain_mad": mad, "retrain_flip_share": flips})
    return pd.DataFrame(rows)


# per-run columns a churn row carries from its first run (besides every cfg.* column)
RUN_LEVEL = {"scale", "scale_note", "run_sweep_id", "git_commit", "setup", "n_way", "gamma"}


def with_churn(records, results_root):
    """records with the churn rows of its runs appended (records itself when no run saved predictions)."""
    extra = churn_records(records, results_root)
    return records if extra.empty else pd.concat([records, extra], ignore_index=True)
