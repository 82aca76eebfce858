"""The schemas of the click-prediction workloads (tabular/criteo.py; Anil et al. 2018, Table 1), as
schema.py's: the generated mini task and Criteo's TSV on disk. Paper values and mini choices are
explained in the config files (src/conf/workload/criteo*.yaml)."""
from dataclasses import dataclass

from omegaconf import MISSING

from .rules import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, WORKLOAD_NAME, Number, named, shares, spec
from .workload_fields import EngineData


@dataclass
@shares(EngineData, after="batch_per_rank")   # models: per-model width_scale (config.checks)
class CriteoMini:
    name: str = named("criteo_mini", WORKLOAD_NAME)
    train_size: int = spec(COUNT)
    val_size: int = spec(COUNT)
    click_rate: Number = spec(above=0, below=1, why="the mean click probability")
    logit_std: Number = spec(POSITIVE)
    vocab_min: int = spec(at_least=2, why="the smallest categorical vocabulary")
    vocab_max: int = spec(at_least=2, why="the largest categorical vocabulary")
    zipf_exponent: Number = spec(POSITIVE)
    interaction_pairs: int = spec(NON_NEGATIVE)
    data_seed: int = MISSING
    embedding_dim: int = spec(COUNT)
    max_vocab: int = spec(COUNT)
    width_scale: Number = spec(POSITIVE)
    batch_per_rank: int = spec(COUNT)
    gpu_memory_gb: int | None = MISSING


@dataclass
@shares(EngineData, after="width_scale")
class Criteo:
    name: str = named("criteo", WORKLOAD_NAME)
    data_root: str = MISSING
    val_fraction: Number = spec(FRACTION)
    split_seed: int = MISSING
    min_count: int = spec(COUNT)
    embedding_dim: int = spec(COUNT)
    max_vocab: int = spec(COUNT)
    width_scale: Number = spec(POSITIVE)
    gpu_memory_gb: int | None = MISSING
