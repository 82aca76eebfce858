"""The generated "language" of the language model (lm_mini, standing in for Common Crawl): documents
of sentences of words w0..w{V-1} from a sparse order-2 Markov chain over word classes. Word w is in
class w mod C; the class of the next word depends on the classes of the two words before it (the
start of the sentence is a class of its own), among `successors` classes with random weights, and
the word within its class follows a Zipf distribution over the class's words. A model can thus
learn a lot beyond word frequencies (what follows a pair of classes), but not everything: its
floor is the chain's entropy. Each sentence is one line (fairseq ends it with </s>), and an empty
line ends a document (a lone </s>, as the paper's end-of-document token).

Read by both engines: fairseq binarises the lines (translation/data.py mini_data_bin, workload
lm_mini), the torch engine numbers the same tokens (language_model/transformer.py, lm_transformer_mini).
"""
import math
import random

SPLITS = ("train", "valid", "test")   # fairseq-preprocess's subsets; generation reads one


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


def _stop_bits(stopped, done, low, high):
    """Bits of the event "a uniform count on [low, high] stops (or goes on) after `done`"."""
    if done < low:
        return 0.0
    stop = 1.0 / (high - done + 1)
    return -math.log2(stop if stopped else 1.0 - stop)


def lm_noise_floor_bits(cfg, split="valid"):
    """The noise floor of the generated language model corpus on `split`: bits per token of the
    generator itself (the chain's class and Zipf word probabilities, the uniform sentence and
    document lengths deciding each </s>), over fairseq's tokens (each line's words and </s>, a lone
    </s> ending a document): the validation NLL of the best possible model that sees the whole
    history (fresh-state blocks of tokens_per_sample can only do worse)."""
    rng = random.Random(cfg["seed"])
    successors, within = lm_chain(cfg, rng)
    classes = {}
    for klass, (members, weights) in within.items():
        total = sum(weights)
        classes.update({word: (klass, weight / total) for word, weight in zip(members, weights)})
    start = cfg["classes"]
    bits = tokens = 0
    document = []
    for line in generate_lm_corpus(cfg)[split]:
        if line:
            document.append(line)
            continue
        for number, sentence in enumerate(document):
            context, words = (start, start), [int(word[1:]) for word in sentence.split()]
            for done, word in enumerate(words):
                klass, within_class = classes[word]
                following, weights = successors[context]
                class_probability = sum(w for f, w in zip(following, weights) if f == klass) / sum(weights)
                bits += -math.log2(class_probability * within_class)
                bits += _stop_bits(False, done, cfg["min_len"], cfg["max_len"])
                context = (context[1], klass)
            bits += _stop_bits(True, len(words), cfg["min_len"], cfg["max_len"])     # its </s>
            more = number + 1 < len(document)   # another sentence, or the document's lone </s>
            bits += _stop_bits(not more, number + 1, cfg["min_sentences"], cfg["max_sentences"])
            tokens += len(words) + 1
        tokens += 1
        document = []
    return bits / tokens
