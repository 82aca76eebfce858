"""The schemas of the click-prediction workloads (vision/tabular.py; Anil et al. 2018, Table 1), as
schema.py's: the generated mini task and Criteo's TSV on disk. Paper values and mini choices are
explained in the config files (src/conf/workload/criteo*.yaml)."""
from dataclasses import dataclass
from typing import Any, List, Optional

from omegaconf import MISSING

from .rules import COUNT, FRACTION, NON_NEGATIVE, POSITIVE, WORKLOAD_NAME, Number, named, spec


@dataclass
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
    eval_batch: int = spec(COUNT)
    loader_workers: int = spec(NON_NEGATIVE)
    models: Optional[List[Any]] = MISSING   # per-model settings: width_scale (config.checks)
    gpu_memory_gb: Optional[int] = MISSING


@dataclass
class Criteo:
    name: str = named("criteo", WORKLOAD_NAME)
    data_root: str = MISSING
    val_fraction: Number = spec(FRACTION)
    split_seed: int = MISSING
    min_count: int = spec(COUNT)
    embedding_dim: int = spec(COUNT)
    max_vocab: int = spec(COUNT)
    width_scale: Number = spec(POSITIVE)
    eval_batch: int = spec(COUNT)
    loader_workers: int = spec(NON_NEGATIVE)
    models: Optional[List[Any]] = MISSING   # per-model settings: width_scale (config.checks)
    gpu_memory_gb: Optional[int] = MISSING
