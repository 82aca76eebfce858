"""Per-model columns of a mixed-architecture run (Figs. 14-15): each model's record carries its own
architecture, so a "ResNet-50" curve of a mixed setup is the ResNet-50 model's, not the mean over
the setup's models."""
import pandas as pd
import pytest

from figures import registry
from figures.claims.groups import group_stats

MODELS = [{"arch": "resnet18"}, {"arch": "resnet50"}, {"arch": "resnext101_32x8d"}]
TOP1 = {0: 70.0, 1: 80.0, 2: 90.0}   # each model's final top-1, by hand


def mixed_run_records(seeds=(0, 1, 2)):
    rows = []
    for seed in seeds:
        for model, top1 in TOP1.items():
            rows.append({"run_id": f"mini-codistill-mixed{seed}", "seed": seed, "kind": "eval", "step": 100,
                         "model": model, "val_top1": top1 + 0.1 * seed, "train_loss": 1.0,
                         "cfg.method.name": "codistill", "cfg.method.n": 3, "cfg.workload.name": "clusters_resnet",
                         "cfg.workload.arch": "resnet50", "cfg.workload.models": MODELS})
    return pd.DataFrame(rows)


def test_each_model_of_a_mixed_run_gets_its_own_architecture():
    records = registry._derived_columns(mixed_run_records())
    assert list(records["model_arch"][:3]) == ["resnet18", "resnet50", "resnext101_32x8d"]
    assert (records.groupby("model")["model_arch"].nunique() == 1).all()


def test_the_resnet50_of_a_mixed_run_is_that_model_not_the_mean_over_the_setup():
    records = registry._derived_columns(mixed_run_records())
    stats = group_stats(records, {"model_arch": "resnet50"}, "val_top1")[None]
    # the ResNet-50 model alone: 80.0, 80.1, 80.2 over seeds (the mean over the three models would be 80.1 too
    # only by accident of symmetry, so the ResNeXt is checked as well)
    assert stats.mean == pytest.approx(80.1)
    assert group_stats(records, {"model_arch": "resnext101_32x8d"}, "val_top1")[None].mean == pytest.approx(90.1)
    assert group_stats(records, {"model_arch": "resnet18"}, "val_top1")[None].mean == pytest.approx(70.1)
