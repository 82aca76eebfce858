"""The grammar translation stand-in (translation/data.py `Grammar`): deterministic, its noise
floor and BLEU ceiling as computed independently from its output, and the grammar it claims."""
import json
import math
import re
from collections import Counter

import pytest

from codistill_experiments.translation.data import (
    binary_entropy,
    ceiling_bleu,
    generate_corpus,
    generate_grammar_corpus,
    noise_floor_bits,
    unigram_plateau_bits,
)

CORPUS = {"seed": 0, "nouns": 40, "verbs": 10, "adjectives": 10, "zipf": 1.0, "synonyms": 0.2,
          "train_pairs": 300, "valid_pairs": 200, "test_pairs": 100}
CONTENT = re.compile(r"^-[NAV]\d+$")   # a target content word ends with its inflection


def test_the_corpus_is_a_pure_function_of_its_config():
    assert generate_grammar_corpus(CORPUS) == generate_grammar_corpus(dict(CORPUS))
    assert generate_grammar_corpus({**CORPUS, "seed": 1})["train"] != generate_grammar_corpus(CORPUS)["train"]


def test_the_noise_floor_is_the_synonym_entropy_of_every_content_word_per_target_token():
    """Counted from the text: every target word ending in a content inflection took one synonym
    draw of entropy H(0.2); fairseq counts every token and </s>."""
    targets = [target for _, target, _ in generate_grammar_corpus(CORPUS)["valid"]]
    words = sum(1 for target in targets for token in target.split() if CONTENT.match(token))
    tokens = sum(len(target.split()) + 1 for target in targets)
    h = -(0.2 * math.log2(0.2) + 0.8 * math.log2(0.8))
    assert noise_floor_bits(CORPUS) == pytest.approx(words * h / tokens, rel=1e-12)
    assert binary_entropy(0.2) == pytest.approx(h) and noise_floor_bits({**CORPUS, "synonyms": 0.0}) == 0


def plateau_by_hand(pairs):
    train = Counter(token for _, target, *_ in pairs["train"] for token in target.split() + ["</s>"])
    total, types = sum(train.values()), len(train) + 1
    valid = [token for _, target, *_ in pairs["valid"] for token in target.split() + ["</s>"]]
    return sum(-math.log2((train[token] + 1) / (total + types)) for token in valid) / len(valid)


@pytest.mark.parametrize("corpus, generate", [
    (CORPUS, generate_grammar_corpus),
    ({"seed": 0, "vocab": 24, "train_pairs": 300, "valid_pairs": 50, "test_pairs": 10, "min_len": 3, "max_len": 8,
      "noise": 0.05}, generate_corpus)])
def test_the_unigram_plateau_is_the_validation_cross_entropy_of_training_token_frequencies(corpus, generate):
    """A model that ignores the source: every validation token (and </s>) scored by its add-one
    smoothed frequency among the training targets' tokens; far above the noise floor."""
    assert unigram_plateau_bits(corpus) == pytest.approx(plateau_by_hand(generate(corpus)), rel=1e-12)
    if generate is generate_grammar_corpus:
        assert unigram_plateau_bits(corpus) > 5 * noise_floor_bits(corpus)


def test_the_best_translation_keeps_every_source_and_differs_only_in_synonym_stems():
    corpus, best = generate_grammar_corpus(CORPUS)["test"], generate_grammar_corpus(CORPUS, best=True)["test"]
    assert [source for source, _, _ in best] == [source for source, _, _ in corpus]
    inflections = lambda text: [token for token in text.split() if not token.endswith("@@")]   # noqa: E731
    assert all(inflections(x) == inflections(y) for (_, x, _), (_, y, _) in zip(corpus, best))
    assert sum(x != y for (_, x, _), (_, y, _) in zip(corpus, best)) > 0
    assert ceiling_bleu({**CORPUS, "synonyms": 0.0}) == pytest.approx(100.0)
    assert 50 < ceiling_bleu(CORPUS) < 100


def test_the_target_reorders_and_agrees_as_the_grammar_says():
    """Without synonyms: SOV (the verb last, after any postposition), the verb's last digit is its
    object's target gender, which is also its adjectives' gender digit, and the subject's number
    is the verb's first digit and the source determiner's last."""
    for source, target, _ in generate_grammar_corpus({**CORPUS, "synonyms": 0.0})["train"]:
        tokens = target.split()
        verb = tokens[-1]
        assert re.fullmatch(r"-V[01][012][01]", verb) and tokens[-2].endswith("@@")
        assert verb[2] == source.split()[0][-1]   # subject number: source determiner d<definite><gender><number>
        object_noun = [token for token in tokens if re.fullmatch(r"-N[01]1", token)]
        assert len(object_noun) == 1
        after_object = tokens[tokens.index(object_noun[0]) + 1:]
        for token in after_object:
            if re.fullmatch(r"-A[01][01]", token):
                assert token[2] == verb[-1]
            if re.fullmatch(r"-N[01]2|po\d", token):
                break


def test_the_regime_checks_measure_the_baseline_against_the_generator(monkeypatch, tmp_path):
    """Three seeds with label smoothing, three without; curves falling to 0.6 + seed/50 bits, flat
    over their last fifth; BLEU 60, 61, 62 against 57, 58, 59. Each check against a hand value."""
    import pandas as pd

    from figures.regime import grammar

    corpus = {**CORPUS, "synonyms": 0.1}
    monkeypatch.setattr(grammar, "header_config", lambda results, run_id: {"workload": {"corpus": corpus}})
    rows = []
    for smoothing, bleus in ((0.1, (60.0, 61.0, 62.0)), (0.0, (57.0, 58.0, 59.0))):
        for seed, bleu in enumerate(bleus):
            run = f"ls{smoothing}-{seed}"
            for step in range(100, 1300, 100):   # 12 evaluations; flat from update 900 on
                nll = 0.6 + seed / 50 + (0.0 if step >= 900 else (900 - step) / 400)
                rows.append({"run_id": run, "kind": "eval", "step": step, "model": 0, "val_nll": nll,
                             "cfg.schedule.label_smoothing": smoothing})
            rows.append({"run_id": run, "kind": "test", "step": 1200, "model": 0, "bleu": bleu,
                         "cfg.schedule.label_smoothing": smoothing})
    checks = {check.id: check for check in grammar.grammar_checks(pd.DataFrame(rows), "unused")}
    floor = noise_floor_bits(corpus)
    assert checks["floor_distance"].value == pytest.approx(0.62 / floor) and checks["floor_distance"].holds
    assert checks["below_ceiling"].value == pytest.approx(ceiling_bleu(corpus) - 61.0)
    assert checks["baseline_flattened"].value == pytest.approx(0.0) and checks["baseline_flattened"].holds
    # 3 BLEU apart; each mean's s.e. is 1/sqrt(3): the difference's sqrt(2/3) = 0.816, 3 > 2 x 0.816
    assert checks["label_smoothing_helps"].value == pytest.approx(3.0) and checks["label_smoothing_helps"].holds
    # no Table 2 manifest: the baseline's 3 seeds; BLEU s.d. 1, so sqrt 2 / sqrt 3
    assert checks["bleu_step_noise"].value == pytest.approx(math.sqrt(2) / math.sqrt(3))
    assert checks["bleu_step_noise"].holds   # 0.816 < 1
    assert checks["evaluations"].value == 12 and checks["evaluations"].holds

    # Table 2's manifest: the fewest seeds of a setting (5 and 4 here) divide the same s.d.
    manifest = tmp_path / "sweeps" / "table2" / "mini.json"
    manifest.parent.mkdir(parents=True)
    jobs = [{"run_id": f"n{n}s{seed}", "overrides": [f"method.n={n}", f"seed={seed}", "sweep=table2", "scale=mini"]}
            for n, seeds in ((1, 5), (2, 4)) for seed in range(seeds)]
    manifest.write_text(json.dumps(jobs))
    checks = {check.id: check for check in grammar.grammar_checks(pd.DataFrame(rows), tmp_path)}
    assert checks["bleu_step_noise"].value == pytest.approx(math.sqrt(2) / math.sqrt(4))


@pytest.mark.slow
def test_a_short_grammar_run_trains_on_subwords_and_scores_bleu_on_words(run_job):
    """The real fairseq path on the grammar: the data-bin holds subword units (`@@`), the run logs
    BLEU on the test set, and fairseq-generate's hypotheses and references are whole words."""
    directory, container = run_job(["workload=translation_grammar", "method=independent", "method.n=1",
                                    "workload.corpus.train_pairs=200", "workload.corpus.valid_pairs=30",
                                    "workload.corpus.test_pairs=20", "schedule.max_update=12",
                                    "schedule.warmup_updates=2", "workload.max_tokens=800"])
    from codistill_experiments.runlog import read_records
    from codistill_experiments.translation.results import read_generation

    records = read_records(directory / "metrics.jsonl")
    [test] = [record for record in records if record["kind"] == "test"]
    assert test["sentences"] == 20 and 0 <= test["bleu"] <= 100 and records[-1]["kind"] == "end"
    hypotheses, references = read_generation(directory / "model0" / "generate-test.txt")
    assert not any("@@" in sentence for sentence in hypotheses + references)
    pairs = generate_grammar_corpus(container["workload"]["corpus"])["test"]
    assert sorted(references) == sorted(target.replace("@@ ", "") for _, target, _ in pairs)
    dictionary = next((directory.parents[1] / "data").glob("translation_grammar-*/dict.tgt.txt")).read_text()
    assert any(line.split()[0].endswith("@@") for line in dictionary.splitlines())
    # the logits the regime's alpha_per_logit counts: fairseq's 4 special symbols and the file's
    # entries (its units and the padding to a multiple of 8)
    from figures.regime.translation import output_logits

    assert output_logits(container["workload"]) == 4 + len(dictionary.splitlines())


@pytest.mark.slow
def test_alpha_per_logit_compares_each_sweeps_scale_with_the_paper_dictionary_it_stands_for(monkeypatch):
    """Fig. 4 at 120 / 32768 holds; a Table 2 run left unscaled pulls each of the stand-in's 120
    logits 6632 / 120 = 55.3 times as hard as IWSLT'14's model and fails the check."""
    import pandas as pd

    from codistill_experiments.preflight import compose
    from figures.regime import translation

    workload = compose(["scale=mini", "workload=translation_grammar"])["workload"]
    assert translation.output_logits(workload) == 120    # 109 units + 4 special symbols, padded to 120
    monkeypatch.setattr(translation, "header_config", lambda results, run_id: {"workload": workload})

    def runs(scale):
        return pd.DataFrame([{"run_id": "r", "cfg.method.name": "codistill", "cfg.workload.alpha_scale": scale},
                             {"run_id": "c", "cfg.method.name": "allreduce", "cfg.workload.alpha_scale": None}])

    scaled = translation.check_alpha_per_logit({"fig4": runs(0.00366), "table2": runs(0.0181)}, "unused")
    assert scaled.holds and scaled.value == pytest.approx(0.00366 * 32768 / 120)   # 0.9994, farther than 1.0003
    unscaled = translation.check_alpha_per_logit({"fig4": runs(0.00366), "table2": runs(None)}, "unused")
    assert not unscaled.holds and unscaled.value == pytest.approx(6632 / 120)
