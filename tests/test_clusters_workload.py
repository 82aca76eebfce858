"""The vision mini stand-in (clusters_resnet): its generated data, its models, and how it maps the
paper's batch, epochs, weight decay and alpha, checked against values computed by hand."""
import pytest
import torch
from conftest import compose_job
from omegaconf import OmegaConf

from codistill_experiments.names import MINI_RESNETS
from codistill_experiments.run_schedules import run_schedules
from codistill_experiments.vision.workloads import generated_clusters
from codistill_experiments.workloads import build_workload


def small_clusters(**changes):
    spec = dict(name="clusters_resnet", train_size=4000, val_size=1000, features=8, num_classes=5,
                clusters_per_class=2, cluster_std=0.1, label_noise=0.0, data_seed=0, arch="resnet50")
    return OmegaConf.create({**spec, **changes})


def test_generated_clusters_are_deterministic_and_standardised():
    (train_x, train_y), (val_x, val_y) = generated_clusters(small_clusters())
    (again_x, again_y), _ = generated_clusters(small_clusters())
    assert torch.equal(train_x, again_x) and torch.equal(train_y, again_y)
    assert train_x.shape == (4000, 8) and val_x.shape == (1000, 8)
    assert torch.allclose(train_x.mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(train_x.std(0), torch.ones(8), atol=1e-5)
    assert set(train_y.tolist()) == set(range(5))
    other_seed, _ = generated_clusters(small_clusters(data_seed=1))
    assert not torch.equal(other_seed[0], train_x)


def test_label_noise_replaces_the_stated_share_of_labels():
    # With tight clusters, the nearest centre's class is the clean label; a replaced label is drawn
    # uniformly, so it differs from the clean one with probability share x (1 - 1/classes).
    clean = small_clusters(train_size=20000)
    noisy = small_clusters(train_size=20000, label_noise=0.3)
    (x, clean_y), _ = generated_clusters(clean)
    (_, noisy_y), _ = generated_clusters(noisy)
    # Same generator stream up to the labels: same inputs, labels differ only where replaced.
    assert torch.equal(x, generated_clusters(noisy)[0][0])
    changed = (clean_y != noisy_y).float().mean().item()
    assert changed == pytest.approx(0.3 * (1 - 1 / 5), abs=0.015)


def test_stand_in_models_have_batch_norm_residual_blocks_and_grow():
    workload = build_workload(small_clusters())
    sizes = []
    for arch, (width, blocks) in MINI_RESNETS.items():
        model = workload.make_model(0, {"arch": arch})
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
        assert len(norms) == 2 * blocks + 1
        # By hand: stem 8 x w, per block 2 w^2 + 2 batch norms (2 w each), final norm 2 w, head w x 5 + 5.
        expected = 8 * width + blocks * (2 * width * width + 4 * width) + 2 * width + 5 * width + 5
        sizes.append(sum(p.numel() for p in model.parameters()))
        assert sizes[-1] == expected
        assert model(torch.randn(4, 8)).shape == (4, 5)
    assert sizes == sorted(sizes)


def test_a_zero_block_keeps_the_identity_shortcut():
    workload = build_workload(small_clusters())
    block = workload.make_model(0).blocks[0]
    torch.nn.init.zeros_(block.fc2.weight)
    x = torch.randn(6, MINI_RESNETS["resnet50"][0])
    assert torch.equal(block(x), x)


def test_mini_stand_in_maps_the_papers_batch_epochs_weight_decay_and_alpha(tmp_path):
    job = compose_job(["scale=mini", "workload=clusters_resnet", "method=codistill", "schedule=codistill_tuned"],
                      tmp_path)
    assert job["scale"]["batch_per_rank"] == 256  # one rank stands for an 8-GPU server of 32 per GPU
    digits = compose_job(["scale=mini", "workload=digits_mlp", "method=codistill"], tmp_path)
    assert digits["scale"]["batch_per_rank"] == 32
    cfg = OmegaConf.create(job)
    steps_per_epoch = 110000 // 256  # 429
    schedules = run_schedules(cfg, 256, steps_per_epoch)
    workload = job["workload"]
    # 45 epochs x epoch_scale, milestones 18 / 38 / 44 scaled alike.
    assert schedules.total_steps == round(45 * workload["epoch_scale"] * steps_per_epoch)
    assert schedules.lr.milestones == tuple(round(m * workload["epoch_scale"] * steps_per_epoch) for m in (18, 38, 44))
    assert schedules.lr.peak == pytest.approx(0.1)  # 0.1 x 256 / 256
    scale = workload["weight_decay_scale"]
    assert [schedules.weight_decay(s) for s in (0, schedules.lr.milestones[0], schedules.lr.milestones[1])] == \
        pytest.approx([1e-4 * scale, 1e-5 * scale, 0.0])
    assert schedules.alpha(0) == pytest.approx(1.0 * 100 / 1000)  # alpha per logit as over 1000 classes
