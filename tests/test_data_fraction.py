"""Figure 16's data.fraction = 1/k: a fixed, seeded subset, k times the epochs, milestones scaled."""
import pytest
import torch
from conftest import SHORT, compose_job
from omegaconf import OmegaConf
from test_engine_distributed import last_eval

from codistill_experiments.config import ConfigError
from codistill_experiments.run_schedules import build_schedules
from codistill_experiments.training.sampling import data_subset
from codistill_experiments.workloads import InMemoryDataset

DATASET = InMemoryDataset(torch.arange(1000.0).unsqueeze(1), torch.zeros(1000, dtype=torch.long))


def subset_values(fraction, subset_seed):
    subset = data_subset(DATASET, OmegaConf.create({"fraction": fraction, "subset_seed": subset_seed}))
    return sorted(int(subset[i][0]) for i in range(len(subset)))


def test_subset_size_and_seed_stability():
    assert len(subset_values(1 / 8, 0)) == 125
    assert subset_values(1 / 8, 0) == subset_values(1 / 8, 0)
    assert subset_values(1 / 8, 0) != subset_values(1 / 8, 1)
    assert len(set(subset_values(1 / 4, 0))) == 250
    assert data_subset(DATASET, OmegaConf.create({"fraction": 1.0, "subset_seed": 0})) is DATASET


def test_epochs_warmup_and_milestones_scale_by_k():
    schedule = OmegaConf.create({
        "epochs": 90, "lr": {"kind": "step", "base": 0.1, "reference_batch": 256, "warmup_epochs": 5,
                             "milestones": [30, 60, 80], "decay": 0.1},
        "weight_decay": {"values": [1e-4, 0.0], "milestones": [30]}})
    method = OmegaConf.create({"alpha": 1.0})
    # 1/8 of the data: an eighth of the updates per epoch, 8x the epochs.
    full = build_schedules(schedule, method, 256, steps_per_epoch=80)
    eighth = build_schedules(schedule, method, 256, steps_per_epoch=10, epoch_scale=8)
    assert eighth.total_steps == full.total_steps == 7200
    assert eighth.lr.milestones == full.lr.milestones == (2400, 4800, 6400)
    assert eighth.lr.warmup_steps == 400 and eighth.weight_decay.milestones == (2400,)


@pytest.mark.slow
def test_a_run_on_half_the_data_makes_as_many_updates_over_twice_the_epochs(run_job):
    directory, _ = run_job(["method=allreduce", "data.fraction=0.5", *SHORT])
    record, _ = last_eval(directory)
    assert record["step"] == 3 * 18 and record["epoch"] == 6.0   # 600 // 64 = 9 updates per epoch


@pytest.mark.parametrize("fraction", ["0", "1.5", "-0.1"])
def test_a_fraction_outside_0_1_is_refused(tmp_path, fraction):
    with pytest.raises(ConfigError, match="data.fraction"):
        compose_job([f"data.fraction={fraction}"], tmp_path)
