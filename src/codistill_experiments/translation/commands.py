"""The fairseq command line of every rank of a translation or language-model run, from the run's
resolved config (a plain dict): fairseq-train with the `codistill_fairseq` plugin (found with importlib, not
imported: fairseq loads it from `--user-dir` in its own process), and fairseq-generate for BLEU.

A run has n model groups of k ranks (method.n x scale.ranks_per_model); a group is one fairseq
world (its own data parallelism, all_reduce over its k ranks), and groups share nothing but the
snapshot files.
"""
import importlib.util
from pathlib import Path

from ..jobs import shared_gpu_backend
from ..names import DROPOUTS, MODEL_SIZES, SHARE_EMBEDDINGS
from ..run_schedules import scaled_alpha
from ..seeds import model_seed
from .data import is_language_model

PLUGIN_DIR = Path(importlib.util.find_spec("codistill_fairseq").origin).parent
MODEL_FLAGS = (*MODEL_SIZES, *DROPOUTS)


def shape(config):
    """(n model groups, k ranks per group)."""
    return config["method"]["n"], int(config["scale"]["ranks_per_model"])


def model_dir(run_directory, group):
    return Path(run_directory) / f"model{group}"


def flag(name):
    return "--" + name.replace("_", "-")


def exchanges(config):
    method = config["method"]
    return method["name"] == "codistill" and method["n"] > 1


def fairseq_seed(config, group):
    """The model's --seed: its initialisation and dropout (the core's model_seed; init_seed pins a
    single model's)."""
    if config["init_seed"] is not None and config["method"]["n"] == 1:
        return config["init_seed"]
    return model_seed(config["seed"], group)


def data_order_seed(config):
    """--data-order-seed under coordinated sampling (every model reads the data in one order, the
    core's order seed); None otherwise: fairseq then orders each model's data by its --seed."""
    if not config["method"]["coordinated_sampling"]:
        return None
    order = config["data"]["order_seed"]
    return config["seed"] if order is None else order


LM_MODEL_FLAGS = ("decoder_embed_dim", "decoder_hidden_size", "decoder_layers", "dropout")


def lm_model_arguments(workload):
    """The plugin's codistill_lstm_lm (its two switches are flags)."""
    model = workload["model"]
    argv = ["--arch", model["arch"], *[part for key in LM_MODEL_FLAGS for part in (flag(key), str(model[key]))]]
    if not model["layer_norm"]:
        argv.append("--no-layer-norm")
    if model["share_decoder_input_output_embed"]:
        argv.append("--share-decoder-input-output-embed")
    return argv


def model_arguments(workload):
    if is_language_model(workload):
        return lm_model_arguments(workload)
    model = workload["model"]
    argv = ["--arch", model["arch"], *SHARE_EMBEDDINGS[model["share_embeddings"]]]
    for key in MODEL_FLAGS:
        if model.get(key) is not None:
            argv += [flag(key), str(model[key])]
    return argv


def schedule_arguments(schedule):
    """Adam with the recipe's LR schedule: translation's inverse square root after a warm-up from
    warmup_init_lr, a language model's constant LR after a linear warm-up (fairseq's `fixed`)."""
    betas = schedule["adam_betas"]
    if schedule["kind"] == "language_model":
        lr_schedule = ["--lr-scheduler", "fixed", "--warmup-updates", str(schedule["warmup_updates"])]
    else:
        lr_schedule = ["--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(schedule["warmup_updates"]),
                       "--warmup-init-lr", str(schedule["warmup_init_lr"])]
    return ["--optimizer", "adam", "--adam-betas", f"({betas[0]}, {betas[1]})", "--adam-eps", str(schedule["adam_eps"]),
            "--clip-norm", str(schedule["clip_norm"]), "--weight-decay", str(schedule["weight_decay"]),
            "--lr", str(schedule["lr"]), *lr_schedule,
            "--max-update", str(schedule["max_update"]), "--max-epoch", str(schedule["max_epoch"])]


def criterion_arguments(config):
    """The codistill criterion; a language-model recipe has no label smoothing (Anil et al. use none)."""
    schedule = config["schedule"]
    smoothing = []
    if "label_smoothing" in schedule:
        smoothing = ["--label-smoothing", str(schedule["label_smoothing"]),
                     "--label-smoothing-schedule", schedule["label_smoothing_schedule"],
                     "--label-smoothing-decay", str(schedule["label_smoothing_decay"])]
    return ["--criterion", "codistill", *smoothing]


def exchange_arguments(config, run_directory, group):
    """The task's codistillation, and its alpha: the engine's alpha_0 (scaled_alpha: a stand-in's
    workload.alpha_scale applied) and schedule, which the task's Codistiller alone applies."""
    n, _ = shape(config)
    workload, method = config["workload"], config["method"]
    alpha = scaled_alpha(method, workload.get("alpha_scale")) if exchanges(config) else 0.0
    argv = ["--codistill-dir", str(run_directory), "--model-index", str(group), "--n-models", str(n),
            "--exchange-period", str(method["period"] if exchanges(config) else 0),
            "--snapshot-mode", method.get("snapshot_mode", "lockstep"),
            "--exchange-timeout", str(workload["exchange_timeout_s"]),
            "--burn-in-updates", str(method.get("burn_in_steps", 0)),
            "--codistill-alpha", str(alpha), "--alpha-schedule", method.get("alpha_schedule", "constant"),
            "--alpha-gamma", str(method.get("alpha_gamma", 1.0)),
            "--distill-loss", method.get("loss", "mse"),
            "--distill-temperature", str(float(method.get("temperature", 1.0))),
            "--progress-tag", "[MINI] " if config["scale"]["name"] == "mini" else ""]
    if shape(config)[1] > int(config["scale"]["ranks_per_node"]):
        argv.append("--group-spans-nodes")  # its gradient all_reduce crosses nodes (counted as such)
    order = data_order_seed(config)
    if order is not None:
        argv += ["--data-order-seed", str(order)]
    if config["trace"]:
        argv.append("--trace")
    return argv


def distributed_backend(cuda):
    """The backend of a model's fairseq ranks: NCCL on GPUs, unless the ranks share GPUs over the
    backend named for it (jobs.SHARED_GPU_BACKEND: scripts/one_gpu_check.py); gloo on CPUs."""
    return (shared_gpu_backend() or "nccl") if cuda else "gloo"


def device_arguments(config, cuda, rank_in_group, gpu, init_method):
    _, k = shape(config)
    argv = [] if cuda else ["--cpu"]
    if cuda and config["workload"]["fp16"]:
        argv.append("--fp16")
    argv += ["--distributed-world-size", str(k)]
    if k > 1:
        argv += ["--distributed-rank", str(rank_in_group), "--distributed-init-method", init_method,
                 "--distributed-no-spawn", "--device-id", str(gpu),
                 "--distributed-backend", distributed_backend(cuda),
                 "--ddp-backend", "pytorch_ddp" if cuda else "legacy_ddp"]
    elif cuda:
        argv += ["--device-id", str(gpu)]
    return argv


def task_arguments(workload):
    """The plugin's task and its data, with the batch: tokens of sentence pairs for translation,
    sequences of tokens_per_sample tokens for a language model."""
    if is_language_model(workload):
        return ["--task", "codistill_language_modeling", "--tokens-per-sample", str(workload["tokens_per_sample"]),
                "--sample-break-mode", workload["sample_break_mode"], "--batch-size", str(workload["batch_size"]),
                "--required-batch-size-multiple", "1"]
    return ["--task", "codistill_translation", "-s", workload["source_lang"], "-t", workload["target_lang"],
            "--max-tokens", str(workload["max_tokens"]),
            "--required-batch-size-multiple", str(workload["required_batch_size_multiple"])]


def train_arguments(config, run_directory, data_bin, group, rank_in_group=0, gpu=0, init_method=None,
                    cuda=False):
    """The fairseq-train argument list of one rank of model group `group` (`gpu`: its GPU on the node)."""
    workload, schedule = config["workload"], config["schedule"]
    every = str(config["eval_every_epochs"])
    return [str(data_bin), "--user-dir", str(PLUGIN_DIR), *task_arguments(workload),
            *model_arguments(workload), *schedule_arguments(schedule), *criterion_arguments(config),
            "--seed", str(fairseq_seed(config, group)),
            "--save-dir", str(model_dir(run_directory, group)), "--no-epoch-checkpoints",
            "--save-interval", every, "--validate-interval", every,
            "--log-format", "simple", "--log-interval", str(workload["log_interval"]), "--no-progress-bar",
            "--num-workers", str(workload["loader_workers"]),
            *interval_arguments(workload),
            *exchange_arguments(config, run_directory, group),
            *device_arguments(config, cuda, rank_in_group, gpu, init_method)]


def interval_arguments(workload):
    """Validation (and a checkpoint with it, so that a resumed run restarts from a validated update)
    every workload.validate_interval_updates updates as well as at each epoch's end; fairseq then
    keeps the latest interval checkpoint only."""
    every = workload.get("validate_interval_updates")
    if not every:
        return []
    return ["--validate-interval-updates", str(every), "--save-interval-updates", str(every),
            "--keep-interval-updates", "1"]


def generate_arguments(config, run_directory, data_bin, group, cuda=False):
    """fairseq-generate on the test set with beam search (the model's final checkpoint)."""
    workload, generation = config["workload"], config["workload"]["generation"]
    argv = [str(data_bin), "--user-dir", str(PLUGIN_DIR), "--task", "translation",
            "-s", workload["source_lang"], "-t", workload["target_lang"],
            "--path", str(model_dir(run_directory, group) / "checkpoint_last.pt"),
            "--gen-subset", generation["subset"], "--beam", str(generation["beam"]),
            "--lenpen", str(generation["lenpen"]), "--max-len-a", str(generation["max_len_a"]),
            "--max-len-b", str(generation["max_len_b"]), "--max-tokens", str(generation["max_tokens"]),
            "--required-batch-size-multiple", "1",  # every test sentence (see workload.required_batch_size_multiple)
            "--results-path", str(model_dir(run_directory, group)), "--num-workers", "0", "--scoring", "sacrebleu",
            "--sacrebleu-tokenizer", workload["bleu_tokenize"],
            "--seed", str(fairseq_seed(config, group))]
    if generation["remove_bpe"]:
        argv += ["--remove-bpe", generation["remove_bpe"]]
    if not cuda:
        argv.append("--cpu")
    elif workload["fp16"]:
        argv.append("--fp16")
    return argv
