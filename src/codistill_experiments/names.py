"""The experiments' names a config may use, in a module without torch: compose-time validation
(the config schemas, `config/`, and `translation/checks.py`) reads them here, so a dry run or a
sweep's validation never imports torch. The modules that implement each name import them from
here too; the library's own choices are codistill.choices."""
from codistill import ALPHA_SCHEDULES

# Mini stand-ins of the paper's architectures (workloads.py): hidden widths of digits' MLPs, and
# (width, residual blocks) of clusters_resnet's residual MLPs.
MINI_ARCHS = {"resnet18": [128], "resnet50": [256, 256], "resnext101_32x8d": [512, 512, 512]}
MINI_RESNETS = {"resnet18": (64, 1), "resnet50": (128, 2), "resnext101_32x8d": (256, 3)}
# The model settings workload.models may give each model group, per workload (workloads.py).
MODEL_KEYS = {"digits_mlp": {"hidden", "arch"}, "clusters_resnet": {"arch"}, "imagenet": {"arch", "num_classes"},
              "cifar10": {"num_classes"}, "multiview_mini": set(), "criteo_mini": {"width_scale"},
              "criteo": {"width_scale"}, "lm_transformer_mini": set()}
# Hidden widths of Anil et al.'s Criteo network (Sec. 3); the click workloads scale them by workload.width_scale.
CRITEO_HIDDEN = (2560, 1024, 256)
SCENARIOS = ("full", "pretrained_frozen", "pretrained_trainable", "random_init")   # multi-view (Fig. 6)
# schedule.optimizer of a vision schedule (training/engine.py build_optimizer).
OPTIMIZERS = ("sgd", "adagrad", "adamw")
# data.split and supervised.smoothing_prior (top-level keys: config/checks.py).
DATA_SPLITS = ("same", "disjoint")
SMOOTHING_PRIORS = ("uniform", "unigram")
# Methods whose sample order and schedules follow all_reduce's global batch (baselines/methods.py).
GLOBAL_BATCH_METHODS = ("localsgd", "diloco", "streaming_diloco", "sparseloco", "muloco")
OWN_METHODS = ("powersgd", *GLOBAL_BATCH_METHODS)  # they replace the exchange: nothing to distil
# sparseloco and muloco (baselines/compressed_diloco.py): the bits of the values their outer step sends
# (quantize_blocks': 32 sends float32) and how every group aggregates the messages it gathers.
OUTER_BITS = (2, 4, 8, 32)
OUTER_AGGREGATES = ("mean", "mean_over_senders")
# Translation's alpha schedules (schedules.AlphaSchedule's, less "step": its inverse square-root LR
# has no decays) and label-smoothing schedules (translation/label_smoothing.py).
TRANSLATION_ALPHA_SCHEDULES = tuple(kind for kind in ALPHA_SCHEDULES if kind != "step")
LABEL_SMOOTHING_SCHEDULES = ("constant", "exponential")
# The translation recipes (src/conf/schedule): a translation workload needs one, a vision workload refuses them.
TRANSLATION_SCHEDULES = ("ott2018", "ott2018_codistill", "iwslt_transformer", "iwslt_transformer_codistill",
                         "translation_mini", "translation_mini_codistill",
                         "ott2018_codistill_ls_decayed", "translation_mini_codistill_ls_decayed",
                         "translation_grammar", "translation_grammar_codistill",
                         "translation_grammar_codistill_ls_decayed")
# The language-model recipes (src/conf/schedule/lm_*.yaml): a language-model workload needs one.
LM_SCHEDULES = ("lm_commoncrawl_adam", "lm_mini")
# workload.model of a translation workload (translation/commands.py turns each into fairseq's flags):
# which embeddings the model ties, with the flags that tie them; its sizes; its dropouts.
SHARE_EMBEDDINGS = {"all": ("--share-all-embeddings",), "decoder": ("--share-decoder-input-output-embed",),
                    "none": ()}
MODEL_SIZES = ("encoder_layers", "decoder_layers", "encoder_embed_dim", "decoder_embed_dim",
               "encoder_ffn_embed_dim", "decoder_ffn_embed_dim", "encoder_attention_heads",
               "decoder_attention_heads")
DROPOUTS = ("dropout", "attention_dropout", "activation_dropout")
