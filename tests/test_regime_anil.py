"""The regime invariants of Anil et al.'s stand-ins (figures/regime/criteo.py, language_model.py) on
hand-made baseline logs and predictions, each expected value worked out by hand."""
import math

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from codistill_experiments.tabular.criteo import generated_clicks
from codistill_experiments.translation.data import lm_noise_floor_bits
from figures.regime import criteo, language_model


def baseline(val_losses, train_loss=0.49, batch=256, seeds=(0, 1, 2, 3)):
    """Eval records of DNN runs, one per seed, at steps 100 and 200: val_losses = (previous, last)."""
    rows = []
    for seed in seeds:
        for step, val in zip((100, 200), val_losses):
            rows.append({"run_id": f"r{seed}", "seed": seed, "setting": "method=allreduce", "kind": "eval",
                         "step": step, "val_loss": val + 0.001 * seed, "train_loss": train_loss,
                         "batch_per_model": batch, "cfg.workload.name": "criteo_mini", "cfg.method.name": "allreduce"})
    return pd.DataFrame(rows)


def test_still_falling_is_the_last_evaluations_change_averaged_over_seeds():
    check = criteo.check_still_falling(baseline((0.52, 0.50)))
    assert check.value == pytest.approx(-0.02) and check.holds
    assert not criteo.check_still_falling(baseline((0.50, 0.51))).holds


def test_not_memorised_is_train_over_val_of_the_last_evaluation():
    # val 0.50 + 0.001 x seed over seeds 0..3: mean 0.5015; train 0.49
    check = criteo.check_not_memorised(baseline((0.52, 0.50)))
    assert check.value == pytest.approx(0.49 / 0.5015) and check.holds
    assert not criteo.check_not_memorised(baseline((0.52, 0.50), train_loss=0.3)).holds


def test_churn_is_resolved_by_the_standard_error_over_disjoint_seed_pairs(tmp_path):
    """Pairs (0,1), (2,3): the click probabilities of seed 2k+1 differ from seed 2k's by d_k on every
    sample, so the pair's mean absolute difference is d_k (values exact in float16): d = 8/128, 9/128,
    mean 8.5/128, s.e. over the two pairs 0.5/128: s.e. / mean = 1/17."""
    records = baseline((0.52, 0.50))
    offsets = {0: 0.0, 1: 8 / 128, 2: 0.0, 3: 9 / 128}
    for seed, offset in offsets.items():
        clicks = np.full(10, 0.25 + offset)
        directory = tmp_path / "runs" / f"r{seed}"
        directory.mkdir(parents=True)
        np.save(directory / "predictions-model0.npy", np.stack([1 - clicks, clicks], 1).astype(np.float16))
    check = criteo.check_churn(records, tmp_path)
    assert check.value == pytest.approx(1 / 17)
    assert check.holds


def test_the_gap_closed_is_measured_against_the_base_rate_and_the_hidden_model():
    cfg = OmegaConf.load("src/conf/workload/criteo_mini.yaml")
    cfg.train_size, cfg.val_size = 4000, 2000
    _, clicks, probabilities = generated_clicks(cfg)
    y, p = clicks[4000:].numpy().astype(float), probabilities[4000:].numpy().astype(float)
    rate = y.mean()
    base = -np.mean(y * math.log(rate) + (1 - y) * math.log(1 - rate))
    bayes = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    halfway = (base + bayes) / 2
    check = criteo.check_gap_closed(baseline((0.6, halfway), seeds=(0,)), cfg)
    assert check.value == pytest.approx(0.5, abs=1e-4) and check.holds
    assert not criteo.check_gap_closed(baseline((0.6, base), seeds=(0,)), cfg).holds


def test_updates_per_epoch_are_the_rows_over_the_batch():
    cfg = OmegaConf.create({"train_size": 1_000_000})
    check = criteo.check_updates(cfg, baseline((0.52, 0.50)))
    assert check.value == 3906 and check.holds


# ---------------------------------------------------------------- the LSTM language-model stand-in

def lm_baseline(curves):
    """Eval records of independent lm_mini runs: curves {seed: [val NLL at steps 100, 200, 300, 400]}."""
    return pd.DataFrame([{"run_id": f"r{seed}", "seed": seed, "step": 100 * (i + 1), "val_nll": value,
                          "cfg.workload.name": "lm_mini", "cfg.method.name": "independent"}
                         for seed, curve in curves.items() for i, value in enumerate(curve)])


LM_CORPUS = {"seed": 0, "vocab": 100, "classes": 10, "successors": 3, "zipf": 1.0, "min_len": 4, "max_len": 12,
             "min_sentences": 3, "max_sentences": 8, "train_documents": 10, "valid_documents": 100,
             "test_documents": 10}


@pytest.fixture
def lm_corpus(monkeypatch):
    monkeypatch.setattr(language_model, "header_config", lambda results, run_id: {"workload": {"corpus": LM_CORPUS}})


def test_the_language_model_is_still_falling_and_resolvable(lm_corpus):
    """Seeds end at 4.30, 4.32, 4.34 (s.e. 0.01155); halfway (update 200) at 4.6, 4.62, 4.64: a
    second-half drop of 0.3, so s.e. / drop = 0.0385; over the last fifth (from update 300, the last
    evaluation at or before 320, to 400) the NLL changes by -0.05 on average."""
    records = lm_baseline({0: [5.0, 4.6, 4.35, 4.30], 1: [5.0, 4.62, 4.37, 4.32], 2: [5.0, 4.64, 4.39, 4.34]})
    falling, resolvable, above_floor, evaluations = language_model.language_model_checks(records, "unused")
    assert falling.value == pytest.approx(-0.05) and falling.holds
    assert resolvable.value == pytest.approx(0.02 / math.sqrt(3) / 0.3) and resolvable.holds
    assert above_floor.value == pytest.approx(4.32 - lm_noise_floor_bits(LM_CORPUS))
    assert evaluations.value == 4 and not evaluations.holds   # fewer than 10
    flat = lm_baseline({0: [5.0, 4.6, 4.30, 4.31], 1: [5.0, 4.62, 4.32, 4.33]})
    assert not language_model.language_model_checks(flat, "unused")[0].holds


def test_the_language_model_floor_is_the_generators_own_bits_per_token():
    """Independently: replay the generator's draws (language_model/corpus.py generate_lm_corpus) and sum
    -log2 of the probability of what it drew: per word its class given the two before and the word
    within its class; per sentence its length, per document its number of sentences, each uniform
    (the floor tells them token by token as stop-or-go decisions, whose product is the same)."""
    import random

    from codistill_experiments.translation.data import lm_chain

    rng = random.Random(LM_CORPUS["seed"])
    successors, within = lm_chain(LM_CORPUS, rng)
    lengths = LM_CORPUS["max_len"] - LM_CORPUS["min_len"] + 1
    counts = LM_CORPUS["max_sentences"] - LM_CORPUS["min_sentences"] + 1
    bits = tokens = 0.0
    for split in ("train", "valid"):
        for _ in range(LM_CORPUS[f"{split}_documents"]):
            document_bits, document_tokens = math.log2(counts), 1   # its count, its lone </s>
            for _ in range(rng.randint(LM_CORPUS["min_sentences"], LM_CORPUS["max_sentences"])):
                length = rng.randint(LM_CORPUS["min_len"], LM_CORPUS["max_len"])
                context = (LM_CORPUS["classes"], LM_CORPUS["classes"])
                document_bits += math.log2(lengths)
                for _ in range(length):
                    following, weights = successors[context]
                    chosen = rng.choices(following, weights)[0]
                    members, zipf = within[chosen]
                    word = rng.choices(members, zipf)[0]
                    document_bits -= math.log2(weights[following.index(chosen)] / sum(weights))
                    document_bits -= math.log2(zipf[members.index(word)] / sum(zipf))
                    context = (context[1], chosen)
                document_tokens += length + 1
            if split == "valid":
                bits, tokens = bits + document_bits, tokens + document_tokens
    assert lm_noise_floor_bits(LM_CORPUS) == pytest.approx(bits / tokens, rel=1e-12)
