"""Click-through prediction (Anil et al. 2018, Sec. 3 and Table 1): Criteo's 13 integer and 26
categorical features, a feed-forward ReLU network with one logistic output.

Mini scale generates a Criteo-like click task (`generated_clicks`); paper scale reads the Criteo
Display Advertising Challenge's train.txt (`read_criteo`). Both give one float tensor per sample:
the 13 transformed integer features, then the 26 categorical ids (stored as floats, exact below
2^24), 0 meaning missing or rare, otherwise the value's frequency rank in the training data (1 = the
most frequent). The network (`ClickDNN`) returns the two logits [0, z]: the engine's softmax
cross-entropy over them is the logistic loss of z exactly, and argmax predicts a click when z > 0.
"""
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..data_checks import CRITEO_FILE, check_criteo_root
from ..datasets import InMemoryDataset, Workload, batch_is_ready
from ..names import CRITEO_HIDDEN

INTEGER_FEATURES, CATEGORICAL_FEATURES = 13, 26
ID_LIMIT = 2 ** 24   # float32 holds every integer below it exactly


def log_counts(values):
    """Criteo's usual transform of its integer (count) features: log1p, sign kept (a few columns
    hold small negative values); missing (NaN) -> 0."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    return np.sign(values) * np.log1p(np.abs(values))


def hidden_widths(width_scale):
    """The paper's hidden widths 2560, 1024, 256 (Sec. 3) times width_scale, rounded (at least 1)."""
    return [max(1, round(width * width_scale)) for width in CRITEO_HIDDEN]


class ClickDNN(nn.Module):
    """An embedding per categorical feature (its `rows` most frequent values; rarer ones and
    missing ones share row 0), concatenated with the integer features, then ReLU layers and one
    logit z, returned as [0, z]."""

    def __init__(self, vocab_sizes, embedding_dim, hidden, max_vocab):
        super().__init__()
        self.rows = [min(int(size), max_vocab) for size in vocab_sizes]
        self.register_buffer("row_limits", torch.tensor(self.rows, dtype=torch.long), persistent=False)
        self.embeddings = nn.ModuleList(nn.Embedding(rows + 1, embedding_dim) for rows in self.rows)
        for embedding in self.embeddings:   # small, as the integer features' scale (torch's default is N(0, 1))
            nn.init.normal_(embedding.weight, std=embedding_dim ** -0.5)
        sizes = [INTEGER_FEATURES + len(self.rows) * embedding_dim, *hidden]
        self.hidden = nn.Sequential(*(module for a, b in zip(sizes[:-1], sizes[1:])
                                      for module in (nn.Linear(a, b), nn.ReLU())))
        self.output = nn.Linear(sizes[-1], 1)

    def forward(self, inputs):
        dense, ids = inputs[:, :INTEGER_FEATURES], inputs[:, INTEGER_FEATURES:].long()
        ids = torch.where(ids > self.row_limits, 0, ids)
        embedded = [embedding(ids[:, j]) for j, embedding in enumerate(self.embeddings)]
        z = self.output(self.hidden(torch.cat([dense, *embedded], dim=1)))
        return torch.cat([torch.zeros_like(z), z], dim=1)


def click_model(cfg, vocab_sizes, seed, spec=None):
    torch.manual_seed(seed)
    return ClickDNN(vocab_sizes, cfg.embedding_dim, hidden_widths((spec or {}).get("width_scale", cfg.width_scale)),
                    cfg.max_vocab)


# ----- mini: generated clicks

def vocabulary_sizes(cfg, rng):
    """26 vocabularies from workload.vocab_min to vocab_max, evenly spaced in log, in a seeded order."""
    return rng.permutation(np.round(np.geomspace(cfg.vocab_min, cfg.vocab_max, CATEGORICAL_FEATURES)).astype(np.int64))


def zipf_values(rng, size, exponent, samples):
    """Values 1..size with P(k) proportional to k^-exponent (k is the value's frequency rank)."""
    cumulative = np.cumsum(np.arange(1, size + 1, dtype=np.float64) ** -exponent)
    return np.searchsorted(cumulative, rng.random(samples) * cumulative[-1], side="right") + 1


def solve_bias(logits, rate):
    """The bias b with mean(sigmoid(logits + b)) = rate (bisection: the mean increases with b)."""
    low, high = -30.0, 30.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if np.mean(1 / (1 + np.exp(-(logits + middle)))) < rate else (low, middle)
    return (low + high) / 2


def generated_clicks(cfg):
    """A Criteo-like click task generated deterministically from workload.data_seed.

    Integer features: counts floor(exp(N(mu, sigma^2))) (log-normal, heavy-tailed), a share of them
    Poisson(1) instead (a second mode at small counts), some missing, transformed by `log_counts`.
    Categorical features: Zipf-distributed values (exponent workload.zipf_exponent) over
    vocabularies of very different sizes (`vocabulary_sizes`), some missing (value 0).
    The hidden model: logit = b + sum_j a_j[v_j] (an effect per value, N(0, s_j^2), s_j drawn per
    feature) + sum over workload.interaction_pairs random feature pairs of <u_j[v_j], u_k[v_k]>
    (a factorisation machine of rank 4) + g(integer features) (a random ReLU network), the whole
    scaled to standard deviation workload.logit_std, and b solved so that the mean click
    probability is workload.click_rate. Labels are Bernoulli(sigmoid(logit)).

    Returns (inputs, targets, probabilities) of train_size + val_size samples, training first."""
    rng = np.random.default_rng(cfg.data_seed)
    samples = cfg.train_size + cfg.val_size
    dense = np.empty((samples, INTEGER_FEATURES))
    for j in range(INTEGER_FEATURES):
        mu, sigma = rng.uniform(0, 5), rng.uniform(0.5, 2.0)
        counts = np.floor(np.exp(mu + sigma * rng.standard_normal(samples)))
        counts = np.where(rng.random(samples) < rng.uniform(0, 0.5), rng.poisson(1.0, samples), counts)
        counts[rng.random(samples) < rng.choice([0.0, rng.uniform(0.05, 0.45)])] = np.nan
        dense[:, j] = log_counts(counts)
    sizes = vocabulary_sizes(cfg, rng)
    ids = np.empty((samples, CATEGORICAL_FEATURES), dtype=np.int64)
    for j, size in enumerate(sizes):
        ids[:, j] = zipf_values(rng, int(size), cfg.zipf_exponent, samples)
        ids[rng.random(samples) < rng.choice([0.0, 0.0, rng.uniform(0.05, 0.45)]), j] = 0

    logit = np.zeros(samples)
    for j, size in enumerate(sizes):   # an effect per value, missing (0) included
        logit += rng.uniform(0.2, 1.0) * rng.standard_normal(int(size) + 1)[ids[:, j]]
    for _ in range(cfg.interaction_pairs):
        j, k = rng.choice(CATEGORICAL_FEATURES, 2, replace=False)
        u_j, u_k = (rng.standard_normal((int(sizes[f]) + 1, 4)) / 2 for f in (j, k))
        logit += np.sum(u_j[ids[:, j]] * u_k[ids[:, k]], axis=1)
    weights_in, weights_out = rng.standard_normal((INTEGER_FEATURES, 16)) / 2, rng.standard_normal(16) / 4
    logit += np.maximum(dense @ weights_in, 0) @ weights_out
    logit = (logit - logit.mean()) / logit.std() * cfg.logit_std
    logit += solve_bias(logit, cfg.click_rate)
    probabilities = 1 / (1 + np.exp(-logit))
    clicks = (rng.random(samples) < probabilities).astype(np.int64)
    inputs = torch.tensor(np.concatenate([dense, ids], axis=1), dtype=torch.float32)
    return inputs, torch.tensor(clicks), torch.tensor(probabilities, dtype=torch.float32)


def criteo_mini(cfg):
    """The mini stand-in for Criteo (docs/mini-scale.md): generated clicks, ClickDNN."""
    inputs, targets, _ = generated_clicks(cfg)
    split = cfg.train_size
    vocab_sizes = inputs[:split, INTEGER_FEATURES:].amax(0).long().tolist()   # the values training has seen
    return Workload(train_set=InMemoryDataset(inputs[:split], targets[:split]),
                    val_set=InMemoryDataset(inputs[split:], targets[split:]), num_classes=2,
                    make_model=lambda seed, spec=None: click_model(cfg, vocab_sizes, seed, spec),
                    collate=batch_is_ready)


# ----- paper: Criteo's TSV

COLUMNS = (["label"] + [f"I{j}" for j in range(1, INTEGER_FEATURES + 1)]
           + [f"C{j}" for j in range(1, CATEGORICAL_FEATURES + 1)])
CATEGORICAL = COLUMNS[1 + INTEGER_FEATURES:]


def tsv_chunks(path, chunk_rows):
    """train.txt's rows: label, 13 integers, 26 hexadecimal hashes, tab-separated, empty = missing."""
    import pandas as pd

    dtypes = {"label": np.int8, **{name: np.float64 for name in COLUMNS[1:1 + INTEGER_FEATURES]},
              **{name: str for name in CATEGORICAL}}
    return pd.read_csv(path, sep="\t", header=None, names=COLUMNS, dtype=dtypes, chunksize=chunk_rows,
                       na_filter=True, keep_default_na=False, na_values=[""])


def validation_rows(rng, rows, val_fraction):
    """Whether each of the next `rows` rows is a validation row: Bernoulli(val_fraction) from one
    seeded stream, so that the split does not depend on the chunk size."""
    return rng.random(rows) < val_fraction


def read_criteo(path, val_fraction, split_seed, min_count, chunk_rows=1_000_000):
    """Criteo's train.txt in two passes: the first counts each categorical value over the training
    rows, the second maps values to ids by frequency (1 = the most frequent; values seen fewer than
    min_count times in the training rows, unseen ones and missing ones -> 0) and transforms the
    integers (`log_counts`). The split: each row is a validation row with probability val_fraction
    (`validation_rows`, seeded by split_seed). Returns ((train inputs, targets), (val inputs,
    targets), vocabulary sizes)."""
    import pandas as pd

    counts = [[] for _ in CATEGORICAL]
    rng = np.random.default_rng(split_seed)
    for chunk in tsv_chunks(path, chunk_rows):
        train = chunk[~validation_rows(rng, len(chunk), val_fraction)]
        for column, name in zip(counts, CATEGORICAL):
            column.append(train[name].value_counts())
    vocabularies = []
    for column in counts:
        total = pd.concat(column).groupby(level=0).sum() if column else pd.Series(dtype=np.int64)
        kept = total[total >= min_count]
        # by count, then by value: the ids do not depend on the order of the rows
        vocabularies.append(kept.sort_index().sort_values(ascending=False, kind="stable").index)
    if max(map(len, vocabularies)) >= ID_LIMIT:
        raise ValueError(f"{path}: a categorical feature keeps {max(map(len, vocabularies))} values, too many for "
                         "float32 ids; raise workload.min_count")

    parts = {False: [], True: []}
    rng = np.random.default_rng(split_seed)
    for chunk in tsv_chunks(path, chunk_rows):
        dense = log_counts(chunk[COLUMNS[1:1 + INTEGER_FEATURES]].to_numpy())
        ids = np.stack([vocabulary.get_indexer(chunk[name]) + 1   # -1 (not kept, or missing) -> 0
                        for name, vocabulary in zip(CATEGORICAL, vocabularies)], axis=1)
        inputs = np.concatenate([dense, ids], axis=1).astype(np.float32)
        labels = chunk["label"].to_numpy().astype(np.int64)
        validation = validation_rows(rng, len(chunk), val_fraction)
        for held_out in (False, True):
            parts[held_out].append((inputs[validation == held_out], labels[validation == held_out]))

    def joined(pieces):
        return (torch.from_numpy(np.concatenate([p[0] for p in pieces]) if pieces else np.empty((0, len(COLUMNS) - 1),
                                                                                                np.float32)),
                torch.from_numpy(np.concatenate([p[1] for p in pieces]) if pieces else np.empty(0, np.int64)))

    return joined(parts[False]), joined(parts[True]), [len(vocabulary) for vocabulary in vocabularies]


def parsed_once(path, val_fraction, split_seed, min_count):
    """read_criteo's result, parsed once per machine: the first rank writes it as .npy files under
    datasets.SCAN_CACHE (keyed by the file's path, size and modification time and the settings),
    the others wait on its lock; every rank then maps the files copy-on-write, so the ranks of a
    server share one copy of the rows in the page cache (Criteo's 11 GB TSV is 6.4 GB of float32)."""
    import hashlib
    import json
    import shutil

    from ..datasets import SCAN_CACHE
    from ..file_lock import exclusive_lock

    stat = os.stat(path)
    key = hashlib.sha1(json.dumps([os.path.realpath(path), stat.st_size, stat.st_mtime_ns, val_fraction, split_seed,
                                   min_count]).encode()).hexdigest()[:16]
    folder = SCAN_CACHE / f"criteo-{key}"
    SCAN_CACHE.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(SCAN_CACHE / f"criteo-{key}.lock"):
        if not folder.is_dir():
            (train_x, train_y), (val_x, val_y), sizes = read_criteo(path, val_fraction, split_seed, min_count)
            building = folder.with_name(f".{folder.name}.{os.getpid()}")
            shutil.rmtree(building, ignore_errors=True)
            building.mkdir()
            for name, tensor in (("train_x", train_x), ("train_y", train_y), ("val_x", val_x), ("val_y", val_y)):
                np.save(building / f"{name}.npy", tensor.numpy())
            (building / "vocabulary_sizes.json").write_text(json.dumps(sizes))
            os.rename(building, folder)
    arrays = {name: torch.from_numpy(np.load(folder / f"{name}.npy", mmap_mode="c"))
              for name in ("train_x", "train_y", "val_x", "val_y")}
    sizes = json.loads((folder / "vocabulary_sizes.json").read_text())
    return (arrays["train_x"], arrays["train_y"]), (arrays["val_x"], arrays["val_y"]), sizes


def criteo(cfg):
    """Paper scale: Criteo's train.txt from workload.data_root, ClickDNN at the paper's widths."""
    problem = check_criteo_root(cfg.data_root)
    if problem:
        raise FileNotFoundError(problem)
    (train_x, train_y), (val_x, val_y), vocab_sizes = parsed_once(Path(cfg.data_root) / CRITEO_FILE, cfg.val_fraction,
                                                                  cfg.split_seed, cfg.min_count)
    return Workload(train_set=InMemoryDataset(train_x, train_y), val_set=InMemoryDataset(val_x, val_y),
                    num_classes=2, make_model=lambda seed, spec=None: click_model(cfg, vocab_sizes, seed, spec),
                    collate=batch_is_ready)
