"""The frontier's tuning selection (figures/tuning.py): each method's setting with the best final
top-1 on held-out training data, from hand-made records."""
import pandas as pd

from figures.tuning import ranking


def record(run_id, method, top1, step=20, **settings):
    return {"run_id": run_id, "seed": 100, "kind": "eval", "step": step, "model": 0, "val_top1": top1,
            "val_samples": 10000, "cfg.method.name": method, **{f"cfg.method.{k}": v for k, v in settings.items()}}


def test_each_methods_best_setting_is_the_one_with_the_highest_final_held_out_top1():
    records = pd.DataFrame([
        record("d1", "diloco", 70.0, outer_lr=0.7, outer_momentum=0.9),
        record("d1", "diloco", 99.0, step=10, outer_lr=0.7, outer_momentum=0.9),   # not final: ignored
        record("d2", "diloco", 80.5, outer_lr=1.0, outer_momentum=0.0),
        record("d3", "diloco", 80.4, outer_lr=0.4, outer_momentum=0.0),
        record("l1", "localsgd", 79.0, warmup_steps=0),
        record("l2", "localsgd", 81.0, warmup_steps=1284),
    ])
    table = ranking(records)
    best = table[table["best"]].set_index("arm")
    assert best.loc["diloco", "setting"] == "outer_lr=1.0, outer_momentum=0.0"
    assert best.loc["diloco", "held_out_top1"] == 80.5
    assert best.loc["localsgd", "setting"] == "warmup_steps=1284"
    assert list(table[table["arm"] == "diloco"]["held_out_top1"]) == [80.5, 80.4, 70.0]


def test_each_baseline_arm_keeps_its_best_base_learning_rate():
    """baseline_tuning: an arm is a method with its exchange (codistillation by predictions and by
    checkpoints are two arms), and every arm tunes the base learning rate."""
    rows = [("a1", "allreduce", None, 0.1, 80.0), ("a2", "allreduce", None, 0.2, 80.6),
            ("p1", "codistill", "predictions", 0.1, 80.9), ("p2", "codistill", "predictions", 0.2, 80.7),
            ("c1", "codistill", "checkpoints", 0.1, 80.1), ("c2", "codistill", "checkpoints", 0.4, 80.3),
            ("i1", "independent", None, 0.05, 79.0), ("i2", "independent", None, 0.2, 80.2)]
    records = pd.DataFrame([{**record(run_id, method, top1, exchange=exchange), "cfg.schedule.lr.base": lr}
                            for run_id, method, exchange, lr, top1 in rows])
    best = ranking(records, "baseline_tuning").query("best").set_index("arm")["setting"].to_dict()
    assert best == {"allreduce": "base=0.2", "codistill, predictions": "base=0.1", "codistill, checkpoints": "base=0.4",
                    "independent": "base=0.2"}


def test_the_frontier_regimes_control_ranks_its_held_out_runs_only():
    """frontier_regime: the control's tuning runs hold samples out; all_reduce and the control's
    other runs (no data.holdout) are no part of the ranking."""
    rows = [("t1", "localsgd", 10000, 0.05, 75.7), ("t2", "localsgd", 10000, 0.1, 75.4),
            ("c0", "localsgd", None, 0.1, 76.0), ("a0", "allreduce", None, 0.1, 81.1)]
    records = pd.DataFrame([{**record(run_id, method, top1), "cfg.schedule.lr.base": lr, "cfg.data.holdout": holdout}
                            for run_id, method, holdout, lr, top1 in rows])
    table = ranking(records, "frontier_regime")
    assert list(table["arm"]) == ["localsgd", "localsgd"]
    assert table.loc[table["best"], "setting"].item() == "base=0.05"

