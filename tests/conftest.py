import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "library" / "src"), str(ROOT / "src")]

CONF = ROOT / "src" / "conf"

# torch, Hydra and the engine are imported where they are used, not here: pytest-xdist's controller
# loads this file too, before it starts the workers, and would otherwise spend 3 s importing them
# while both cores wait for it.

# An xdist worker (make test: one per core) computes with torch on one thread, as the runs' ranks
# do (launcher.threads_per_rank): with a pool of a thread per core in each worker, the workers'
# threads outnumber the cores and spin waiting for each other on matrices this small.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)

# A short recipe for multi-process tests: 3 epochs of the mini workload, warm-up then one decay.
SHORT = ["schedule.epochs=3", "schedule.lr.warmup_epochs=1", "schedule.lr.milestones=[2]",
         "schedule.weight_decay.values=[1e-4]", "schedule.weight_decay.milestones=[]"]


# Tests of the engine's mechanics train on digits (seconds per run) unless they name a workload or
# a paper-scale job; the figures' mini stand-in is clusters_resnet (docs/mini-scale.md).
QUICK_WORKLOAD = "workload=digits_mlp"


def with_quick_workload(overrides):
    named = any(o.split("=")[0].lstrip("+") == "workload" or o == "scale=paper" for o in overrides)
    return list(overrides) if named else [QUICK_WORKLOAD, *overrides]


def covering(first, second):
    """Pairs of an item of `first` and one of `second` in which every item of each appears at least
    once: a diagonal, the shorter list wrapped (the fast tier's stand-in for their whole product)."""
    return {(first[i % len(first)], second[i % len(second)]) for i in range(max(len(first), len(second)))}


def compose_job(overrides, results_root, quick=True):
    """The validated job of `overrides`; quick=False keeps the config's own default workload.
    (The YAML files are read once per process: codistill_experiments.config.reads.)"""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from codistill_experiments.config import validate

    overrides = with_quick_workload(overrides) if quick else list(overrides)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("codistill", overrides=[*overrides, f"results_root={results_root}"])
    return validate(cfg)


@pytest.fixture
def run_job(tmp_path):
    """Composes a job from overrides, runs it with real gloo processes, returns its run dir."""

    from codistill_experiments.launch import launch
    from codistill_experiments.runlog import run_dir

    def run(overrides):
        container = compose_job(overrides, tmp_path)
        directory = run_dir(container)
        launch(container, directory)
        return directory, container

    return run


@pytest.hookimpl(trylast=True)   # after `-m` and `-k` have deselected: only the tests that will run
def pytest_collection_modifyitems(items):
    """Tells tests/test_sweeps.py which sweeps the selected tests list, so that it lists them all
    at once, in parallel, the first time one is needed."""
    sweeps = sys.modules.get("test_sweeps")
    if sweeps is not None:
        sweeps.WANTED.update(sweeps.listings_wanted_by(items))
