"""What a job will cost on the paper's GPUs before it is queued: GPUs, servers, updates, time per
update, wall time and GPU-hours, from its resolved config, the step-time model (step_model.py) and
published V100 throughput. Nothing is measured here and no GPU is asked: the numbers are a plan,
printed by a dry run (`python src/run.py -m sweep=<id> scale=paper launcher=slurm_v100 dry_run=true`)
beside each job, with the assumptions below named in its output.

Time per update = compute on one V100 (the per-GPU batch over a published V100 rate, scaled from
the published model to the job's by FLOPs) + the collectives of the job's method (step_model's
methods, no overlap of communication with compute). Evaluation, start-up and data loading are left
out: a lower bound of the wall time, as close as the published rate is to the recipe's."""
import math
from dataclasses import dataclass

from . import step_model as sm
from .names import GLOBAL_BATCH_METHODS

# Published V100 rates the compute time is scaled from (examples per second on one V100 16 GB).
# NVIDIA DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md, "Training
# performance: NVIDIA DGX-1 16GB (8x V100 16GB)", 1 GPU: 367 img/s FP32, 1200 img/s mixed precision.
RESNET50_V100_IMAGES_PER_S = {"float32": 367.0, "mixed": 1200.0}
# NVIDIA DeepLearningExamples, PyTorch/Translation/Transformer/README.md, "NVIDIA DGX-1 (8x V100
# 16G)", 1 GPU, 2560 tokens per GPU, transformer big: 7,635 tokens/s FP32, 23,821 mixed precision.
TRANSFORMER_BIG_V100_TOKENS_PER_S = {"float32": 7635.0, "mixed": 23821.0}
# Training examples of the paper's datasets, for updates per epoch (ImageNet-1k's train split,
# CIFAR-10's; Criteo's Kaggle train.txt, 45,840,617 rows, less the tenth held out: workload/criteo.yaml).
PAPER_TRAIN_SIZES = {"imagenet": 1_281_167, "cifar10": 50_000, "criteo": 41_256_555}
# The network: servers of 8 V100s over NVLink (step_model's intra-server defaults) and 100 Gbit/s
# between servers (EDR InfiniBand), of which step_model.EFFICIENCY is payload. The paper does not
# state its network (docs/paper-discrepancies.md).
LINK_GBIT = 100
ASSUMPTIONS = (f"one V100 16 GB per rank, 8 per server over NVLink, {LINK_GBIT} Gbit/s between servers "
               f"({sm.EFFICIENCY:.0%} payload); compute scaled by FLOPs from published V100 rates "
               f"(ResNet-50 {RESNET50_V100_IMAGES_PER_S['float32']:.0f} img/s FP32, transformer big "
               f"{TRANSFORMER_BIG_V100_TOKENS_PER_S['mixed']:,.0f} tokens/s mixed precision: NVIDIA "
               "DeepLearningExamples); no overlap of communication with compute; evaluation, start-up and "
               "loading left out")
# (forward FLOPs of one example, parameters) of the paper's vision models at their paper inputs
# (224 x 224 ImageNet crops, 1000 classes; 32 x 32 CIFAR-10 images, 10 classes), counted by torch's
# FlopCounterMode (2 FLOPs a multiply-add) on the meta device: tests/test_job_cost.py counts them again.
# The multi-view runs' split models are costed as the whole WRN-28-10 (an upper bound).
VISION_SHAPES = {("imagenet", "resnet18"): (3_628_146_688, 11_689_512),
                 ("imagenet", "resnet50"): (8_178_368_512, 25_557_032),
                 ("imagenet", "resnext101_32x8d"): (32_828_030_976, 88_791_336),
                 ("cifar10", "wrn-28-10"): (10_486_657_536, 36_479_194)}
# Sequence models: vocabulary of their logits and embeddings (not in the config: the data-bin's).
ASSUMED_VOCABULARY = sm.VOCABULARY
# fairseq architectures: (embedding width, feed-forward width, encoder layers, decoder layers).
TRANSFORMER_SHAPES = {"transformer_vaswani_wmt_en_de_big": (1024, 4096, 6, 6),
                      "transformer_wmt_en_de_big": (1024, 4096, 6, 6),
                      "transformer_iwslt_de_en": (512, 1024, 6, 6), "transformer": (512, 2048, 6, 6)}


@dataclass(frozen=True)
class JobCost:
    gpus: int
    servers: int
    updates: int
    seconds_per_update: float
    basis: str        # what the time per update was computed from

    @property
    def hours(self):
        return self.updates * self.seconds_per_update / 3600

    @property
    def gpu_hours(self):
        return self.gpus * self.hours

    def line(self):
        return (f"{self.gpus} GPUs on {self.servers} server{'s' * (self.servers != 1)}, {self.updates:,} updates x "
                f"{self.seconds_per_update:.3f} s = {self.hours:,.1f} h, {self.gpu_hours:,.0f} GPU-h ({self.basis})")


class NotCosted(Exception):
    """A job whose cost the model does not cover, with the reason."""


def job_cost(container):
    """The JobCost of a resolved job that asks for GPUs (scale.gpus_per_rank > 0); NotCosted
    (with its reason) where the model has no basis for it."""
    scale, method = container["scale"], container["method"]
    if not scale["gpus_per_rank"]:
        raise NotCosted("the job asks for no GPU (scale.gpus_per_rank=0)")
    world, per_model = int(container["world_size"]), int(scale["ranks_per_model"])   # whole numbers, maybe 4.0
    gpus = world * scale["gpus_per_rank"]
    servers = max(1, math.ceil(world / scale["ranks_per_node"]))
    work, updates, basis = _workload(container)
    cost = _method_cost(method, world, per_model, work)
    return JobCost(gpus, servers, updates, cost.seconds, basis)


def _precision(workload):
    return "mixed" if workload.get("amp") or workload.get("fp16") else "float32"


def _workload(container):
    """(step_model.Workload, updates, basis) of a job."""
    workload = container["workload"]
    if workload.get("task") in ("translation", "language_modeling"):
        return _sequence_workload(container)
    if workload["name"] not in ("imagenet", "cifar10"):
        raise NotCosted(f"workload {workload['name']!r}: no published V100 rate to scale from")
    batch, precision = int(container["scale"]["batch_per_rank"]), _precision(workload)
    classes = workload["num_classes"]
    reference, _ = VISION_SHAPES["imagenet", "resnet50"]
    # the slowest of the job's models sets its pace (workload.models: one architecture per model)
    flops, params = max(vision_shape(workload["name"], arch, classes) for arch in _architectures(workload))
    per_second = RESNET50_V100_IMAGES_PER_S[precision] * reference / flops
    # each parameter tensor's shape where it is known (SparseLoCo's and MuLoCo's messages are per tensor,
    # MuLoCo's Muon per matrix); the FLOPs of an update (forward x 3) price Muon at the update's own rate
    known = _architectures(workload) == ["resnet50"] and classes == 1000
    work = sm.Workload(workload["name"], params, batch / per_second, logits_per_device=batch * classes, classes=classes,
                       tensors=tuple(sm.resnet50_tensors()) if known else (), flops_per_update=3 * batch * flops)
    return work, _vision_updates(container), f"{per_second:,.0f} img/s per V100, {precision}"


def _architectures(workload):
    if workload["name"] == "cifar10":
        return [f"wrn-{workload['depth']}-{workload['widen']}"]
    return sorted({(spec or {}).get("arch", workload["arch"]) for spec in (workload["models"] or [None])})


def vision_shape(name, arch, num_classes):
    """(forward FLOPs of one example, parameters) of a paper vision model, from VISION_SHAPES."""
    key = (name, arch)
    if key not in VISION_SHAPES or num_classes != {"imagenet": 1000, "cifar10": 10}[name]:
        raise NotCosted(f"workload {name} with arch {arch} and {num_classes} classes: not among the paper's "
                        "models whose shape is known here (job_cost.VISION_SHAPES)")
    return VISION_SHAPES[key]


def _vision_updates(container):
    """Updates of a vision job on the paper's dataset, counted as config.checks.check_updates does."""
    workload, scale, method, data = (container[key] for key in ("workload", "scale", "method", "data"))
    ranks = container["world_size"] if method["name"] in GLOBAL_BATCH_METHODS else scale["ranks_per_model"]
    batch = int(scale["batch_per_rank"]) * int(ranks)
    samples = PAPER_TRAIN_SIZES[workload["name"]] - data.get("holdout", 0)   # an optional key (+data.holdout)
    samples = samples if data["fraction"] >= 1 else round(samples * data["fraction"])
    if data["split"] == "disjoint":
        samples //= method["n"]
    stretch = container["epoch_scale"] / data["fraction"] * workload.get("epoch_scale", 1.0)
    return int(round(container["schedule"]["epochs"] * stretch * (samples // batch)))


def sequence_params(model):
    """Parameters of a fairseq transformer or the LSTM language model from its config (weights of the
    layers; biases and norms left out), with ASSUMED_VOCABULARY embeddings."""
    arch = model["arch"]
    if arch == "codistill_lstm_lm":
        embed, hidden, layers = model["decoder_embed_dim"], model["decoder_hidden_size"], model["decoder_layers"]
        inputs = [embed] + [hidden] * (layers - 1)
        recurrent = sum(4 * hidden * (width + hidden) for width in inputs)
        return recurrent + ASSUMED_VOCABULARY * (embed + hidden)   # input embeddings, output projection
    if arch not in TRANSFORMER_SHAPES:
        raise NotCosted(f"fairseq arch {arch!r}: no shape known to cost it")
    d, ffn, encoders, decoders = TRANSFORMER_SHAPES[arch]
    d, ffn = model.get("encoder_embed_dim", d), model.get("encoder_ffn_embed_dim", ffn)
    encoders, decoders = model.get("encoder_layers", encoders), model.get("decoder_layers", decoders)
    layers = encoders * (4 * d * d + 2 * d * ffn) + decoders * (8 * d * d + 2 * d * ffn)
    return layers + ASSUMED_VOCABULARY * d


def _sequence_workload(container):
    workload, schedule = container["workload"], container["schedule"]
    precision = _precision(workload)
    big = sequence_params({"arch": "transformer_vaswani_wmt_en_de_big"})
    params = sequence_params(workload["model"])
    per_second = TRANSFORMER_BIG_V100_TOKENS_PER_S[precision] * big / params   # FLOPs ~ 6 x params per token
    if workload["task"] == "language_modeling":
        tokens = workload["batch_size"] * workload["tokens_per_sample"]
    else:
        tokens = workload["max_tokens"]
    work = sm.Workload(workload["name"], params, tokens / per_second, logits_per_device=tokens * ASSUMED_VOCABULARY,
                       classes=ASSUMED_VOCABULARY)
    return work, schedule["max_update"], f"{per_second:,.0f} tokens/s per V100, {precision}"


def _method_cost(method, world, per_model, work):
    """step_model's Cost of one update of the job's method."""
    net = sm.Network(inter_bits_per_s=sm.EFFICIENCY * LINK_GBIT * 1e9, algorithm="best", **sm.GPU_COSTS)
    name, n = method["name"], method["n"]
    if name == "allreduce":
        return sm.all_reduce(sm.Layout(1, world), work, net)
    if name == "powersgd":
        return sm.powersgd(sm.Layout(1, world, rank=method["rank"]), work, net)
    if name in ("localsgd", "diloco"):
        return getattr(sm, name)(sm.Layout(n, per_model, method["period"]), work, net)
    if name == "sparseloco":
        return sm.sparseloco(sm.Layout(n, per_model, method["period"]), work, net, method["top_k"],
                             method["chunk_size"], method["bits"])
    if name == "muloco":
        return sm.muloco(sm.Layout(n, per_model, method["period"]), work, net, method["bits"])
    if name == "codistill":
        layout = sm.Layout(n, per_model, method["period"])
        exchange = method["exchange"]
        if exchange == "predictions":
            return sm.predictions(layout, work, net, method["prediction_topk"], method["prediction_bits"])
        compressed = method["checkpoint_bits"] != 32 or method["checkpoint_delta_fraction"] is not None
        if exchange in ("checkpoints", "sharded_checkpoints") and compressed:
            return sm.compressed_checkpoints(layout, work, net, method["checkpoint_bits"],
                                             method["checkpoint_delta_fraction"], exchange == "sharded_checkpoints")
        if exchange in ("checkpoints", "sharded_checkpoints"):
            return getattr(sm, exchange)(layout, work, net)
    # independent models, or a method whose exchange the model lacks: each model's own all_reduce
    return sm.all_reduce(sm.Layout(1, per_model), work, net)
