"""`codistill_lstm_lm`: the language model of Anil et al. 2018's Common Crawl experiments (Sec. 3):
"an RNN language model with two LSTM layers of 1024 units each with layer normalization (Ba et al.,
2016)" and 256-dimensional input embeddings, as a fairseq model:

    embeddings -> dropout -> [LSTM layer -> LayerNorm -> dropout] x layers -> projection over the vocabulary

Each LSTM layer's outputs are normalised over their units (LayerNorm with its gain and bias) before
the next layer and before the output projection. fairseq's own `lstm_lm` is not reused: its decoder
steps LSTMCells in a Python loop with no hook between the layers, so a layer-normalised variant
needs its own forward anyway; this one runs each layer as one torch.nn.LSTM (cuDNN on GPU). The
paper's recurrent state carried across batches is not: fairseq's language_modeling task gives each
block of tokens_per_sample tokens its own fresh state (docs/translation.md, "LSTM language model").
"""
from dataclasses import dataclass, field

from fairseq.dataclass import FairseqDataclass
from fairseq.models import FairseqDecoder, FairseqLanguageModel, register_model
from fairseq.models.lstm import Embedding
from torch import nn

DEFAULT_MAX_TARGET_POSITIONS = 100000


@dataclass
class LSTMLanguageModelConfig(FairseqDataclass):
    decoder_embed_dim: int = field(default=256, metadata={"help": "input embedding dimension (Sec. 3: 256)"})
    decoder_hidden_size: int = field(default=1024, metadata={"help": "LSTM units per layer (Sec. 3: 1024)"})
    decoder_layers: int = field(default=2, metadata={"help": "LSTM layers (Sec. 3: 2)"})
    # a switch that is off by default (fairseq turns a bool field into a flag that sets it)
    no_layer_norm: bool = field(default=False, metadata={"help": "no LayerNorm after the LSTM layers (Sec. 3 has them)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the embeddings and each layer's output"})
    share_decoder_input_output_embed: bool = field(default=False, metadata={
        "help": "tie the output projection to the input embeddings (needs hidden size = embedding dim)"})


class LayerNormLSTMDecoder(FairseqDecoder):
    def __init__(self, dictionary, cfg):
        super().__init__(dictionary)
        self.embed_tokens = Embedding(len(dictionary), cfg.decoder_embed_dim, dictionary.pad())
        self.dropout = nn.Dropout(cfg.dropout)
        sizes = [cfg.decoder_embed_dim] + [cfg.decoder_hidden_size] * cfg.decoder_layers
        self.lstms = nn.ModuleList(nn.LSTM(sizes[i], sizes[i + 1], batch_first=True)
                                   for i in range(cfg.decoder_layers))
        self.norms = nn.ModuleList(nn.Identity() if cfg.no_layer_norm else nn.LayerNorm(cfg.decoder_hidden_size)
                                   for _ in range(cfg.decoder_layers))
        if cfg.share_decoder_input_output_embed:
            if cfg.decoder_hidden_size != cfg.decoder_embed_dim:
                raise ValueError("--share-decoder-input-output-embed needs --decoder-hidden-size equal to "
                                 f"--decoder-embed-dim (got {cfg.decoder_hidden_size} and {cfg.decoder_embed_dim})")
            self.output_projection = nn.Linear(cfg.decoder_hidden_size, len(dictionary), bias=False)
            self.output_projection.weight = self.embed_tokens.weight
        else:
            self.output_projection = nn.Linear(cfg.decoder_hidden_size, len(dictionary))

    def extract_features(self, prev_output_tokens, **kwargs):
        """The last layer's normalised outputs [batch, time, hidden], and every layer's."""
        x = self.dropout(self.embed_tokens(prev_output_tokens))
        states = []
        for lstm, norm in zip(self.lstms, self.norms):
            x = norm(lstm(x)[0])
            states.append(x)
            x = self.dropout(x)
        return x, {"inner_states": states}

    def output_layer(self, features, **kwargs):
        return self.output_projection(features)

    def forward(self, prev_output_tokens, src_lengths=None, **kwargs):
        features, extra = self.extract_features(prev_output_tokens)
        return self.output_layer(features), extra

    def max_positions(self):
        return DEFAULT_MAX_TARGET_POSITIONS


@register_model("codistill_lstm_lm", dataclass=LSTMLanguageModelConfig)
class LayerNormLSTMLanguageModel(FairseqLanguageModel):
    @classmethod
    def build_model(cls, cfg, task):
        return cls(LayerNormLSTMDecoder(task.target_dictionary, cfg))

