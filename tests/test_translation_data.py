"""Translation data: the generated mini corpus, the data-bin check, and the preparation scripts
(run here on missing data, and the WMT'16 one on a tiny stand-in for Google's archive)."""
import importlib.util
import subprocess
import sys

import pytest
from conftest import ROOT, compose_job

from codistill_experiments.translation.checks import workload_data_problem
from codistill_experiments.translation.data import generate_corpus

SCRIPTS = ROOT / "scripts"
CORPUS = {"seed": 0, "vocab": 24, "train_pairs": 500, "valid_pairs": 20, "test_pairs": 20, "min_len": 3,
          "max_len": 8, "noise": 0.05}


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_mini_corpus_is_deterministic_and_is_a_reordered_dictionary_translation_with_noise():
    corpus = generate_corpus(CORPUS)
    assert corpus == generate_corpus(dict(CORPUS))
    assert generate_corpus({**CORPUS, "seed": 1}) != corpus
    assert [len(corpus[split]) for split in ("train", "valid", "test")] == [500, 20, 20]
    # Recover the dictionary from noise-free agreement, then count the words that break it.
    votes = {}
    for source, target in corpus["train"]:
        words, translation = source.split(), target.split()
        assert len(words) == len(translation) and 3 <= len(words) <= 8
        swapped = list(words)
        for i in range(0, len(words) - 1, 2):
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        for word, translated in zip(swapped, translation):
            votes.setdefault(word, {}).setdefault(translated, 0)
            votes[word][translated] += 1
    dictionary = {word: max(counts, key=counts.get) for word, counts in votes.items()}
    assert len(set(dictionary.values())) == 24                        # a one-to-one dictionary
    total = sum(sum(counts.values()) for counts in votes.values())
    wrong = total - sum(counts[dictionary[word]] for word, counts in votes.items())
    assert 0.02 < wrong / total < 0.08                                # 5 % noise (some draw the right word)


def test_a_missing_paper_data_bin_is_named_with_its_variable_and_script(tmp_path):
    workload = compose_job(["workload=iwslt14_transformer", "scale=paper", f"workload.data_bin={tmp_path}"],
                           tmp_path)["workload"]
    problem = workload_data_problem(workload)
    assert "dict.de.txt" in problem and "IWSLT14_DE_EN_DATA_BIN" in problem
    assert "scripts/prepare_iwslt14_de_en.py" in problem


@pytest.mark.parametrize("script, expected", [("prepare_iwslt14_de_en", "de-en.tgz"),
                                              ("prepare_wmt16_en_de", "wmt16_en_de.tar.gz")])
def test_preparation_scripts_stop_with_a_clear_message_when_the_raw_data_is_missing(tmp_path, script, expected):
    done = subprocess.run([sys.executable, str(SCRIPTS / f"{script}.py"), "--raw", str(tmp_path / "empty"),
                           "--out", str(tmp_path / "bin")], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and expected in done.stderr and "never downloads" in done.stderr
    assert not (tmp_path / "bin").exists()
    helped = subprocess.run([sys.executable, str(SCRIPTS / f"{script}.py"), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "fairseq-preprocess" in helped.stdout


@pytest.mark.slow
def test_wmt16_script_binarises_the_archive_layout_into_a_usable_data_bin(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for prefix, lines in (("train.tok.clean.bpe.32000", 30), ("newstest2013.tok.bpe.32000", 5),
                          ("newstest2014.tok.bpe.32000", 5)):
        for lang, word in (("en", "the cat@@ s sat"), ("de", "die kat@@ zen sa@@ ssen")):
            (raw / f"{prefix}.{lang}").write_text("".join(f"{word} {i}\n" for i in range(lines)))
    out = tmp_path / "wmt16_en_de_bpe32k"
    done = subprocess.run([sys.executable, str(SCRIPTS / "prepare_wmt16_en_de.py"), "--raw", str(raw), "--out",
                           str(out), "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    workload = compose_job(["workload=wmt16_transformer_big", "scale=paper", f"workload.data_bin={out}"],
                           tmp_path)["workload"]
    assert workload_data_problem(workload) is None
    assert (out / "dict.en.txt").read_text() == (out / "dict.de.txt").read_text()   # joined dictionary


def test_iwslt14_script_follows_the_fairseq_recipe_filters():
    prepare = load_script("prepare_iwslt14_de_en")
    pairs = [("a b", "c d"), ("a", "b c"), ("a " * 176, "b " * 176), ("a b c", "d e")]
    # ratio 1.5 drops 1 vs 2 tokens; 176 tokens is too long
    assert list(prepare.clean(pairs)) == [("a b", "c d"), ("a b c", "d e")]


def test_iwslt14_script_reads_the_segments_and_drops_the_talk_metadata(tmp_path):
    prepare = load_script("prepare_iwslt14_de_en")
    (tmp_path / "train.tags.de-en.de").write_text(
        "<url>http://x</url>\n<talkid>1</talkid>\n<title>Ein Titel</title>\nHallo Welt .\n<keywords>k</keywords>\n")
    assert list(prepare.train_lines(tmp_path, "de")) == ["Ein Titel", "Hallo Welt ."]
    (tmp_path / "x.xml").write_text('<doc>\n<seg id="1"> It\u2019s fine. </seg>\n<seg id="2">Two</seg>\n</doc>\n')
    assert list(prepare.xml_segments(tmp_path / "x.xml")) == ["It's fine.", "Two"]
