"""The click-prediction workloads of Anil et al. 2018's Table 1 (tabular/criteo.py): the generated
Criteo stand-in, the [0, z] output, the Criteo TSV loader, the paper's widths."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from codistill_experiments.config import data_problem
from codistill_experiments.tabular.criteo import (
    CATEGORICAL_FEATURES,
    INTEGER_FEATURES,
    ClickDNN,
    generated_clicks,
    hidden_widths,
    read_criteo,
    validation_rows,
    vocabulary_sizes,
)
from codistill_experiments.workloads import build_workload


def mini_cfg(**changes):
    values = dict(name="criteo_mini", train_size=20000, val_size=5000, click_rate=0.256, logit_std=1.5, vocab_min=4,
                  vocab_max=1000, zipf_exponent=1.1, interaction_pairs=4, data_seed=3, embedding_dim=4,
                  max_vocab=100, width_scale=0.01, batch_per_rank=64, eval_batch=1000, loader_workers=0,
                  models=None, gpu_memory_gb=None)
    return OmegaConf.create({**values, **changes})


def log_loss(probability, clicks):
    probability, clicks = probability.double(), clicks.double()
    return float(-(clicks * probability.log() + (1 - clicks) * (1 - probability).log()).mean())


def test_generated_clicks_deterministic_with_the_stated_rate_and_vocabularies():
    cfg = mini_cfg()
    inputs, clicks, probability = generated_clicks(cfg)
    again = generated_clicks(cfg)
    assert torch.equal(inputs, again[0]) and torch.equal(clicks, again[1])
    other = generated_clicks(mini_cfg(data_seed=4))[0]
    assert not torch.equal(inputs, other)
    assert inputs.shape == (25000, INTEGER_FEATURES + CATEGORICAL_FEATURES)
    # the bias is solved for the mean probability; the labels' rate is within 4 standard errors of it
    assert float(probability.double().mean()) == pytest.approx(0.256, abs=1e-4)
    assert abs(float(clicks.double().mean()) - 0.256) < 4 * math.sqrt(0.256 * 0.744 / 25000)
    ids = inputs[:, INTEGER_FEATURES:].long()
    assert torch.equal(ids.float(), inputs[:, INTEGER_FEATURES:])   # whole ids, stored exactly
    sizes = sorted(vocabulary_sizes(cfg, np.random.default_rng(0)).tolist())
    assert sizes[0] == 4 and sizes[-1] == 1000 and len(sizes) == CATEGORICAL_FEATURES
    assert sorted(ids.amax(0).tolist()) == pytest.approx(sizes, rel=0.3)   # Zipf's rarest values may be unseen
    assert ids.amin() >= 0 and (ids == 0).any()                              # 0: missing
    # Zipf: in the largest vocabulary, value 1 is about 2^1.1 times as frequent as value 2
    largest = int(ids.amax(0).argmax())
    counts = torch.bincount(ids[:, largest])
    assert counts[1] / counts[2] == pytest.approx(2 ** 1.1, rel=0.15)
    # the hidden model is informative: its log loss is well below the base rate's
    assert log_loss(probability, clicks) < log_loss(torch.full_like(probability, 0.256), clicks) - 0.05


def test_two_logits_give_the_logistic_loss_and_predict_a_click_when_z_is_positive():
    torch.manual_seed(0)
    z = torch.randn(64) * 3
    clicks = torch.randint(2, (64,))
    two = torch.stack([torch.zeros_like(z), z], dim=1)
    assert torch.allclose(F.cross_entropy(two, clicks), F.binary_cross_entropy_with_logits(z, clicks.float()),
                          atol=1e-6)
    model = ClickDNN([5] * CATEGORICAL_FEATURES, embedding_dim=2, hidden=[8, 4], max_vocab=10)
    inputs = torch.cat([torch.randn(32, INTEGER_FEATURES), torch.randint(6, (32, CATEGORICAL_FEATURES)).float()], 1)
    logits = model(inputs)
    assert torch.equal(logits[:, 0], torch.zeros(32))
    assert torch.equal(logits.argmax(1), (logits[:, 1] > 0).long())
    assert torch.allclose(torch.softmax(logits, 1)[:, 1], torch.sigmoid(logits[:, 1]))


def test_ids_beyond_the_embedding_rows_share_row_zero():
    model = ClickDNN([50] * CATEGORICAL_FEATURES, embedding_dim=2, hidden=[4], max_vocab=10)
    assert all(embedding.num_embeddings == 11 for embedding in model.embeddings)
    dense = torch.randn(1, INTEGER_FEATURES)
    rare = torch.cat([dense, torch.full((1, CATEGORICAL_FEATURES), 37.0)], 1)
    missing = torch.cat([dense, torch.zeros(1, CATEGORICAL_FEATURES)], 1)
    assert torch.equal(model(rare), model(missing))


def test_widths_keep_the_papers_ratios():
    assert hidden_widths(1) == [2560, 1024, 256]
    assert hidden_widths(0.125) == [320, 128, 32]
    for scale in (0.125, 0.25, 0.5):
        first, second, third = hidden_widths(scale)
        assert first / second == 2.5 and second / third == 4


def test_mini_workload_builds_the_model_at_its_widths():
    workload = build_workload(mini_cfg(width_scale=0.125))
    model = workload.make_model(0)
    assert [layer.out_features for layer in model.hidden if isinstance(layer, torch.nn.Linear)] == [320, 128, 32]
    assert len(workload.train_set) == 20000 and len(workload.val_set) == 5000 and workload.num_classes == 2
    assert workload.make_model(0, {"width_scale": 0.25}).hidden[0].out_features == 640
    inputs, _ = workload.train_set[[0, 1, 2]]
    assert model(inputs).shape == (3, 2)


# ----- the TSV loader

ROWS = [  # label, I1..I13, C1..C26; "" = missing
    ["1", "3", "", "-2", *["0"] * 10, "aa", "", *["0f"] * 24],
    ["0", "", "7", "0", *["1"] * 10, "aa", "b1", *["0f"] * 24],
    ["0", "1", "1", "1", *["1"] * 10, "bb", "b1", *["0f"] * 24],
    ["1", "0", "0", "0", *["2"] * 10, "aa", "b2", *["0f"] * 24],
    ["0", "5", "5", "5", *["5"] * 10, "cc", "b1", *["0f"] * 24],
]


def write_tsv(path, rows):
    path.write_text("".join("\t".join(row) + "\n" for row in rows))


def test_read_criteo_values_missing_values_and_ids_by_frequency(tmp_path):
    path = tmp_path / "train.txt"
    write_tsv(path, ROWS)
    (train_x, train_y), (val_x, val_y), sizes = read_criteo(path, val_fraction=0.0, split_seed=0, min_count=2,
                                                            chunk_rows=2)
    assert len(val_y) == 0 and train_y.tolist() == [1, 0, 0, 1, 0]
    assert train_x.shape == (5, 39) and train_x.dtype == torch.float32
    # integers: sign * log1p(|x|), missing -> 0
    assert train_x[0, :3].tolist() == pytest.approx([math.log(4), 0.0, -math.log(3)])
    assert train_x[1, :3].tolist() == pytest.approx([0.0, math.log(8), 0.0])
    # C1: aa (3 times) -> 1; bb, cc (once, below min_count 2) -> 0. C2: b1 (3) -> 1, b2 (once) -> 0, missing -> 0
    assert train_x[:, 13].tolist() == [1, 1, 0, 1, 0]
    assert train_x[:, 14].tolist() == [0, 1, 1, 0, 1]
    assert train_x[:, 15].tolist() == [1] * 5 and sizes[:3] == [1, 1, 1]
    with_rare = read_criteo(path, 0.0, 0, min_count=1, chunk_rows=3)
    # min_count 1: C1 aa (3) -> 1, then bb and cc (once each) by value -> 2, 3
    assert with_rare[0][0][:, 13].tolist() == [1, 1, 2, 1, 3] and with_rare[2][:2] == [3, 2]


def test_read_criteo_split_is_seeded_and_counts_training_rows_only(tmp_path):
    rng = np.random.default_rng(0)
    rows = [[str(rng.integers(2)), *[str(rng.integers(100)) for _ in range(13)],
             *[f"{rng.integers(20):08x}" for _ in range(26)]] for _ in range(400)]
    path = tmp_path / "train.txt"
    write_tsv(path, rows)
    (train_x, train_y), (val_x, val_y), sizes = read_criteo(path, 0.25, split_seed=7, min_count=1, chunk_rows=64)
    held_out = np.random.default_rng(7).random(400) < 0.25
    assert len(val_y) == held_out.sum() and len(train_y) == 400 - held_out.sum()
    labels = np.array([int(row[0]) for row in rows])
    assert val_y.tolist() == labels[held_out].tolist() and train_y.tolist() == labels[~held_out].tolist()
    # the chunk size does not move the split, and the same seed gives the same split
    again = read_criteo(path, 0.25, split_seed=7, min_count=1, chunk_rows=400)
    assert torch.equal(again[1][0], val_x) and torch.equal(again[0][0], train_x)
    # ids rank values by their count in the training rows
    column = np.array([row[14] for row in rows])[~held_out]
    values, counts = np.unique(column, return_counts=True)
    most_frequent = values[np.lexsort((values, -counts))[0]]
    assert train_x[column == most_frequent, 13].unique().tolist() == [1.0]
    assert sizes[0] == len(values)


def test_validation_rows_do_not_depend_on_the_chunks():
    whole = validation_rows(np.random.default_rng(5), 1000, 0.3)
    rng = np.random.default_rng(5)
    pieces = np.concatenate([validation_rows(rng, n, 0.3) for n in (1, 299, 700)])
    assert np.array_equal(whole, pieces)


def test_missing_criteo_file_is_refused_before_a_job_runs(tmp_path):
    job = {"workload": {"name": "criteo", "data_root": str(tmp_path)}, "schedule": {"name": "anil_adagrad"}}
    assert "train.txt" in data_problem(job)
    write_tsv(tmp_path / "train.txt", [["1", "2", "3"]])
    assert "3 tab-separated fields" in data_problem(job)
    write_tsv(tmp_path / "train.txt", ROWS)
    assert data_problem(job) is None


@pytest.mark.parametrize("overrides", [["workload=criteo_mini"], ["scale=paper", "workload=criteo"]])
def test_anil_adagrad_keeps_lr_0001_at_a_models_batch_of_either_scale(tmp_path, overrides):
    from conftest import compose_job

    from codistill_experiments.run_schedules import build_schedules

    job = compose_job([*overrides, "schedule=anil_adagrad", "method.nodes_per_model=1"], tmp_path)
    assert job["workload"]["name"] == overrides[-1].split("=")[1] and job["schedule"]["optimizer"] == "adagrad"
    batch = job["scale"]["batch_per_rank"] * job["scale"]["ranks_per_model"]
    assert batch == 256
    schedules = build_schedules(job["schedule"], job["method"], batch, steps_per_epoch=100)
    assert [schedules.lr(step) for step in (0, 99, 199)] == [0.001] * 3
    assert schedules.weight_decay(150) == 0.0 and schedules.total_steps == 200


def test_criteo_is_parsed_once_per_machine_and_mapped_by_every_rank(tmp_path, monkeypatch):
    from codistill_experiments import datasets
    from codistill_experiments.tabular import criteo

    rng = np.random.default_rng(1)
    rows = [[str(rng.integers(2)), *[str(rng.integers(100)) for _ in range(13)],
             *[f"{rng.integers(20):08x}" for _ in range(26)]] for _ in range(200)]
    path = tmp_path / "train.txt"
    write_tsv(path, rows)
    monkeypatch.setattr(datasets, "SCAN_CACHE", tmp_path / "cache")
    parses = []
    monkeypatch.setattr(criteo, "read_criteo", lambda *args: parses.append(args) or read_criteo(*args))
    first, second = (criteo.parsed_once(path, 0.1, 0, 2) for _ in range(2))    # two ranks of one machine
    expected = read_criteo(path, 0.1, 0, 2)
    assert len(parses) == 1
    for got in (first, second):
        assert all(torch.equal(a, b) for part in (0, 1) for a, b in zip(got[part], expected[part]))
        assert got[2] == expected[2]
    criteo.parsed_once(path, 0.2, 0, 2)                                      # other settings: parsed again
    assert len(parses) == 2


def test_a_training_set_above_the_limit_stays_in_host_memory_and_its_batches_go_to_the_device():
    from codistill_experiments.training.sampling import CoordinatedBatchSampler, InMemoryBatches

    inputs, targets = torch.arange(48.0).reshape(24, 2), torch.arange(24)
    sampler = CoordinatedBatchSampler(24, 4, ranks_per_group=1, rank_in_group=0, order_seed=0)
    meta = torch.device("meta")   # stands in for a GPU: a tensor there is not the host's
    kept = InMemoryBatches(inputs, targets, sampler, meta, resident_limit_bytes=0)
    assert kept.inputs.device.type == "cpu"
    batches = list(kept)
    assert len(batches) == 6 and all(x.device == meta and x.shape == (4, 2) and y.shape == (4,) for x, y in batches)
    assert InMemoryBatches(inputs, targets, sampler, meta).inputs.device == meta   # below the limit: copied whole
