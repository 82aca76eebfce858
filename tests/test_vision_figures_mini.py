"""Each vision figure's distinguishing job runs at mini scale with the recipe options it needs
(a short schedule here; the sweeps run the full mini recipes)."""
import pytest
from conftest import SHORT
from test_engine_distributed import last_eval

ARCHS3 = "workload.models=[{arch:resnet18},{arch:resnet50},{arch:resnext101_32x8d}]"
JOBS = {
    "fig1_fig13_predictions_T5": ["method=codistill", "method.period=5"],
    "fig1_fig13_exchange_frequency_checkpoints": ["method=codistill", "method.exchange=checkpoints",
                                                  "method.period=20"],
    "fig3_fig10_cosine_allreduce": ["method=allreduce", "schedule=cosine", "schedule.lr.milestones=[]"],
    "fig3_fig10_cosine_codistill_resnext": ["method=codistill", "schedule=codistill_cosine",
                                            "schedule.lr.milestones=[]", "workload.arch=resnext101_32x8d"],
    "fig5_4way": ["method=codistill", "method.n=4"],
    "fig6_multiview_random_init": ["workload=multiview_mini", "workload.scenario=random_init", "method=codistill"],
    "fig6_multiview_pretrained_trainable_8way": ["workload=multiview_mini", "workload.scenario=pretrained_trainable",
                                                 "method=codistill", "method.n=8"],
    "fig7_constant_wd": ["method=codistill", "schedule=goyal_step_half"],
    "fig8_fig9_resnext": ["method=codistill", "schedule=codistill_tuned", "workload.arch=resnext101_32x8d"],
    "fig14_three_architectures": ["method=codistill", "method.n=3", ARCHS3],
    "fig15_two_architectures": ["method=codistill", "workload.models=[{arch:resnet50},{arch:resnext101_32x8d}]"],
    "fig16_quarter_data": ["method=codistill", "data.fraction=0.25"],
    "lr_robustness": ["method=codistill", "schedule.lr.base=0.2"],
    "alpha_schedule_vision": ["method=codistill", "method.alpha_schedule=step", "method.alpha_step_factor=2"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(JOBS))
def test_vision_figure_job_runs_at_mini_scale(run_job, name):
    directory, container = run_job([*JOBS[name], *SHORT])
    record, records = last_eval(directory)
    assert records[0]["scale"] == "mini" and records[0]["scale_note"].startswith("MINI")
    n = container["method"]["n"]
    assert {r["model"] for r in records if r["kind"] == "eval"} == set(range(n))
    assert 0.0 <= record["val_top1"] <= 100.0 and record["train_loss"] > 0
    if name == "alpha_schedule_vision":
        # Records carry the value of each epoch's last update; the LR decay (and alpha's step) is
        # at the start of epoch 3 (update 74 of 111).
        assert [r["alpha"] for r in records if r["kind"] == "eval" and r["model"] == 0] == [1.0, 1.0, 2.0]
