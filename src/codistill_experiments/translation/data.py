"""Data of the fairseq workloads (translation, language modelling): checks of a fairseq data-bin,
and the mini corpora.

Paper scale reads a data-bin made by `fairseq-preprocess` (scripts/prepare_iwslt14_de_en.py,
scripts/prepare_wmt16_en_de.py). Mini scale generates a deterministic parallel corpus and
binarises it with the real `fairseq-preprocess`, once per corpus setting, under
<results_root>/data/. The generated "language pair": a source sentence of random words s0..s{V-1};
its translation maps every word through a fixed random dictionary (t<perm[w]>), swaps each pair of
neighbouring words (a local reordering, as adjective-noun order between languages), and replaces
a fraction `noise` of the target words by random ones (an irreducible error, so that a large
model can over-fit the training pairs).

The generated "language" of the language model (lm_mini, standing in for Common Crawl): documents
of sentences of words w0..w{V-1} from a sparse order-2 Markov chain over word classes. Word w is in
class w mod C; the class of the next word depends on the classes of the two words before it (the
start of the sentence is a class of its own), among `successors` classes with random weights, and
the word within its class follows a Zipf distribution over the class's words. A model can thus
learn a lot beyond word frequencies (what follows a pair of classes), but not everything: its
floor is the chain's entropy. Each sentence is one line (fairseq ends it with </s>), and an empty
line ends a document (a lone </s>, as the paper's end-of-document token).
"""
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

SPLITS = ("train", "valid", "test")   # fairseq-preprocess's subsets; generation reads one


def is_language_model(workload):
    return workload.get("task") == "language_modeling"


def expected_files(data_bin, source, target):
    names = [f"dict.{source}.txt", f"dict.{target}.txt"]
    for split in SPLITS:
        for lang in (source, target):
            names += [f"{split}.{source}-{target}.{lang}.bin", f"{split}.{source}-{target}.{lang}.idx"]
    return [Path(data_bin) / name for name in names]


def expected_lm_files(data_bin):
    """fairseq-preprocess --only-source's output that language_modeling reads (training, validation)."""
    return [Path(data_bin) / name for name in ("dict.txt", "train.bin", "train.idx", "valid.bin", "valid.idx")]


def check_data_bin(workload):
    """Why `workload.data_bin` is not a usable fairseq data-bin, or None."""
    data_bin = workload.get("data_bin")
    if is_language_model(workload):
        paths, what = expected_lm_files(data_bin or "."), "--only-source (a language model's)"
    else:
        source, target = workload["source_lang"], workload["target_lang"]
        paths, what = expected_files(data_bin or ".", source, target), f"for {source}-{target}"
    missing = [path.name for path in paths if not path.is_file()]
    if data_bin and not missing:
        return None
    hint = workload.get("data_bin_env", "workload.data_bin")
    how = ("fairseq-preprocess --only-source of the tokenised text (docs/translation.md, 'LSTM language model')"
           if is_language_model(workload) else
           f"{workload.get('prepare_script', 'scripts/')} (docs/translation.md, 'Translation data')")
    return (f"workload.data_bin={data_bin!r}: not a fairseq-preprocess output {what} (missing "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}). Prepare it with {how} and set {hint}")


def _pair(rng, cfg, mapping):
    length = rng.randint(cfg["min_len"], cfg["max_len"])
    words = [rng.randrange(cfg["vocab"]) for _ in range(length)]
    reordered = list(words)
    for i in range(0, length - 1, 2):
        reordered[i], reordered[i + 1] = reordered[i + 1], reordered[i]
    translated = [mapping[w] if rng.random() >= cfg["noise"] else rng.randrange(cfg["vocab"]) for w in reordered]
    return " ".join(f"s{w}" for w in words), " ".join(f"t{w}" for w in translated)


def generate_corpus(cfg):
    """{split: [(source sentence, target sentence), ...]}, a pure function of `cfg` (the workload's
    `corpus` block): the same pairs on every machine and Python version (random.Random is stable)."""
    rng = random.Random(cfg["seed"])
    mapping = list(range(cfg["vocab"]))
    rng.shuffle(mapping)
    sizes = {"train": cfg["train_pairs"], "valid": cfg["valid_pairs"], "test": cfg["test_pairs"]}
    return {split: [_pair(rng, cfg, mapping) for _ in range(sizes[split])] for split in SPLITS}


def lm_chain(cfg, rng):
    """The Markov chain of the generated language: {(class, class): (next classes, weights)} with
    class C the start of a sentence, and {class: (its words, Zipf weights)}."""
    classes = cfg["classes"]
    words = {c: [w for w in range(cfg["vocab"]) if w % classes == c] for c in range(classes)}
    within = {}
    for c in range(classes):
        rng.shuffle(words[c])
        within[c] = (words[c], [1.0 / (rank + 1) ** cfg["zipf"] for rank in range(len(words[c]))])
    successors = {}
    for first in range(classes + 1):
        for second in range(classes + 1):
            following = rng.sample(range(classes), cfg["successors"])
            successors[first, second] = (following, [0.2 + rng.random() for _ in following])
    return successors, within


def _sentence(rng, cfg, successors, within):
    start = cfg["classes"]
    context, words = (start, start), []
    for _ in range(rng.randint(cfg["min_len"], cfg["max_len"])):
        following, weights = successors[context]
        chosen = rng.choices(following, weights)[0]
        members, zipf = within[chosen]
        words.append(rng.choices(members, zipf)[0])
        context = (context[1], chosen)
    return " ".join(f"w{w}" for w in words)


def generate_lm_corpus(cfg):
    """{split: [line, ...]}, a pure function of `cfg` (the lm_mini workload's `corpus` block): the
    sentences of `documents` documents per split, each of min..max_sentences sentences and an empty
    line."""
    rng = random.Random(cfg["seed"])
    successors, within = lm_chain(cfg, rng)
    corpus = {}
    for split in SPLITS:
        lines = []
        for _ in range(cfg[f"{split}_documents"]):
            lines += [_sentence(rng, cfg, successors, within)
                      for _ in range(rng.randint(cfg["min_sentences"], cfg["max_sentences"]))]
            lines.append("")
        corpus[split] = lines
    return corpus


def corpus_key(workload):
    blob = json.dumps({"corpus": workload["corpus"], "source": workload.get("source_lang"),
                       "target": workload.get("target_lang")}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def write_raw_corpus(workload, raw):
    """The generated corpus as fairseq-preprocess's text files in folder `raw`, and the arguments
    that binarise them."""
    splits = {split: raw / split for split in SPLITS}
    if is_language_model(workload):
        for split, lines in generate_lm_corpus(workload["corpus"]).items():
            splits[split].write_text("".join(line + "\n" for line in lines))
        return ["--only-source"] + [part for split in SPLITS for part in (f"--{split}pref", str(splits[split]))]
    source, target_lang = workload["source_lang"], workload["target_lang"]
    for split, pairs in generate_corpus(workload["corpus"]).items():
        for lang, column in ((source, 0), (target_lang, 1)):
            (raw / f"{split}.{lang}").write_text("".join(pair[column] + "\n" for pair in pairs))
    return ["--source-lang", source, "--target-lang", target_lang,
            *[part for split in SPLITS for part in (f"--{split}pref", str(splits[split]))]]


def mini_data_bin(workload, results_root, preprocess):
    """The mini data-bin, generated and binarised on first use. `preprocess(argv, log_path)` runs
    fairseq-preprocess with that argument list. Several jobs may build it at once: each builds in its
    own folder and the first rename wins."""
    target = Path(results_root) / "data" / f"{workload['name']}-{corpus_key(workload)}"
    if target.is_dir():
        return target
    building = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    (building / "raw").mkdir(parents=True)
    argv = write_raw_corpus(workload, building / "raw")
    preprocess([*argv, "--destdir", str(building), "--workers", "1"], building / "preprocess.log")
    (building / "corpus.json").write_text(json.dumps(workload["corpus"], indent=1) + "\n")
    try:
        os.rename(building, target)
    except OSError:  # another job finished first: use its copy
        shutil.rmtree(building, ignore_errors=True)
    return target
