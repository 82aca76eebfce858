"""A small transformer language model on the generated corpus (workload lm_transformer_mini): the
peers' own setting (DiLoCo, SparseLoCo, MuLoCo and DeMo are measured on language-model
pretraining) in the torch engine, where every method of the frontier runs.

The corpus is lm_mini's (corpus.py: a sparse order-2 Markov chain over word classes), numbered as
fairseq numbers it: word wK is token K, and every line ends with </s> (token `vocab`), so an empty
line (a document's end) is a lone </s>. The token stream is cut into blocks of `tokens_per_sample`
consecutive tokens (across sentences and documents, as fairseq's sample_break_mode none); a block's
targets are its tokens shifted by one. The model returns one row of logits per token, [B x L, V],
and the collate flattens the targets to [B x L]: every token is a sample to the engine's loss, its
top-1 (next-token accuracy), its evaluation and the codistillation terms, whose MSE and predictions
are per token as Anil et al.'s language model's are.
"""
import hashlib
import json

import torch
from torch import nn

from ..datasets import InMemoryDataset, Workload
from .corpus import generate_lm_corpus


def token_stream(lines, vocab):
    """The corpus's lines as token ids: each word wK as K, each line's end as </s> (= vocab)."""
    ids = []
    for line in lines:
        ids.extend(int(word[1:]) for word in line.split())
        ids.append(vocab)
    return torch.tensor(ids, dtype=torch.long)


def blocks(stream, length, count):
    """The first `count` blocks of `length` tokens of the stream and their targets (the next tokens)."""
    available = (len(stream) - 1) // length
    if count > available:
        raise ValueError(f"the corpus holds {available} blocks of {length} tokens, fewer than the {count} asked for: "
                         "raise its documents or lower the workload's train_size / val_size")
    span = count * length
    return stream[:span].view(count, length), stream[1:span + 1].view(count, length)


def corpus_streams(corpus):
    """{split: token stream} of the generated corpus, generated once per machine and read back by the
    other ranks (generation is seconds of Python per rank; a run starts 8 of them)."""
    from codistill.internals import atomic_write_bytes

    from .. import datasets
    from ..file_lock import exclusive_lock

    key = hashlib.sha1(json.dumps(dict(corpus), sort_keys=True).encode()).hexdigest()[:16]
    datasets.SCAN_CACHE.mkdir(parents=True, exist_ok=True)
    cache = datasets.SCAN_CACHE / f"lm-corpus-{key}.pt"
    with exclusive_lock(datasets.SCAN_CACHE / f"lm-corpus-{key}.lock"):
        if not cache.exists():
            streams = {split: token_stream(lines, corpus["vocab"]) for split, lines in generate_lm_corpus(corpus).items()}
            atomic_write_bytes(cache, lambda handle: torch.save(streams, handle))
    return torch.load(cache, weights_only=True)


class CausalTransformerLM(nn.Module):
    """Token and learned position embeddings, pre-norm transformer blocks with causal self-attention
    (torch's TransformerEncoderLayer, no dropout: the corpus is large against the run), a final layer
    norm and an untied output layer; logits [B x L, vocab], one row per token."""

    def __init__(self, vocab, length, width, layers, heads):
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.randn(length, width) * 0.02)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, vocab)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def forward(self, tokens):
        length = tokens.shape[1]
        hidden = self.embed(tokens) + self.position[:length]
        hidden = self.blocks(hidden, mask=self.causal[:length, :length], is_causal=True)
        return self.output(self.norm(hidden)).reshape(-1, self.vocab)


def flatten_targets(batch):
    """A batch of blocks: the inputs [B, L] as they are, the targets as one per token [B x L]."""
    inputs, targets = batch
    return inputs, targets.reshape(-1)


def lm_transformer_mini(cfg):
    corpus = cfg.corpus
    if cfg.num_classes != corpus.vocab + 1:
        raise ValueError(f"workload.num_classes={cfg.num_classes}: the corpus's {corpus.vocab} words and </s> "
                         f"make {corpus.vocab + 1} tokens")
    streams = corpus_streams({key: corpus[key] for key in corpus})
    train = blocks(streams["train"], cfg.tokens_per_sample, cfg.train_size)
    val = blocks(streams["valid"], cfg.tokens_per_sample, cfg.val_size)

    def make_model(seed, spec=None):
        torch.manual_seed(seed)
        return CausalTransformerLM(cfg.num_classes, cfg.tokens_per_sample, cfg.width, cfg.layers, cfg.heads)

    return Workload(train_set=InMemoryDataset(*train), val_set=InMemoryDataset(*val), num_classes=cfg.num_classes,
                    make_model=make_model, collate=flatten_targets)
