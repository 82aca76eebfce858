"""The schema of each config group: dataclasses registered in Hydra's ConfigStore under
`schema/<group>/<name>`, which every config file of the group names first in its defaults
(`- /schema/method/codistill@_here_`). Hydra checks each key and each value's type as it composes a
job (a misspelt key, or `method.period=abc`, stops it there), and `rules.problems_of` checks the
rules declared beside the types (allowed values, bounds) once the job is resolved.

The config files give every value (a field has no default, but for `name`), so that a run's resolved
config, and its run id, is what the files say; a field is as wide as the values the files and the
sweeps give it (`Number`: 1 stays 1, 1.0 stays 1.0). The fields are in the config file's order, which
is the resolved config's; the fields several workload schemas share are declared once
(workload_fields.py, translation_schema.TranslationTraining) and placed there by rules.shares. A nested
schema is built empty (default_factory) rather than left missing:
OmegaConf 2.3 cannot fill a missing node whose schema holds a Union field. The lists of choices are
codistill.choices' (the library's) and names' (the experiments'), which the modules that implement
them import too. The translation schemas are translation_schema.py's; the schema of the job's own
keys (codistill.yaml's: seed, data, supervised, ...) is job_schema.py's.
"""
import multiprocessing
from dataclasses import dataclass, field
from typing import ClassVar

from omegaconf import MISSING

from codistill import (
    ALPHA_SCHEDULES,
    CHECKPOINT_BITS,
    DISTILL_LOSSES,
    EXCHANGES,
    PREDICTION_BITS,
    SNAPSHOT_MODES,
    TRANSPORTS,
)

from ..names import MINI_ARCHS, MINI_RESNETS, OPTIMIZERS, OUTER_AGGREGATES, OUTER_BITS, SCENARIOS
from ..schedules import LR_KINDS
from .job_schema import Job
from .rules import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, WORKLOAD_NAME, Number, Numbers, Rule, named, shares, spec
from .tabular_schema import Criteo, CriteoMini
from .translation_schema import (
    LanguageModelCorpus,
    LanguageModelMini,
    LanguageModelSchedule,
    LanguageModelWorkload,
    TranslationGrammar,
    TranslationMini,
    TranslationSchedule,
    TranslationWorkload,
)
from .workload_fields import EngineData, GpuSpeed

# torchft's should_quantize: its allreduce_quantized runs triton kernels on CUDA tensors, and without
# triton torchft silently sends float32 instead; the engine's gloo ranks hold CPU tensors.
QUANTIZE_WHY = ("torchft quantises the outer gradients with triton kernels on CUDA tensors only, and without "
                "triton sends float32 silently; streaming_diloco is verified on gloo with CPU tensors "
                "(docs/frontier.md)")
PERIOD = Rule(at_least=1, why="T, updates between exchanges, or H, updates between averagings")


# ----- method: one schema per method; a key no method reads is refused (`+method.alpha` on allreduce)

@dataclass
class Method:
    closed: ClassVar[bool] = True
    name: str = MISSING
    n: int = MISSING
    nodes_per_model: int = spec(COUNT)


def method_name(name):
    return named(name, "method=<name> chooses the method")


@dataclass
class Allreduce(Method):
    name: str = method_name("allreduce")
    n: int = spec(choices=(1,), why="allreduce trains one model")
    coordinated_sampling: bool = MISSING


@dataclass
class Codistill(Method):
    name: str = method_name("codistill")
    n: int = spec(at_least=2, why="codistillation needs n >= 2 models")
    exchange: str = spec(choices=EXCHANGES)
    period: int = spec(PERIOD)
    prediction_bits: int = spec(choices=PREDICTION_BITS, why="logits travel as float32, float16 or int8")
    prediction_topk: int | None = spec(COUNT, why="null sends every logit; k sends each example's k largest")
    checkpoint_bits: int = spec(choices=CHECKPOINT_BITS, why="32 sends checkpoints as they are; 8, 4, 2 quantise "
                                "them per block")
    checkpoint_delta_fraction: Number | None = spec(above=0, at_most=1, why="null sends whole checkpoints; f the "
                                                       "fraction of each chunk's values a sparse delta sends")
    loss: str = spec(choices=DISTILL_LOSSES)
    temperature: Number = spec(above=0, why="kl and soft_ce divide the logits by it")
    alpha: Number = spec(NON_NEGATIVE)
    alpha_schedule: str = spec(choices=ALPHA_SCHEDULES)
    alpha_gamma: Number = spec(POSITIVE)
    alpha_step_factor: Number = MISSING
    burn_in_steps: int = spec(NON_NEGATIVE)
    coordinated_sampling: bool = MISSING
    transport: str = spec(choices=TRANSPORTS)
    snapshot_mode: str = spec(choices=SNAPSHOT_MODES)
    snapshot_timeout_s: Number = spec(above=0, why="seconds")
    peer_start_timeout_s: Number = spec(above=0, why="seconds")


@dataclass
class Independent(Method):
    name: str = method_name("independent")
    n: int = spec(COUNT)
    coordinated_sampling: bool = MISSING
    alpha: Number = spec(NON_NEGATIVE)


@dataclass
class TwoPhase(Method):
    """Anil et al. 2018 Sec. 3.4.1: n teachers trained as method=independent (their own run), then
    one student per group distilling from the frozen ensemble (training/two_phase.py)."""
    name: str = method_name("two_phase")
    n: int = spec(at_least=2, why="the teachers of the ensemble (and the students, one per group)")
    coordinated_sampling: bool = MISSING
    loss: str = spec(choices=DISTILL_LOSSES)
    temperature: Number = spec(above=0, why="kl and soft_ce divide the logits by it")
    alpha: Number = spec(NON_NEGATIVE)


@dataclass
class Averaging(Method):
    """localsgd and diloco: n groups averaged every `period` updates."""
    n: int = spec(at_least=2, why="n >= 2 model groups are averaged")
    coordinated_sampling: bool = MISSING
    period: int = spec(PERIOD)


@dataclass
class LocalSGD(Averaging):
    name: str = method_name("localsgd")
    warmup_steps: int = spec(at_least=0, why="0: no post-local SGD warm-up")


@dataclass
class DiLoCo(Averaging):
    name: str = method_name("diloco")
    outer_lr: Number = spec(POSITIVE)
    outer_momentum: Number = spec(FRACTION)


@dataclass
class StreamingDiLoCo(Averaging):
    """Streaming DiLoCo through torchft's DiLoCo (baselines/streaming_diloco.py): one of `fragments`
    fragments synced every period / fragments updates, each fragment every `period` (H)."""
    name: str = method_name("streaming_diloco")
    outer_lr: Number = spec(POSITIVE)
    outer_momentum: Number = spec(FRACTION)
    fragments: int = spec(COUNT)
    fragment_sync_delay: int = spec(NON_NEGATIVE)
    fragment_update_alpha: Number = spec(at_least=0, below=1, why="the weight of a fragment's local values "
                                         "when it takes the synced ones (1 would discard every sync)")
    quantize: bool = spec(choices=(False,), why=QUANTIZE_WHY)


@dataclass
class PowerSGD(Method):
    name: str = method_name("powersgd")
    n: int = spec(choices=(1,), why="powersgd trains one model over all ranks")
    coordinated_sampling: bool = MISSING
    rank: int = spec(at_least=1, why="PowerSGD's matrix approximation rank")
    start_iter: int = spec(NON_NEGATIVE)
    min_compression_rate: Number = spec(NON_NEGATIVE)
    error_feedback: bool = MISSING
    warm_start: bool = MISSING


@dataclass
class CompressedDiLoCo(DiLoCo):
    """sparseloco and muloco (baselines/compressed_diloco.py): DiLoCo whose outer gradient travels
    compressed, `bits` per value, with error feedback of decay `error_decay`."""
    error_decay: Number = spec(FRACTION, why="beta of e <- beta e + Delta (0: no error feedback)")
    bits: int = spec(choices=OUTER_BITS, why="quantize_blocks' bits (32: float32)")
    range_sigmas: Number = spec(POSITIVE, why="the quantiser's codes span this many standard deviations")


@dataclass
class SparseLoCo(CompressedDiLoCo):
    name: str = method_name("sparseloco")
    top_k: int = spec(COUNT, why="values kept per chunk of chunk_size x chunk_size (at most chunk_size^2)")
    chunk_size: int = spec(COUNT, why="the side of SparseLoCo's 2-D chunks")
    aggregate: str = spec(choices=OUTER_AGGREGATES)


@dataclass
class MuLoCo(CompressedDiLoCo):
    name: str = method_name("muloco")
    requantize: bool = MISSING
    inner_lr_scale: Number = spec(POSITIVE, why="Muon's and AdamW's learning rate is the schedule's x this")
    muon_momentum: Number = spec(FRACTION)


METHODS = {schema.name: schema for schema in (Allreduce, Codistill, Independent, PowerSGD, LocalSGD, DiLoCo,
                                              StreamingDiLoCo, TwoPhase, SparseLoCo, MuLoCo)}


# ----- scale

@dataclass
class Scale:
    name: str = spec(choices=("mini", "paper"))
    note: str = MISSING
    ranks_per_node: int = spec(COUNT)
    ranks_per_model: Number = spec(at_least=1, whole=True, why="check batch_scale: at paper scale it multiplies "
                                                                 "the GPUs per model")
    batch_per_rank: Number = spec(at_least=1, whole=True, why="check batch_scale: at mini scale it multiplies the "
                                                                "per-rank batch")
    gpus_per_rank: int = spec(NON_NEGATIVE)


# ----- schedule: the vision recipes (epochs) and the translation recipes (fairseq's updates)

@dataclass
class LR:
    kind: str = spec(choices=LR_KINDS)
    base: Number = spec(POSITIVE, why="the learning rate at schedule.lr.reference_batch")
    reference_batch: int = spec(COUNT)
    warmup_epochs: Number = MISSING
    milestones: Numbers = spec(NON_NEGATIVE, why="epochs")
    decay: Number = spec(NON_NEGATIVE, why="the factor each milestone multiplies the learning rate by")


@dataclass
class WeightDecay:
    values: Numbers = spec(NON_NEGATIVE)
    milestones: Numbers = spec(NON_NEGATIVE, why="epochs")


@dataclass
class VisionSchedule:
    name: str = MISSING
    epochs: Number = spec(POSITIVE)
    optimizer: str = spec(choices=OPTIMIZERS, why="sgd (with momentum), adagrad (Anil et al. 2018 Sec. 3.1) or adamw "
                                                  "(the peers' language models)")
    momentum: Number = spec(FRACTION, why="SGD's momentum or AdamW's beta1; 0 for adagrad")
    lr: LR = field(default_factory=LR)
    weight_decay: WeightDecay = field(default_factory=WeightDecay)
    clip_norm: Number | None = spec(above=0, why="null: no clipping; c: each update's gradient rescaled to norm "
                                       "at most c (the peers' language models: 1.0)")


# ----- workload: one schema per workload file (their keys differ)

@dataclass
@shares(EngineData, after="hidden")
class DigitsMLP:
    name: str = named("digits_mlp", WORKLOAD_NAME)
    train_size: int = spec(COUNT)
    split_seed: int = MISSING
    arch: str | None = spec(choices=tuple(MINI_ARCHS), why="the mini stand-ins")
    hidden: list[int] | None = MISSING
    gpu_memory_gb: int | None = MISSING


@dataclass
@shares(EngineData, after="alpha_scale")
class ClustersResNet:
    name: str = named("clusters_resnet", WORKLOAD_NAME)
    train_size: int = spec(COUNT)
    val_size: int = spec(COUNT)
    features: int = spec(COUNT)
    num_classes: int = spec(COUNT)
    clusters_per_class: int = spec(COUNT)
    cluster_std: Number = MISSING
    label_noise: Number = MISSING
    data_seed: int = MISSING
    arch: str | None = spec(choices=tuple(MINI_RESNETS), why="the mini stand-ins")
    batch_per_rank: int = spec(COUNT)
    epoch_scale: Number = spec(POSITIVE)
    weight_decay_scale: Number = spec(NON_NEGATIVE)
    alpha_scale: Number = spec(NON_NEGATIVE)
    gpu_memory_gb: int | None = MISSING


@dataclass
@shares(EngineData, after="data_root")
@shares(GpuSpeed, after="zero_init_residual")
class ImageNet:
    name: str = named("imagenet", WORKLOAD_NAME)
    arch: str = MISSING
    num_classes: int = spec(COUNT)
    data_root: str = MISSING
    zero_init_residual: bool = MISSING
    gpu_memory_gb: int | None = MISSING


@dataclass
@shares(EngineData, after="pretrained")
@shares(GpuSpeed, after="sync_batchnorm")
class Cifar10:
    name: str = named("cifar10", WORKLOAD_NAME)
    data_root: str = MISSING
    depth: int = spec(COUNT)
    widen: int = spec(COUNT)
    num_classes: int = spec(COUNT)
    scenario: str = spec(choices=SCENARIOS)
    n_splits: int = spec(COUNT)
    pretrained: str | None = MISSING
    sync_batchnorm: bool = MISSING
    gpu_memory_gb: int | None = MISSING


@dataclass
@shares(EngineData, after="data_seed")
class MultiviewMini:
    name: str = named("multiview_mini", WORKLOAD_NAME)
    scenario: str = spec(choices=SCENARIOS)
    train_size: int = spec(COUNT)
    val_size: int = spec(COUNT)
    label_noise: Number = MISSING
    data_seed: int = MISSING
    gpu_memory_gb: int | None = MISSING


@dataclass
@shares(EngineData, after="alpha_scale")
class LanguageModelTransformerMini:
    """lm_mini's generated corpus and a small causal transformer in the torch engine
    (language_model/transformer.py)."""
    name: str = named("lm_transformer_mini", WORKLOAD_NAME)
    corpus: LanguageModelCorpus = field(default_factory=LanguageModelCorpus)
    tokens_per_sample: int = spec(COUNT)
    train_size: int = spec(COUNT, why="blocks of tokens_per_sample tokens trained on")
    val_size: int = spec(COUNT, why="blocks of tokens_per_sample tokens evaluated")
    num_classes: int = spec(at_least=2, why="the corpus's words and </s>: corpus.vocab + 1")
    width: int = spec(COUNT)
    layers: int = spec(COUNT)
    heads: int = spec(COUNT)
    batch_per_rank: int = spec(COUNT, why="blocks per rank")
    alpha_scale: Number = spec(NON_NEGATIVE)
    gpu_memory_gb: int | None = MISSING


# ----- launcher: where the ranks of a job run (not part of the run's identity)

START_METHODS = Rule(choices=tuple(multiprocessing.get_all_start_methods()), why="how a job starts its ranks")


@dataclass
class Launcher:
    """What every launcher sets: how ranks start, their threads, how long they wait, and whether a
    sweep checks the jobs' data on the machine that launches it."""
    name: str = MISSING
    start_method: str = spec(START_METHODS)
    threads_per_rank: int = spec(COUNT)
    collective_timeout_s: Number = spec(POSITIVE)
    lock_wait_s: Number = spec(NON_NEGATIVE)
    # False: a sweep whose data is missing here warns and is queued anyway (a login node without the
    # compute nodes' data mounts); each job still checks its data when it starts
    check_data_on_submit: bool = MISSING


@dataclass
class LocalLauncher(Launcher):
    """The ranks on this machine, started by this process (local) or by submitit (submitit_local)."""
    name: str = spec(choices=("local", "submitit_local"), why="launcher=<name> chooses the launcher")


@dataclass
class LocalParallelLauncher(LocalLauncher):
    """Up to jobs_at_once jobs of a sweep at once on this machine, each starting its own ranks."""
    name: str = named("local_parallel", "launcher=<name> chooses the launcher")
    jobs_at_once: int = spec(COUNT)


@dataclass
class SlurmLauncher(Launcher):
    """One Slurm task per rank, through submitit."""
    name: str = named("slurm", "launcher=<name> chooses the launcher")
    partition: str | None = MISSING
    account: str | None = MISSING
    constraint: str | None = MISSING
    gpus_per_rank: int = spec(NON_NEGATIVE)
    tasks_per_node: int = spec(COUNT)
    cpus_per_task: int = spec(COUNT)
    mem_gb_per_rank: Number | None = spec(POSITIVE)   # None: no --mem, the partition's default
    mem_gb: Number | None = spec(POSITIVE)
    time_limit_min: Number = spec(POSITIVE)
    max_requeues: int = spec(NON_NEGATIVE)
    signal_delay_s: Number = spec(POSITIVE)


# The schemas of each group, by the name the config files give them (`/schema/<group>/<name>`).
SCHEMAS = {
    "method": METHODS,
    "scale": {"scale": Scale},
    "schedule": {"vision": VisionSchedule, "translation": TranslationSchedule,
                 "language_model": LanguageModelSchedule},
    "launcher": {"local": LocalLauncher, "local_parallel": LocalParallelLauncher, "slurm": SlurmLauncher},
    "workload": {"digits_mlp": DigitsMLP, "clusters_resnet": ClustersResNet, "imagenet": ImageNet,
                 "cifar10": Cifar10, "multiview_mini": MultiviewMini, "translation": TranslationWorkload,
                 "translation_mini": TranslationMini, "translation_grammar": TranslationGrammar,
                 "language_model": LanguageModelWorkload,
                 "lm_mini": LanguageModelMini, "criteo_mini": CriteoMini, "criteo": Criteo,
                 "lm_transformer_mini": LanguageModelTransformerMini},
}


def register_schemas():
    """Stores every schema in Hydra's ConfigStore, where the config files' defaults find them: the
    groups' under schema/<group>/<name>, the job's own keys (job_schema.Job) under schema/codistill.
    Run before anything composes a job (importing codistill_experiments.config does it)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for group, schemas in SCHEMAS.items():
        for name, schema in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=schema, provider="codistill")
    store.store(group="schema", name="codistill", node=Job, provider="codistill")
