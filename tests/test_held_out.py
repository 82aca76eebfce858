"""data.holdout = m: m fixed training samples taken out of training and evaluated on instead of the
validation set, so that a method's settings can be tuned without the numbers a figure reports."""
import pytest
import torch
from conftest import SHORT, compose_job
from omegaconf import OmegaConf
from test_engine_distributed import last_eval

from codistill_experiments.config import ConfigError
from codistill_experiments.training.sampling import held_out_split
from codistill_experiments.workloads import InMemoryDataset

TRAIN = InMemoryDataset(torch.arange(1000.0).unsqueeze(1), torch.zeros(1000, dtype=torch.long))
VAL = InMemoryDataset(torch.arange(5000.0, 5100.0).unsqueeze(1), torch.zeros(100, dtype=torch.long))


def values(dataset):
    return sorted(int(dataset[i][0]) for i in range(len(dataset)))


def split(holdout, subset_seed=0):
    return held_out_split(TRAIN, VAL, OmegaConf.create({"holdout": holdout, "subset_seed": subset_seed,
                                                        "fraction": 1.0}))


def test_the_held_out_samples_leave_training_and_replace_the_validation_set():
    train, held = split(200)
    assert len(held) == 200 and len(train) == 800
    assert set(values(train)).isdisjoint(values(held)) and sorted(values(train) + values(held)) == list(range(1000))
    assert values(split(200)[1]) == values(held) != values(split(200, subset_seed=1)[1])
    assert all(v < 1000 for v in values(held))          # training samples, not the validation set's 5000..5099


def test_without_a_holdout_the_sets_are_untouched():
    assert split(0) == (TRAIN, VAL)
    assert held_out_split(TRAIN, VAL, OmegaConf.create({"fraction": 1.0, "subset_seed": 0})) == (TRAIN, VAL)


def test_a_run_evaluates_on_the_held_out_samples_and_trains_on_the_rest(run_job):
    # digits: 1200 training samples; 200 held out leave 1000 = 15 updates of 64 per epoch (18 without)
    directory, _ = run_job(["method=allreduce", "+data.holdout=200", *SHORT])
    record, _ = last_eval(directory)
    assert record["val_samples"] == 200 and record["step"] == 3 * 15


@pytest.mark.parametrize("holdout", ["-1", "1200", "0.5"])
def test_a_holdout_outside_the_training_set_is_refused(tmp_path, holdout):
    with pytest.raises(ConfigError, match="data.holdout"):
        compose_job([f"+data.holdout={holdout}"], tmp_path)
