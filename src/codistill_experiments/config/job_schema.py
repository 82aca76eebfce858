"""The schema of the job's own keys, those of src/conf/codistill.yaml: `Job`, registered in Hydra's
ConfigStore as `schema/codistill`, which codistill.yaml names first in its defaults
(`- /schema/codistill@_here_`), so that Hydra checks the type of every top-level key as it composes
a job (`seed=abc`, `save_predictions=maybe` stop it there) and refuses a key no schema declares
without `+`. The rules beside the types (rules.py) are checked by `validate`; what relates several
values (data.split=disjoint and the method, model_job and method.transport, ...) is checked in
checks.py.

As schema.py's: every field is required (codistill.yaml gives its value), in codistill.yaml's
order, which is the resolved config's and so the run id's input (`Number`: 1 stays 1, 1.0 stays
1.0). The groups are typed by their own schemas (schema.py), which Hydra keeps when it merges them
here (`Any`). A key a sweep may add is an optional key, with its rule: `+data.holdout`.
"""
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import MISSING

from ..names import DATA_SPLITS, SMOOTHING_PRIORS
from .rules import NON_NEGATIVE, POSITIVE, Number, Rule, spec


@dataclass
class Data:
    """Which training samples each model sees."""
    closed: ClassVar[bool] = True
    optional_keys: ClassVar[dict] = {
        # a sweep adds it (`+data.holdout=10000`): samples held out of training to evaluate on (tuning)
        "holdout": Rule(at_least=0, integer=True, why="training samples held out for evaluation"),
    }
    order_seed: int | None = MISSING
    fraction: Number = spec(above=0, at_most=1, why="1/k of the training set")
    subset_seed: int = MISSING
    split: str = spec(choices=DATA_SPLITS, why="disjoint: model i of n trains on shard i of n")


@dataclass
class Supervised:
    """The supervised term of every model (vision workloads): (1 - w) CE(y, p) + w H(prior, p)."""
    closed: ClassVar[bool] = True
    label_smoothing: Number = spec(at_least=0, below=1, why="the weight w of (1 - w) CE(y, p) + w H(prior, p)")
    smoothing_prior: str = spec(choices=SMOOTHING_PRIORS)


@dataclass
class Job:
    """One job: the config groups, then codistill.yaml's own keys."""
    closed: ClassVar[bool] = True
    schedule: Any = MISSING
    workload: Any = MISSING
    method: Any = MISSING
    launcher: Any = MISSING
    scale: Any = MISSING
    seed: int = spec(NON_NEGATIVE, why="runs are seeded from 0 up; a negative seed is a typo, not a run")
    init_seed: int | None = MISSING
    batch_scale: Number = spec(POSITIVE, why="it multiplies each model's batch")
    epoch_scale: Number = spec(POSITIVE, why="it multiplies the schedule's epochs")
    eval_every_epochs: Number = spec(POSITIVE, why="the run evaluates and saves its state every eval_every_epochs "
                                     "epochs (a fraction: the nearest whole number of updates, at least one) and at its "
                                     "end; the translation workloads, every whole number of epochs")
    deterministic: bool = MISSING
    data: Data = field(default_factory=Data)
    supervised: Supervised = field(default_factory=Supervised)
    world_size: Number = MISSING   # computed: method.n x scale.ranks_per_model
    job_ranks: Number = MISSING    # computed: world_size, or one model's ranks (method.transport=files)
    model_job: int | None = spec(NON_NEGATIVE, why="the index of the one model a job trains")
    sweep_id: str | None = MISSING
    expected_run_id: str | None = MISSING
    dry_run: bool = MISSING
    trace: bool = MISSING
    update_pause_s: Number = spec(at_least=0, why="seconds each rank sleeps after every update (0: none)")
    save_predictions: bool = MISSING
    results_root: str = MISSING


GROUPS = ("schedule", "workload", "method", "launcher", "scale")   # Job's fields typed by their own schemas
