import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "figures")]

from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402

from codistill.config import validate  # noqa: E402
from codistill.launch import launch  # noqa: E402
from codistill.runlog import run_dir  # noqa: E402

CONF = ROOT / "src" / "conf"

# A short recipe for multi-process tests: 3 epochs of the mini workload, warm-up then one decay.
SHORT = ["schedule.epochs=3", "schedule.lr.warmup_epochs=1", "schedule.lr.milestones=[2]",
         "schedule.weight_decay.values=[1e-4]", "schedule.weight_decay.milestones=[]"]


def compose_job(overrides, results_root):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("codistill", overrides=[*overrides, f"results_root={results_root}"])
    return validate(cfg)


@pytest.fixture
def run_job(tmp_path):
    """Composes a job from overrides, runs it with real gloo processes, returns its run dir."""

    def run(overrides):
        container = compose_job(overrides, tmp_path)
        directory = run_dir(container)
        launch(container, directory)
        return directory, container

    return run
