"""figures/model_choice.py from hand-made evaluation records: each run's gap between its models,
best - mean and ensemble - best at its last evaluation, and the summary per kind of run."""
import pandas as pd
import pytest

from figures.model_choice import per_run, summary

ONE_ARCH = [{"arch": "resnet50"}, {"arch": "resnet50"}]


def evals(run_id, step, top1s, ensemble, method="codistill", exchange="predictions", models=None, churn=0.2):
    return [{"run_id": run_id, "step": step, "model": model, "val_top1": top1, "ensemble_top1": ensemble, "churn": churn,
             "cfg.method.name": method, "cfg.method.exchange": exchange, "cfg.workload.arch": "resnet50",
             "cfg.workload.models": models} for model, top1 in enumerate(top1s)]


def test_each_run_is_read_at_its_last_evaluation():
    records = pd.DataFrame(evals("a", 10, [70.0, 75.0], 76.0) + evals("a", 20, [80.0, 81.0], 82.5)
                           + evals("b", 20, [79.0, 79.4, 79.2], 80.0))
    runs = per_run(records).set_index("run_id")
    assert runs.loc["a", ["gap", "best_minus_mean", "ensemble_minus_best"]].tolist() == pytest.approx([1.0, 0.5, 1.5])
    assert runs.loc["b", ["gap", "best_minus_mean", "ensemble_minus_best"]].tolist() == pytest.approx([0.4, 0.2, 0.6])
    assert runs["models"].tolist() == [2, 3]


def test_runs_of_one_kind_are_summarised_together_and_single_models_left_out():
    records = pd.DataFrame(evals("a", 20, [80.0, 81.0], 82.5, churn=0.1) + evals("b", 20, [79.0, 79.4], 80.0, churn=0.4)
                           + evals("c", 20, [78.0, 80.0], 79.0, method="independent", exchange="checkpoints")
                           + evals("d", 20, [81.0], 81.0, method="allreduce", exchange=None)
                           + evals("e", 20, [60.0, 74.0], 74.5, models=[{"arch": "resnet18"}, {"arch": "resnet50"}])
                           + evals("f", 20, [80.0, 80.2], 81.0, models=ONE_ARCH))
    table = summary(per_run(records)).set_index(["method", "exchange", "architectures"])
    # a, b and f: two models of one architecture exchanging predictions (f names each model's)
    same = table.loc[("codistill", "predictions", "resnet50")]
    assert same["runs"] == 3
    assert [same["gap"], same["largest_gap"]] == pytest.approx([(1.0 + 0.4 + 0.2) / 3, 1.0])
    assert same["best_minus_mean"] == pytest.approx((0.5 + 0.2 + 0.1) / 3)
    assert [same["ensemble_minus_best"], same["least"], same["most"]] == pytest.approx([(1.5 + 0.6 + 0.8) / 3, 0.6, 1.5])
    assert same["churn"] == pytest.approx((0.1 + 0.4 + 0.2) / 3)
    mixed = table.loc[("codistill", "predictions", "resnet18 + resnet50")]
    assert (mixed["runs"], mixed["gap"], mixed["ensemble_minus_best"]) == (1, pytest.approx(14.0), pytest.approx(0.5))
    # the control exchanges nothing, whatever its config's unused exchange key says
    control = table.loc[("independent", "-", "resnet50")]
    assert (control["runs"], control["ensemble_minus_best"]) == (1, pytest.approx(-1.0))
    assert len(table) == 3   # the one-model all_reduce run has no models to choose between
