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

The generated "language" of the language model (lm_mini, lm_transformer_mini):
codistill_experiments/language_model/corpus.py.

The generated grammar (translation_grammar, a harder stand-in: `Grammar`): sentences subject - verb
- object (- preposition phrase) of a source language translated into a target language that orders
them subject - object (- phrase - postposition) - verb, puts adjectives after their noun in mirror
order and marks definiteness with a particle after the phrase. Both inflect: source determiners and
adjectives agree with their noun's gender (3) and number, its verb with the subject's number and the
tense; target nouns carry number and case, adjectives the target gender (2, assigned independently of
the source's) and number, the verb the subject's number, the tense and its object's target gender
(an agreement across the sentence). A verb translates one way before an animate object and another
before an inanimate one. Stems are 1-3 random syllables, drawn by a Zipf law from lexicons of
hundreds of stems, written as subword units (`ka@@ lo@@ -n0`: syllables, then the inflection);
BLEU is scored on words (fairseq-generate --remove-bpe). The one irreducible error: each content
word takes its stem's synonym with probability `synonyms`, so the conditional entropy of a target
sentence given its source is (content words) x H(synonyms) bits, the corpus's noise floor
(`noise_floor_bits`), and the best possible translation (always the usual stem) scores
`ceiling_bleu`. Rare stems, seen a few times in training, are what a model cannot learn well.
"""
import hashlib
import json
import math
import os
import random
import shutil
from collections import Counter
from pathlib import Path

from ..language_model.corpus import SPLITS, generate_lm_corpus, lm_chain, lm_noise_floor_bits  # noqa: F401  (also this module's names)


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


SOURCE_SOUNDS = ("ptkbdgmnlrsfv", "aeiou")    # the syllables of each language: onset, vowel
TARGET_SOUNDS = ("ptkbdgmnlrshz", "aeiouy")
STEM_SYLLABLES, STEM_SYLLABLE_WEIGHTS = (1, 2, 3), (2, 5, 3)
ADJECTIVES_PER_PHRASE, ADJECTIVE_WEIGHTS = (0, 1, 2), (5, 4, 1)
PLURAL, DEFINITE, ANIMATE, PHRASE = 0.4, 0.5, 0.3, 0.5   # chances: a plural noun, ..., a preposition phrase
PREPOSITIONS = 8


def binary_entropy(p):
    return 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def _stems(rng, count, sounds, taken):
    syllables = [onset + vowel for onset in sounds[0] for vowel in sounds[1]]
    made = []
    while len(made) < count:
        stem = tuple(rng.choice(syllables) for _ in range(rng.choices(STEM_SYLLABLES, STEM_SYLLABLE_WEIGHTS)[0]))
        if stem not in taken:
            taken.add(stem)
            made.append(stem)
    return made


def _word(stem, inflection):
    return [f"{syllable}@@" for syllable in stem] + [inflection]


class Grammar:
    """The generated language pair of translation_grammar (module docstring): its lexicons, genders
    and animacy, drawn from cfg["seed"]; `pair(rng)` draws one sentence and its translation. With
    `best` the translation takes every usual stem (the best possible output, for `ceiling_bleu`)
    while drawing the same random numbers, so the same sentences come out."""

    def __init__(self, cfg, best=False):
        rng = random.Random(cfg["seed"])
        self.cfg, self.best = cfg, best
        sizes = {"noun": cfg["nouns"], "verb": cfg["verbs"], "adjective": cfg["adjectives"]}
        source_taken, target_taken = set(), set()
        self.source = {kind: _stems(rng, n, SOURCE_SOUNDS, source_taken) for kind, n in sizes.items()}
        # each source stem's (usual, synonym) target stems; a verb has a second pair for animate objects
        self.target = {kind: [tuple(_stems(rng, 2, TARGET_SOUNDS, target_taken)) for _ in range(n)]
                       for kind, n in sizes.items()}
        self.animate_verb = [tuple(_stems(rng, 2, TARGET_SOUNDS, target_taken)) for _ in range(sizes["verb"])]
        self.zipf = {kind: [1.0 / (rank + 1) ** cfg["zipf"] for rank in range(n)] for kind, n in sizes.items()}
        self.source_gender = [rng.randrange(3) for _ in range(sizes["noun"])]
        self.target_gender = [rng.randrange(2) for _ in range(sizes["noun"])]
        self.animate = [rng.random() < ANIMATE for _ in range(sizes["noun"])]
        self.postpositions = [f"po{i}" for i in range(PREPOSITIONS)]
        rng.shuffle(self.postpositions)

    def _draw(self, rng, kind, k=None):
        drawn = rng.choices(range(len(self.zipf[kind])), self.zipf[kind], k=k or 1)
        return drawn if k is not None else drawn[0]

    def _stem(self, rng, pair):
        """The usual stem, or with probability `synonyms` its synonym (one draw either way)."""
        synonym = rng.random() < self.cfg["synonyms"]
        return pair[1] if synonym and not self.best else pair[0]

    def _phrase(self, rng, case):
        """(source tokens, target tokens, its noun, content words) of a noun phrase in `case`."""
        noun, plural, definite = self._draw(rng, "noun"), int(rng.random() < PLURAL), int(rng.random() < DEFINITE)
        adjectives = self._draw(rng, "adjective", k=rng.choices(ADJECTIVES_PER_PHRASE, ADJECTIVE_WEIGHTS)[0])
        gender, target_gender = self.source_gender[noun], self.target_gender[noun]
        source = [f"d{definite}{gender}{plural}"]
        for adjective in adjectives:
            source += _word(self.source["adjective"][adjective], f"-a{gender}{plural}")
        source += _word(self.source["noun"][noun], f"-n{plural}")
        target = _word(self._stem(rng, self.target["noun"][noun]), f"-N{plural}{case}")
        for adjective in reversed(adjectives):
            target += _word(self._stem(rng, self.target["adjective"][adjective]), f"-A{target_gender}{plural}")
        return source, target + (["na"] if definite else []), noun, 1 + len(adjectives)

    def pair(self, rng):
        """(source sentence, target sentence, content words of the target)."""
        subject, subject_target, subject_noun, words = self._phrase(rng, 0)
        plural = int(subject[0][-1])
        obj, obj_target, obj_noun, obj_words = self._phrase(rng, 1)
        verb, tense = self._draw(rng, "verb"), rng.randrange(3)
        source = subject + _word(self.source["verb"][verb], f"-v{plural}{tense}") + obj
        pair = self.animate_verb[verb] if self.animate[obj_noun] else self.target["verb"][verb]
        verb_target = _word(self._stem(rng, pair), f"-V{plural}{tense}{self.target_gender[obj_noun]}")
        target, words = subject_target + obj_target, words + obj_words + 1
        if rng.random() < PHRASE:
            preposition = rng.randrange(PREPOSITIONS)
            phrase, phrase_target, _, phrase_words = self._phrase(rng, 2)
            source += [f"pr{preposition}", *phrase]
            target += [*phrase_target, self.postpositions[preposition]]
            words += phrase_words
        return " ".join(source), " ".join(target + verb_target), words


def generate_grammar_corpus(cfg, best=False):
    """{split: [(source, target, content words), ...]}, a pure function of `cfg` (translation_grammar's
    `corpus` block); `best`: every target the best possible translation of its source."""
    grammar, rng = Grammar(cfg, best), random.Random(cfg["seed"] + 1)
    return {split: [grammar.pair(rng) for _ in range(cfg[f"{split}_pairs"])] for split in SPLITS}


def noise_floor_bits(cfg, split="valid"):
    """The corpus's noise floor on `split`: the conditional entropy of the targets given their
    sources, in bits per target token as fairseq counts them (every token and </s>), i.e. the
    validation NLL of the best possible model."""
    pairs = generate_grammar_corpus(cfg)[split]
    return (sum(words for *_, words in pairs) * binary_entropy(cfg["synonyms"])
            / sum(len(target.split()) + 1 for _, target, _ in pairs))


def ceiling_bleu(cfg, split="test", tokenize="13a"):
    """BLEU of the best possible translations of `split` (every usual stem) against its references,
    on words (subword units joined, as fairseq-generate --remove-bpe does)."""
    from sacrebleu.metrics import BLEU

    words = lambda text: text.replace("@@ ", "")   # noqa: E731
    best = [words(target) for _, target, _ in generate_grammar_corpus(cfg, best=True)[split]]
    references = [words(target) for _, target, _ in generate_grammar_corpus(cfg)[split]]
    return BLEU(tokenize=tokenize).corpus_score(best, [references]).score


def unigram_plateau_bits(corpus, split="valid"):
    """The unigram plateau of a generated translation corpus on `split`: the cross entropy, in bits
    per target token as fairseq counts them (every token and </s>), of its targets under the training
    targets' token frequencies, i.e. the validation NLL of a model that ignores its source and
    context. A stalled model stays near it. `corpus`: the workload's `corpus` block (grammar or not)."""
    pairs = generate_grammar_corpus(corpus) if "nouns" in corpus else generate_corpus(corpus)
    tokens = lambda split: [t for pair in pairs[split] for t in pair[1].split() + ["</s>"]]   # noqa: E731
    counts = Counter(tokens("train"))
    # tokens unseen in training are fairseq's <unk>: one more type, add-one smoothed
    total, types = counts.total(), len(counts) + 1
    held_out = tokens(split)
    return -sum(math.log2((counts[t] + 1) / (total + types)) for t in held_out) / len(held_out)


GRAMMAR_WORKLOAD = "translation_grammar"


def is_grammar(workload):
    return workload.get("name") == GRAMMAR_WORKLOAD


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
    generate = generate_grammar_corpus if is_grammar(workload) else generate_corpus
    for split, pairs in generate(workload["corpus"]).items():
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
