"""Compose-time checks of translation jobs that no schema can say (config.validate calls them for
every job of a sweep, single runs and dry runs, after the rules of the config's schemas): those
relating the workload to the method, the schedule and the top-level keys, and sacreBLEU's
tokenizers. Each problem names the key, its value and what is allowed. Nothing here imports torch
or fairseq: the names allowed are codistill_experiments.names', which the fairseq plugin offers as
its choices too."""
import importlib.util

from ..names import LM_SCHEDULES, TRANSLATION_ALPHA_SCHEDULES, TRANSLATION_SCHEDULES
from .data import check_data_bin, is_language_model

__all__ = ["FAIRSEQ_SCHEDULE_KINDS", "FAIRSEQ_TASKS", "TRANSLATION_SCHEDULES", "check_translation_job", "is_fairseq",
           "translation_install_problem", "workload_data_problem"]

# The workloads fairseq trains (workload.task) and the schedule kind each needs, with its recipes.
FAIRSEQ_TASKS = {"translation": ("translation", TRANSLATION_SCHEDULES),
                 "language_modeling": ("language_model", LM_SCHEDULES)}
FAIRSEQ_SCHEDULE_KINDS = tuple(kind for kind, _ in FAIRSEQ_TASKS.values())
GENERATED = ("translation_mini", "translation_grammar", "lm_mini")   # workloads whose mini corpus is generated on first use


def is_fairseq(container):
    """A job that fairseq trains (translation/launcher.py): translation or a language model."""
    return container["workload"].get("task") in FAIRSEQ_TASKS


# The modules of the `translation` extra that a fairseq job imports, and the one command that installs
# them with the pins they were verified with (the vision path installs without them: make setup-vision).
TRANSLATION_MODULES = ("fairseq", "fairseq_cli", "torchaudio", "sacrebleu")
INSTALL_TRANSLATION = "make setup"


def translation_install_problem(container, find_spec=importlib.util.find_spec):
    """Why this environment cannot run the job's fairseq processes (the translation extra is not
    installed), naming the command that installs it, or None. Looked up without importing them."""
    if not is_fairseq(container):
        return None
    missing = [name for name in TRANSLATION_MODULES if find_spec(name) is None]
    if not missing:
        return None
    return (f"workload.name={container['workload']['name']!r} is trained by fairseq, and this environment lacks "
            f"{', '.join(missing)} (the translation extras, which the vision set-up leaves out): install them "
            f"with `{INSTALL_TRANSLATION}` (pip install -e '.[translation]' with PIP_CONSTRAINT=constraints.txt)")


def _is_whole(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer() and value >= 1


def check_workload(workload, problems):
    if is_language_model(workload):
        check_lm_workload(workload, problems)
        return
    if workload["model"]["share_embeddings"] == "all" and not workload.get("data_bin"):
        problems.append("workload.model.share_embeddings='all': needs a joined dictionary, and the generated mini "
                        "corpus has one per language; use 'decoder'")
    corpus = workload.get("corpus")
    if workload.get("data_bin") is None and corpus and corpus.get("min_len", 0) > corpus.get("max_len", 0):
        problems.append(f"workload.corpus.min_len={corpus['min_len']} > workload.corpus.max_len={corpus['max_len']}")
    if importlib.util.find_spec("sacrebleu") is None:   # not installed: translation_install_problem says so
        return
    try:
        from sacrebleu.metrics import BLEU

        BLEU(tokenize=workload.get("bleu_tokenize"))
    except Exception as error:  # sacrebleu names the tokenizers it has
        problems.append(f"workload.bleu_tokenize={workload.get('bleu_tokenize')!r}: {error}")


def check_lm_workload(workload, problems):
    corpus, model = workload.get("corpus"), workload["model"]
    if workload.get("data_bin") is None and corpus:
        for low, high in (("min_len", "max_len"), ("min_sentences", "max_sentences")):
            if corpus[low] > corpus[high]:
                problems.append(f"workload.corpus.{low}={corpus[low]} > workload.corpus.{high}={corpus[high]}")
        if corpus["successors"] > corpus["classes"] or corpus["classes"] > corpus["vocab"]:
            problems.append(f"workload.corpus: needs successors <= classes <= vocab (got {corpus['successors']}, "
                            f"{corpus['classes']}, {corpus['vocab']})")
    if model["share_decoder_input_output_embed"] and model["decoder_embed_dim"] != model["decoder_hidden_size"]:
        problems.append("workload.model.share_decoder_input_output_embed=true: needs decoder_embed_dim == "
                        f"decoder_hidden_size (got {model['decoder_embed_dim']} and {model['decoder_hidden_size']})")


def check_method(method, problems):
    """What the fairseq criterion implements of codistillation."""
    if method["name"] != "codistill":
        return
    if method["exchange"] != "checkpoints":
        problems.append(f"method.exchange={method['exchange']!r}: translation models exchange checkpoints "
                        "(through files, every method.period updates); use method.exchange=checkpoints")
    for key, plain in (("checkpoint_bits", 32), ("checkpoint_delta_fraction", None)):
        if method.get(key, plain) != plain:
            problems.append(f"method.{key}={method[key]!r}: the fairseq models exchange whole checkpoints through "
                            "files (compressed checkpoints travel through collectives only); leave it at its default")
    if method.get("transport", "collectives") != "collectives":
        problems.append("method.transport: each translation model is already its own fairseq job exchanging "
                        "checkpoints through files (leave method.transport at its default; method.snapshot_mode "
                        "chooses lockstep or async)")
    if method["alpha_schedule"] not in TRANSLATION_ALPHA_SCHEDULES:
        problems.append(f"method.alpha_schedule={method['alpha_schedule']!r}: translation allows "
                        f"{', '.join(TRANSLATION_ALPHA_SCHEDULES)} (the inverse square-root LR has no decays for "
                        "'step')")


def check_translation_job(container, problems):
    """Every problem of a composed fairseq job (translation or language model), appended to `problems`."""
    schedule = container["schedule"]
    kind, recipes = FAIRSEQ_TASKS[container["workload"]["task"]]
    if schedule.get("kind") != kind:
        problems.append(f"schedule.name={schedule.get('name')!r}: workload {container['workload'].get('name')!r} "
                        f"needs a {kind} schedule; allowed: {', '.join(recipes)}")
    check_workload(container["workload"], problems)
    check_method(container["method"], problems)
    if container["workload"].get("models") is not None:
        problems.append("workload.models: per-model settings are not supported by the translation workloads")
    for key, value in (("batch_scale", container["batch_scale"]), ("epoch_scale", container["epoch_scale"]),
                       ("data.fraction", container["data"]["fraction"])):
        if value != 1:
            problems.append(f"{key}={value!r}: not supported by the translation workloads (must be 1); change "
                            "workload.max_tokens or schedule.max_update instead")
    every = container["eval_every_epochs"]   # > 0 by its rule (config/job_schema.py); fairseq needs whole epochs
    if not _is_whole(every):
        problems.append(f"eval_every_epochs={every!r}: fairseq validates and saves every whole number of epochs "
                        "(>= 1); write a whole number")
    elif not isinstance(every, int):
        problems.append(f"eval_every_epochs={every!r}: fairseq validates and saves every {int(every)} epochs given "
                        f"as an integer; write eval_every_epochs={int(every)}")


def workload_data_problem(workload):
    """Why a translation workload's data cannot be read here (config.data_problem's translation
    part), or None when it can (the mini corpus is generated on first use)."""
    if workload.get("data_bin") is None and workload.get("name") in GENERATED:
        return None
    return check_data_bin(workload)
