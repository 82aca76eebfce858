"""The words on a figure: each run's series label from its config columns (method, recipe, exchange
period, n-way, architectures) and each axis's label, a loss naming its unit, which depends on the
task (vision: cross-entropy in nats, translation: bits per token)."""
import math

ARCH_NAMES = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "resnext101_32x8d": "ResNeXt-101"}
METRIC_LABELS = {
    "train_loss": "training loss",
    "val_top1": "top-1 validation accuracy (%)",
    "val_top1_mean_over_models": "mean top-1 over models (%)",
    "val_nll": "validation NLL",
    "val_loss": "validation loss",
    "param_distance_from_init": "‖θ − θ₀‖₂ (L2 norm over all weights)",
    "bleu": "BLEU",
    "step": "updates per model",
    "epoch": "epochs",
}
LOSSES = {"train_loss", "val_nll", "val_loss"}    # drawn on a log axis, labelled with their unit
# vision: mean cross-entropy per sample, natural log; translation (fairseq): NLL per target token, log base 2
LOSS_UNITS = {"vision": "cross-entropy, nats", "translation": "bits per token"}


def axis_label(metric, task="vision"):
    """A metric's axis label; a loss names its unit, which depends on the task (vision or translation)."""
    label = METRIC_LABELS.get(metric, metric)
    return f"{label} ({LOSS_UNITS[task]})" if metric in LOSSES else label


def cfg(row, key, default=None):
    """A run's config value `key` (dotted, without the cfg. prefix) from a collected row."""
    value = row.get(f"cfg.{key}", default)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return value


def number(value):
    """1.0 -> '1', 0.125 -> '0.125': config numbers as a reader writes them."""
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def arch_name(arch):
    return ARCH_NAMES.get(arch, arch)


SCHEDULES = {"goyal_step": "", "goyal_step_half": "fixed w.d.", "codistill_tuned": "variable w.d.",
             "cosine": "", "codistill_cosine": ""}


def method_label(row):
    name, n = cfg(row, "method.name"), int(cfg(row, "method.n", 1))
    if name == "allreduce":
        return "all_reduce"
    if name == "independent":
        return f"independent, {n} models (α = 0)"
    return "codistillation" if n == 2 else f"{n}-way codistillation"


def recipe_label(row):
    detail = SCHEDULES.get(cfg(row, "schedule.name"), cfg(row, "schedule.name"))
    return method_label(row) + (f", {detail}" if detail and cfg(row, "method.name") != "allreduce" else "")


def exchange_label(row):
    if cfg(row, "method.name") != "codistill":
        return method_label(row)
    period = cfg(row, "method.period")
    every = "every update" if float(period) == 1 else f"every {number(period)} updates"
    return f"codistillation, {cfg(row, 'method.exchange')} {every}"


def nway_label(row):
    return f"{int(cfg(row, 'method.n'))}-way"


def architectures(row):
    models = cfg(row, "workload.models")
    if isinstance(models, list) and models:
        return [model.get("arch", cfg(row, "workload.arch")) for model in models]
    return [cfg(row, "workload.arch")] * int(cfg(row, "method.n", 1))


def setup_label(row):
    archs = architectures(row)
    if len(set(archs)) == 1:
        return f"{len(archs)} × {arch_name(archs[0])}"
    return " + ".join(arch_name(a) for a in archs)
