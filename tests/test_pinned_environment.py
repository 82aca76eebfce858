"""A job queued on Slurm composes its config again where it starts; on sites with
SBATCH_EXPORT=NONE that environment has none of the submitting shell's variables. The sweeper
pins what the config reads from the environment as overrides of each queued job."""
import pytest
from conftest import CONF
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from codistill_experiments.config import ConfigError, validate
from codistill_experiments.pinned_environment import environment_overrides
from codistill_experiments.runlog import run_id

SUBMITTED = {"CODISTILL_RESULTS": "/shared/it's results", "IMAGENET_ROOT": "/shared/imagenet",
             "CODISTILL_SLURM_PARTITION": "gpu", "CODISTILL_SLURM_ACCOUNT": "proj"}
JOB = ["scale=paper", "launcher=slurm_v100", "~site", "method=codistill", "workload=imagenet_resnet50"]


def composed(overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("codistill", overrides=overrides)


def test_a_job_composed_without_the_submitters_environment_resolves_as_it_was_queued(monkeypatch):
    for name, value in SUBMITTED.items():
        monkeypatch.setenv(name, value)
    queued = composed(JOB)
    pinned = environment_overrides(queued)
    assert {override.split("=", 1)[0] for override in pinned} >= {
        "results_root", "workload.data_root", "launcher.partition", "launcher.account"}
    expected = validate(queued)
    for name in SUBMITTED:   # the task's environment under SBATCH_EXPORT=NONE
        monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match="launcher.partition"):   # what a task met before the values were pinned
        validate(composed(JOB))
    assert composed([*JOB, "launcher.partition=gpu"]).results_root != expected["results_root"]
    started = validate(composed([*JOB, *pinned]))
    assert started["results_root"] == "/shared/it's results"
    assert started["workload"]["data_root"] == "/shared/imagenet"
    assert (started["launcher"]["partition"], started["launcher"]["account"]) == ("gpu", "proj")
    assert run_id(started) == run_id(expected)
