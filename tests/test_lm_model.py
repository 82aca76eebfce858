"""The plugin's `codistill_lstm_lm` (Anil et al. 2018, Sec. 3: two LSTM layers with layer
normalisation): shapes, parameter count by hand, each layer's outputs normalised per position, and
that it learns a tiny batch."""
import math
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("fairseq")
from fairseq.data import Dictionary  # noqa: E402

from codistill_fairseq.lstm_lm import LayerNormLSTMLanguageModel, LSTMLanguageModelConfig  # noqa: E402

WORDS = 20


def build(**settings):
    dictionary = Dictionary()
    for word in range(WORDS):
        dictionary.add_symbol(f"w{word}")
    cfg = LSTMLanguageModelConfig(**{"decoder_embed_dim": 8, "decoder_hidden_size": 12, "decoder_layers": 2,
                                     **settings})
    torch.manual_seed(0)
    return LayerNormLSTMLanguageModel.build_model(cfg, SimpleNamespace(target_dictionary=dictionary)), dictionary


def tokens(dictionary, batch=3, length=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(dictionary.nspecial, len(dictionary), (batch, length), generator=generator)


def test_output_is_one_logit_per_word_of_the_vocabulary_at_every_position():
    model, dictionary = build()
    logits, extra = model(tokens(dictionary), src_lengths=torch.full((3,), 7))
    assert logits.shape == (3, 7, len(dictionary)) == (3, 7, WORDS + 4)  # + fairseq's <s> <pad> </s> <unk>
    assert [state.shape for state in extra["inner_states"]] == [(3, 7, 12)] * 2


def test_parameter_count_is_embeddings_two_lstm_layers_their_layer_norms_and_the_projection():
    vocab, embed, hidden = WORDS + 4, 8, 12
    lstm = lambda inputs: 4 * hidden * (inputs + hidden) + 2 * 4 * hidden  # noqa: E731  (torch: 2 bias vectors)
    expected = vocab * embed + lstm(embed) + lstm(hidden) + 2 * 2 * hidden + hidden * vocab + vocab
    assert sum(p.numel() for p in build()[0].parameters()) == expected
    tied, _ = build(decoder_hidden_size=8, share_decoder_input_output_embed=True)
    assert sum(p.numel() for p in tied.parameters()) == vocab * 8 + 2 * (4 * 8 * 16 + 8 * 8 + 2 * 8)


def normalised(state, norm):
    """A layer's output with its LayerNorm's affine undone: what layer normalisation made of it."""
    return (state - norm.bias) / norm.weight


@pytest.mark.parametrize("layer", [0, 1])
def test_each_lstm_layer_output_is_normalised_over_its_units_at_every_position(layer):
    model, dictionary = build()
    norm = model.decoder.norms[layer]
    with torch.no_grad():  # a gain and bias that are not the identity, so that the check sees them undone
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    _, extra = model(tokens(dictionary))
    values = normalised(extra["inner_states"][layer], norm).detach()
    assert torch.allclose(values.mean(-1), torch.zeros(3, 7), atol=1e-5)
    # variance v / (v + 1e-5): LayerNorm's epsilon, against the small variance of an LSTM's outputs
    assert torch.allclose(values.var(-1, unbiased=False), torch.ones(3, 7), atol=1e-2)


def test_without_layer_norm_the_outputs_are_not_normalised():
    model, dictionary = build(no_layer_norm=True)
    _, extra = model(tokens(dictionary))
    # an LSTM's outputs lie in (-1, 1): their variance over the units is far below 1
    assert extra["inner_states"][0].detach().var(-1, unbiased=False).max() < 0.5


def test_the_logits_are_the_projection_of_the_last_normalised_layer():
    model, dictionary = build()
    logits, extra = model(tokens(dictionary))
    projection = model.decoder.output_projection
    assert torch.allclose(logits, extra["inner_states"][-1] @ projection.weight.T + projection.bias, atol=1e-6)


@pytest.mark.slow
def test_it_learns_a_tiny_batch():
    model, dictionary = build()
    batch = tokens(dictionary, batch=4, length=10)
    inputs, targets = batch[:, :-1], batch[:, 1:]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(inputs)[0].reshape(-1, len(dictionary)), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert abs(losses[0] - math.log(len(dictionary))) < 0.3   # about uniform at initialisation
    assert losses[-1] < 0.25 * losses[0]                        # 36 tokens memorised
