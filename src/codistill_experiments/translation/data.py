"""Data of the translation workloads: checks of a fairseq data-bin, and the mini corpus.

Paper scale reads a data-bin made by `fairseq-preprocess` (scripts/prepare_iwslt14_de_en.py,
scripts/prepare_wmt16_en_de.py). Mini scale generates a deterministic parallel corpus and
binarises it with the real `fairseq-preprocess`, once per corpus setting, under
<results_root>/data/. The generated "language pair": a source sentence of random words s0..s{V-1};
its translation maps every word through a fixed random dictionary (t<perm[w]>), swaps each pair of
neighbouring words (a local reordering, as adjective-noun order between languages), and replaces
a fraction `noise` of the target words by random ones (an irreducible error, so that a large
model can over-fit the training pairs).
"""
import hashlib
import json
import os
import random
import shutil
from pathlib import Path

SPLITS = ("train", "valid", "test")   # fairseq-preprocess's subsets; generation reads one


def expected_files(data_bin, source, target):
    names = [f"dict.{source}.txt", f"dict.{target}.txt"]
    for split in SPLITS:
        for lang in (source, target):
            names += [f"{split}.{source}-{target}.{lang}.bin", f"{split}.{source}-{target}.{lang}.idx"]
    return [Path(data_bin) / name for name in names]


def check_data_bin(workload):
    """Why `workload.data_bin` is not a usable fairseq data-bin, or None."""
    data_bin, source, target = workload.get("data_bin"), workload["source_lang"], workload["target_lang"]
    missing = [path.name for path in expected_files(data_bin or ".", source, target) if not path.is_file()]
    if data_bin and not missing:
        return None
    hint = workload.get("data_bin_env", "workload.data_bin")
    return (f"workload.data_bin={data_bin!r}: not a fairseq-preprocess output for {source}-{target} (missing "
            f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}). Prepare it with "
            f"{workload.get('prepare_script', 'scripts/')} (docs/translation.md, 'Translation data') and set {hint}")


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


def corpus_key(workload):
    blob = json.dumps({"corpus": workload["corpus"], "source": workload["source_lang"],
                       "target": workload["target_lang"]}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def mini_data_bin(workload, results_root, preprocess):
    """The mini data-bin, generated and binarised on first use. `preprocess(argv, log_path)` runs
    fairseq-preprocess with that argument list. Several jobs may build it at once: each builds in its
    own folder and the first rename wins."""
    target = Path(results_root) / "data" / f"{workload['name']}-{corpus_key(workload)}"
    if target.is_dir():
        return target
    source, target_lang = workload["source_lang"], workload["target_lang"]
    building = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    (building / "raw").mkdir(parents=True)
    for split, pairs in generate_corpus(workload["corpus"]).items():
        for lang, column in ((source, 0), (target_lang, 1)):
            (building / "raw" / f"{split}.{lang}").write_text("".join(pair[column] + "\n" for pair in pairs))
    raw = building / "raw"
    preprocess(["--source-lang", source, "--target-lang", target_lang, "--trainpref", str(raw / "train"),
                "--validpref", str(raw / "valid"), "--testpref", str(raw / "test"), "--destdir", str(building),
                "--workers", "1"], building / "preprocess.log")
    (building / "corpus.json").write_text(json.dumps(workload["corpus"], indent=1) + "\n")
    try:
        os.rename(building, target)
    except OSError:  # another job finished first: use its copy
        shutil.rmtree(building, ignore_errors=True)
    return target
