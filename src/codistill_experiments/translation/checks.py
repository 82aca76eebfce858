"""Compose-time checks of translation jobs (called by config.validate for every job of a sweep,
single runs and dry runs). Each problem names the key, its value and what is allowed. Nothing
here imports torch or fairseq: the names allowed are codistill_experiments.names', which the fairseq plugin
offers as its choices too."""
from codistill.choices import SNAPSHOT_MODES

from ..names import LABEL_SMOOTHING_SCHEDULES, TRANSLATION_ALPHA_SCHEDULES
from .data import SPLITS, check_data_bin

TRANSLATION_WORKLOADS = ("translation_mini", "wmt16_en_de", "iwslt14_de_en")
TRANSLATION_SCHEDULES = ("ott2018", "ott2018_codistill", "iwslt_transformer", "iwslt_transformer_codistill",
                         "translation_mini", "translation_mini_codistill",
                         "ott2018_codistill_ls_decayed", "translation_mini_codistill_ls_decayed")
SHARE_EMBEDDINGS = ("all", "decoder", "none")
MODEL_SIZES = ("encoder_layers", "decoder_layers", "encoder_embed_dim", "decoder_embed_dim",
               "encoder_ffn_embed_dim", "decoder_ffn_embed_dim", "encoder_attention_heads",
               "decoder_attention_heads")
DROPOUTS = ("dropout", "attention_dropout", "activation_dropout")


def is_translation(container):
    return container["workload"].get("task") == "translation"


def _number(value, low=None, high=None, integer=False, low_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or value < high


def _check(problems, key, value, ok, allowed):
    if not ok:
        problems.append(f"{key}={value!r}: {allowed}")


def check_schedule(schedule, problems):
    _check(problems, "schedule.lr", schedule.get("lr"), _number(schedule.get("lr"), 0, low_open=True), "must be > 0")
    betas = schedule.get("adam_betas")
    _check(problems, "schedule.adam_betas", betas,
           isinstance(betas, list) and len(betas) == 2 and all(_number(b, 0, 1) for b in betas),
           "must be two numbers in [0, 1)")
    for key in ("adam_eps", "clip_norm", "weight_decay", "warmup_init_lr"):
        _check(problems, f"schedule.{key}", schedule.get(key), _number(schedule.get(key), 0), "must be a number >= 0")
    for key, low in (("warmup_updates", 0), ("max_update", 1), ("max_epoch", 0)):
        _check(problems, f"schedule.{key}", schedule.get(key), _number(schedule.get(key), low, integer=True),
               f"must be an integer >= {low}")
    _check(problems, "schedule.label_smoothing", schedule.get("label_smoothing"),
           _number(schedule.get("label_smoothing"), 0, 1), "must be in [0, 1) (0 removes it)")
    kind = schedule.get("label_smoothing_schedule")
    _check(problems, "schedule.label_smoothing_schedule", kind, kind in LABEL_SMOOTHING_SCHEDULES,
           f"allowed: {', '.join(LABEL_SMOOTHING_SCHEDULES)}")
    _check(problems, "schedule.label_smoothing_decay", schedule.get("label_smoothing_decay"),
           _number(schedule.get("label_smoothing_decay"), 0), "must be >= 0 (a factor per epoch)")


def check_workload(workload, problems):
    model = workload.get("model") or {}
    _check(problems, "workload.model.arch", model.get("arch"), isinstance(model.get("arch"), str),
           "must name a fairseq architecture (e.g. transformer_vaswani_wmt_en_de_big)")
    share = model.get("share_embeddings")
    _check(problems, "workload.model.share_embeddings", share, share in SHARE_EMBEDDINGS,
           f"allowed: {', '.join(SHARE_EMBEDDINGS)}")
    if share == "all" and not workload.get("data_bin"):
        problems.append("workload.model.share_embeddings='all': needs a joined dictionary, and the generated mini "
                        "corpus has one per language; use 'decoder'")
    for key in MODEL_SIZES:
        value = model.get(key)
        _check(problems, f"workload.model.{key}", value, value is None or _number(value, 1, integer=True),
               "must be an integer >= 1 (or null: the architecture's default)")
    for key in DROPOUTS:
        value = model.get(key)
        _check(problems, f"workload.model.{key}", value, value is None or _number(value, 0, 1), "must be in [0, 1)")
    for key, low in (("max_tokens", 1), ("log_interval", 1), ("loader_workers", 0), ("required_batch_size_multiple", 1)):
        _check(problems, f"workload.{key}", workload.get(key), _number(workload.get(key), low, integer=True),
               f"must be an integer >= {low}")
    _check(problems, "workload.exchange_mode", workload.get("exchange_mode"), workload.get("exchange_mode") in SNAPSHOT_MODES,
           f"allowed: {', '.join(SNAPSHOT_MODES)}")
    _check(problems, "workload.exchange_timeout_s", workload.get("exchange_timeout_s"),
           _number(workload.get("exchange_timeout_s"), 0, low_open=True), "must be > 0 seconds")
    _check_generation(workload, problems)
    if workload.get("data_bin") is None:
        _check_corpus(workload.get("corpus") or {}, problems)


def _check_generation(workload, problems):
    generation = workload.get("generation") or {}
    _check(problems, "workload.generation.subset", generation.get("subset"), generation.get("subset") in SPLITS,
           f"allowed: {', '.join(SPLITS)}")
    for key in ("beam", "max_tokens"):
        _check(problems, f"workload.generation.{key}", generation.get(key),
               _number(generation.get(key), 1, integer=True), "must be an integer >= 1")
    for key in ("lenpen", "max_len_a", "max_len_b"):
        _check(problems, f"workload.generation.{key}", generation.get(key), _number(generation.get(key), 0),
               "must be a number >= 0")
    try:
        from sacrebleu.metrics import BLEU

        BLEU(tokenize=workload.get("bleu_tokenize"))
    except Exception as error:  # sacrebleu names the tokenizers it has
        problems.append(f"workload.bleu_tokenize={workload.get('bleu_tokenize')!r}: {error}")


def _check_corpus(corpus, problems):
    for key, low in (("vocab", 2), ("train_pairs", 1), ("valid_pairs", 1), ("test_pairs", 1), ("min_len", 1),
                     ("max_len", 1), ("seed", 0)):
        _check(problems, f"workload.corpus.{key}", corpus.get(key), _number(corpus.get(key), low, integer=True),
               f"must be an integer >= {low}")
    if _number(corpus.get("min_len"), 1) and _number(corpus.get("max_len"), 1) and corpus["min_len"] > corpus["max_len"]:
        problems.append(f"workload.corpus.min_len={corpus['min_len']} > workload.corpus.max_len={corpus['max_len']}")
    _check(problems, "workload.corpus.noise", corpus.get("noise"), _number(corpus.get("noise"), 0, 1),
           "must be in [0, 1)")


def check_method(method, problems):
    if method.get("name") != "codistill":
        return
    if method.get("exchange") != "checkpoints":
        problems.append(f"method.exchange={method.get('exchange')!r}: translation models exchange checkpoints "
                        "(through files, every method.period updates); use method.exchange=checkpoints")
    if method.get("loss") != "mse":
        problems.append(f"method.loss={method.get('loss')!r}: the translation criterion implements the paper's "
                        "MSE between logits only; use method.loss=mse")
    if method.get("alpha_schedule") not in TRANSLATION_ALPHA_SCHEDULES:
        problems.append(f"method.alpha_schedule={method.get('alpha_schedule')!r}: translation allows "
                        f"{', '.join(TRANSLATION_ALPHA_SCHEDULES)} (the inverse square-root LR has no decays for 'step')")


def check_translation_job(container, problems):
    """Every translation-specific problem of a composed job, appended to `problems`."""
    schedule = container["schedule"]
    if schedule.get("kind") != "translation":
        problems.append(f"schedule.name={schedule.get('name')!r}: workload {container['workload'].get('name')!r} "
                        f"needs a translation schedule; allowed: {', '.join(TRANSLATION_SCHEDULES)}")
    else:
        check_schedule(schedule, problems)
    check_workload(container["workload"], problems)
    check_method(container["method"], problems)
    if container["workload"].get("models") is not None:
        problems.append("workload.models: per-model settings are not supported by the translation workloads")
    for key, value in (("batch_scale", container.get("batch_scale")), ("epoch_scale", container.get("epoch_scale", 1)),
                       ("data.fraction", container["data"].get("fraction"))):
        if value != 1:
            problems.append(f"{key}={value!r}: not supported by the translation workloads (must be 1); change "
                            "workload.max_tokens or schedule.max_update instead")
    every = container.get("eval_every_epochs")
    _check(problems, "eval_every_epochs", every, _number(every, 1, integer=True),
           "translation runs validate and save every whole number >= 1 of epochs")


def workload_data_problem(workload):
    """Why a translation workload's data cannot be read here (config.data_problem's translation
    part), or None when it can (the mini corpus is generated on first use)."""
    if workload.get("data_bin") is None and workload.get("name") == "translation_mini":
        return None
    return check_data_bin(workload)
