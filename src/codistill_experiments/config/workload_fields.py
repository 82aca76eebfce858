"""The fields the torch engine's workload schemas share (schema.py's and tabular_schema.py's),
declared once and added to each schema where its config files write them (rules.shares)."""
from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from .rules import COUNT, NON_NEGATIVE, spec

MODELS = list[Any] | None   # per-model settings, one entry per model (config.checks)


@dataclass
class EngineData:
    """How the engine evaluates and loads a workload's data, and each model's own settings."""
    eval_batch: int = spec(COUNT)
    loader_workers: int = spec(NON_NEGATIVE)
    models: MODELS = MISSING


@dataclass
class GpuSpeed:
    """A GPU workload's mixed precision and memory format."""
    amp: bool = MISSING
    channels_last: bool = MISSING
