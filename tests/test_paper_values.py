"""At paper scale, the resolved jobs carry the experiment map's numbers."""
import pytest
from conftest import compose_job
from omegaconf import OmegaConf

from codistill_experiments.run_schedules import build_schedules

# (method, schedule) -> epochs, warm-up epochs, LR milestones, weight decay values, w.d. milestones
RECIPES = {
    ("allreduce", "goyal_step"): (90, 5, [30, 60, 80], [1e-4], []),
    ("codistill", "goyal_step_half"): (45, 2.5, [15, 30, 40], [1e-4], []),
    ("codistill", "codistill_tuned"): (45, 2.5, [18, 38, 44], [1e-4, 1e-5, 0.0], [18, 38]),
    ("allreduce", "cosine"): (90, 5, [], [1e-4], []),
    ("codistill", "codistill_cosine"): (45, 2.5, [], [1e-4, 1e-5, 0.0], [18, 38]),
}


@pytest.mark.parametrize("method, schedule", list(RECIPES))
def test_paper_scale_recipe_values(tmp_path, method, schedule):
    job = compose_job([f"method={method}", f"schedule={schedule}", "scale=paper"], tmp_path)
    epochs, warmup, milestones, wd_values, wd_milestones = RECIPES[method, schedule]
    s = job["schedule"]
    assert (s["epochs"], s["lr"]["warmup_epochs"], s["lr"]["milestones"]) == (epochs, warmup, milestones)
    assert (s["weight_decay"]["values"], s["weight_decay"]["milestones"]) == (wd_values, wd_milestones)
    assert s["momentum"] == 0.9 and s["lr"]["base"] == 0.1 and s["lr"]["decay"] == 0.1
    assert job["scale"]["batch_per_rank"] == 32   # 32 images per GPU
    gpus = job["scale"]["ranks_per_model"] * job["method"]["n"]
    assert gpus == 16 and job["scale"]["ranks_per_node"] == 8   # 16 V100s, 8 per server
    batch = job["scale"]["ranks_per_model"] * 32
    assert batch == (512 if method == "allreduce" else 256)
    built = build_schedules(OmegaConf.create(s), OmegaConf.create(job["method"]), batch, steps_per_epoch=100)
    assert built.lr.peak == pytest.approx(0.1 * batch / 256)   # Goyal's linear scaling rule


def test_batch_size_scaling_of_fig2c(tmp_path):
    # b/model in {128, ..., 2048}: GPUs per model, hence LR, scale with b; updates shrink with 1/b.
    for batch_scale, batch in ((0.5, 128), (2, 512), (8, 2048)):
        job = compose_job(["method=codistill", "schedule=codistill_tuned", "scale=paper",
                           f"batch_scale={batch_scale}"], tmp_path)
        assert job["scale"]["ranks_per_model"] * job["scale"]["batch_per_rank"] == batch


def test_vision_codistillation_defaults(tmp_path):
    job = compose_job(["method=codistill", "scale=paper"], tmp_path)
    method = job["method"]
    assert (method["n"], method["loss"], method["alpha"], method["alpha_schedule"]) == (2, "mse", 1.0, "constant")
    assert (method["exchange"], method["period"]) == ("predictions", 1)
    assert job["workload"]["arch"] == "resnet50" and job["workload"]["num_classes"] == 1000
