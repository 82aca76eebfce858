"""The schemas of the translation configs (fairseq's recipes and workloads), as schema.py's: the
schedule group's translation recipes, and the workloads of a fairseq data-bin (WMT'16, IWSLT'14) or of
the generated mini corpus."""
from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from ..names import DROPOUTS, LABEL_SMOOTHING_SCHEDULES, MODEL_SIZES, SHARE_EMBEDDINGS
from ..translation.data import SPLITS
from .rules import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, WORKLOAD_NAME, Number, Numbers, Rule, named, shares, spec


@dataclass
class TranslationSchedule:
    name: str = MISSING
    kind: str = spec(choices=("translation",))
    adam_betas: Numbers = spec(at_least=0, below=1, length=2)
    adam_eps: Number = spec(NON_NEGATIVE)
    clip_norm: Number = spec(NON_NEGATIVE)
    weight_decay: Number = spec(NON_NEGATIVE)
    lr: Number = spec(POSITIVE)
    warmup_updates: int = spec(NON_NEGATIVE)
    warmup_init_lr: Number = spec(NON_NEGATIVE)
    max_update: int = spec(COUNT)
    max_epoch: int = spec(at_least=0, why="0: no epoch limit")
    label_smoothing: Number = spec(at_least=0, below=1, why="0 removes it")
    label_smoothing_schedule: str = spec(choices=LABEL_SMOOTHING_SCHEDULES)
    label_smoothing_decay: Number = spec(at_least=0, why="a factor per epoch")


# The translation workloads (fairseq): the model's sizes and dropouts, each optional in fairseq (null
# or absent: the architecture's default).
MODEL_RULES = {**{key: Rule(at_least=1, nullable=True, why="or null: the architecture's default")
                  for key in MODEL_SIZES},
               **{key: Rule(at_least=0, below=1, nullable=True) for key in DROPOUTS}}


@dataclass
class Model:
    """A published fairseq architecture, as its recipe sets it up."""
    optional_keys: ClassVar[dict] = MODEL_RULES
    arch: str = MISSING
    share_embeddings: str = spec(choices=tuple(SHARE_EMBEDDINGS))
    dropout: Number = spec(MODEL_RULES["dropout"])


@dataclass
class MiniModel:
    """fairseq's base transformer, shrunk."""
    optional_keys: ClassVar[dict] = MODEL_RULES
    arch: str = MISSING
    share_embeddings: str = spec(choices=tuple(SHARE_EMBEDDINGS))
    encoder_layers: int | None = spec(MODEL_RULES["encoder_layers"])
    decoder_layers: int | None = spec(MODEL_RULES["decoder_layers"])
    encoder_embed_dim: int | None = spec(MODEL_RULES["encoder_embed_dim"])
    decoder_embed_dim: int | None = spec(MODEL_RULES["decoder_embed_dim"])
    encoder_ffn_embed_dim: int | None = spec(MODEL_RULES["encoder_ffn_embed_dim"])
    decoder_ffn_embed_dim: int | None = spec(MODEL_RULES["decoder_ffn_embed_dim"])
    encoder_attention_heads: int | None = spec(MODEL_RULES["encoder_attention_heads"])
    decoder_attention_heads: int | None = spec(MODEL_RULES["decoder_attention_heads"])
    dropout: Number = spec(MODEL_RULES["dropout"])


@dataclass
class Corpus:
    seed: int = spec(NON_NEGATIVE)
    vocab: int = spec(at_least=2)
    train_pairs: int = spec(COUNT)
    valid_pairs: int = spec(COUNT)
    test_pairs: int = spec(COUNT)
    min_len: int = spec(COUNT)
    max_len: int = spec(COUNT)
    noise: Number = spec(FRACTION)


@dataclass
class Generation:
    subset: str = spec(choices=SPLITS)
    beam: int = spec(COUNT)
    lenpen: Number = spec(NON_NEGATIVE)
    max_len_a: Number = spec(NON_NEGATIVE)
    max_len_b: Number = spec(NON_NEGATIVE)
    max_tokens: int = spec(COUNT)
    remove_bpe: str | None = MISSING


@dataclass
class MethodDefaults:
    """What method=codistill takes from the workload unless told otherwise (checked there)."""
    exchange: str = MISSING
    period: int = MISSING
    alpha_schedule: str = MISSING


def task():
    return named("translation", "the translation workloads train through fairseq")


@dataclass
class TranslationTraining:
    """What every translation workload ends with: fairseq's precision, loaders and logging, the
    test set's generation and BLEU, the exchange's timeout, method=codistill's defaults, the GPUs."""
    fp16: bool = MISSING
    loader_workers: int = spec(NON_NEGATIVE)
    log_interval: int = spec(COUNT)
    generation: Generation = field(default_factory=Generation)
    bleu_tokenize: str = MISSING
    exchange_timeout_s: Number = spec(above=0, why="seconds")
    method_defaults: MethodDefaults = field(default_factory=MethodDefaults)
    gpu_memory_gb: int | None = MISSING


@dataclass
@shares(TranslationTraining)
class TranslationWorkload:
    """A data set on disk (a fairseq data-bin) and a published architecture."""
    name: str = spec(choices=("wmt16_en_de", "iwslt14_de_en"), why=WORKLOAD_NAME)
    task: str = task()
    note: str | None = MISSING
    data_bin: str | None = MISSING
    data_bin_env: str = MISSING
    prepare_script: str = MISSING
    source_lang: str = MISSING
    target_lang: str = MISSING
    model: Model = field(default_factory=Model)
    required_batch_size_multiple: int = spec(COUNT)
    max_tokens: int = spec(COUNT)


@dataclass
@shares(TranslationTraining)
class TranslationMini:
    """The generated corpus (null data_bin) and a tiny transformer."""
    name: str = named("translation_mini", WORKLOAD_NAME)
    task: str = task()
    note: str | None = MISSING
    data_bin: str | None = MISSING
    corpus: Corpus = field(default_factory=Corpus)
    alpha_scale: Number | None = spec(NON_NEGATIVE, why="null: alpha as given; s: the distillation term's "
                                         "alpha x s, so that it pulls each logit as hard as the paper's over "
                                         "its far larger vocabulary")
    source_lang: str = MISSING
    target_lang: str = MISSING
    model: MiniModel = field(default_factory=MiniModel)
    max_tokens: int = spec(COUNT)
    required_batch_size_multiple: int = spec(COUNT)


@dataclass
class GrammarCorpus:
    """The generated grammar (translation/data.py `Grammar`): lexicon sizes in stems, the Zipf
    exponent of their frequencies, the chance that a content word takes its stem's synonym."""
    seed: int = spec(NON_NEGATIVE)
    nouns: int = spec(at_least=1)
    verbs: int = spec(at_least=1)
    adjectives: int = spec(at_least=1)
    zipf: Number = spec(NON_NEGATIVE)
    synonyms: Number = spec(FRACTION)
    train_pairs: int = spec(COUNT)
    valid_pairs: int = spec(COUNT)
    test_pairs: int = spec(COUNT)


@dataclass
class TranslationGrammar(TranslationMini):
    """The generated grammar (null data_bin) and a small transformer over its subword units."""
    name: str = named("translation_grammar", WORKLOAD_NAME)
    corpus: GrammarCorpus = field(default_factory=GrammarCorpus)


# ----- the language model (Anil et al. 2018, Sec. 3: Common Crawl), trained by fairseq as translation is

@dataclass
class LanguageModelSchedule:
    """Adam at a constant LR after a linear warm-up (fairseq's `fixed` scheduler), in updates."""
    name: str = MISSING
    kind: str = spec(choices=("language_model",))
    adam_betas: Numbers = spec(at_least=0, below=1, length=2)
    adam_eps: Number = spec(NON_NEGATIVE)
    clip_norm: Number = spec(NON_NEGATIVE, why="0: no clipping")
    weight_decay: Number = spec(NON_NEGATIVE)
    lr: Number = spec(POSITIVE)
    warmup_updates: int = spec(NON_NEGATIVE)
    max_update: int = spec(COUNT)
    max_epoch: int = spec(at_least=0, why="0: no epoch limit")


@dataclass
class LSTMModel:
    """The plugin's codistill_lstm_lm (src/codistill_fairseq/lstm_lm.py)."""
    arch: str = spec(choices=("codistill_lstm_lm",))
    decoder_embed_dim: int = spec(COUNT)
    decoder_hidden_size: int = spec(COUNT)
    decoder_layers: int = spec(COUNT)
    layer_norm: bool = MISSING
    dropout: Number = spec(FRACTION)
    share_decoder_input_output_embed: bool = MISSING


@dataclass
class LanguageModelCorpus:
    """The generated language of lm_mini (translation/data.py)."""
    seed: int = spec(NON_NEGATIVE)
    vocab: int = spec(at_least=2)
    classes: int = spec(COUNT)
    successors: int = spec(COUNT)
    zipf: Number = spec(NON_NEGATIVE)
    min_len: int = spec(COUNT)
    max_len: int = spec(COUNT)
    min_sentences: int = spec(COUNT)
    max_sentences: int = spec(COUNT)
    train_documents: int = spec(COUNT)
    valid_documents: int = spec(COUNT)
    test_documents: int = spec(COUNT)


def language_modeling():
    return named("language_modeling", "the language-model workloads train through fairseq")


@dataclass
class LanguageModelTraining:
    """What every fairseq language-model workload ends with: the LSTM, its batches of samples,
    fairseq's precision, loaders and logging, the exchange's timeout, method=codistill's defaults,
    the GPUs and the validations."""
    model: LSTMModel = field(default_factory=LSTMModel)
    tokens_per_sample: int = spec(COUNT)
    sample_break_mode: str = spec(choices=("none", "complete", "complete_doc", "eos"))
    batch_size: int = spec(COUNT, why="sequences of tokens_per_sample per rank")
    fp16: bool = MISSING
    loader_workers: int = spec(NON_NEGATIVE)
    log_interval: int = spec(COUNT)
    exchange_timeout_s: Number = spec(above=0, why="seconds")
    method_defaults: MethodDefaults = field(default_factory=MethodDefaults)
    gpu_memory_gb: int | None = MISSING
    validate_interval_updates: int | None = spec(COUNT, why="null: validate at each epoch's end only")


@dataclass
@shares(LanguageModelTraining)
class LanguageModelWorkload:
    """A tokenised corpus on disk (a fairseq-preprocess --only-source data-bin)."""
    name: str = named("commoncrawl_lstm", WORKLOAD_NAME)
    task: str = language_modeling()
    note: str | None = MISSING
    data_bin: str | None = MISSING
    data_bin_env: str = MISSING


@dataclass
@shares(LanguageModelTraining)
class LanguageModelMini:
    """The generated corpus (null data_bin) and a small layer-normalised LSTM."""
    name: str = named("lm_mini", WORKLOAD_NAME)
    task: str = language_modeling()
    note: str | None = MISSING
    data_bin: str | None = MISSING
    corpus: LanguageModelCorpus = field(default_factory=LanguageModelCorpus)
