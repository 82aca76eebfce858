"""Wide-ResNet, the multi-view split model (paper Sec. 5.1, Fig. 6), and CIFAR-10 from a local copy
in CIFAR's own on-disk format."""

import pytest
import torch
from test_engine_distributed import final_params, last_eval

from codistill_experiments.data_checks import check_cifar_root
from codistill_experiments.preflight import write_cifar_batches
from codistill_experiments.vision.wide_resnet import SplitWideResNet, WideResNet


def n_params(module, trainable_only=False):
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@pytest.mark.slow
def test_wrn_28_10_has_160_channels_after_the_first_group_and_its_known_size():
    network = WideResNet(28, 10, 10)
    assert network.prefix(torch.zeros(1, 3, 32, 32)).shape == (1, 160, 32, 32)
    assert n_params(network) == 36_479_194   # WRN-28-10 for CIFAR-10, as published


@pytest.mark.parametrize("split", [0, 3, 7])
def test_model_i_sees_exactly_channel_split_i(split):
    torch.manual_seed(0)
    source = WideResNet(10, 10, 10).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = source.prefix(x)[:, 20 * split:20 * (split + 1)]
    model = SplitWideResNet(source, split, 8, frozen=True, depth=10, widen=10, num_classes=10).train()
    torch.testing.assert_close(model.view(x), expected)
    assert model.tail.group2[0].conv1.in_channels == 20


def test_parameter_counts_follow_the_construction():
    source = WideResNet(10, 10, 10)
    frozen = SplitWideResNet(source, 1, 8, frozen=True, depth=10, widen=10, num_classes=10)
    prefix = n_params(source.stem) + n_params(source.group1)
    tail_of_20 = n_params(SplitWideResNet(WideResNet(10, 10, 10), 0, 8, False, 10, 10, 10).tail)
    assert n_params(frozen) == prefix + tail_of_20
    assert n_params(frozen, trainable_only=True) == tail_of_20
    # The tail of a split model is the full tail with group2's first convolutions on 20 channels.
    full_tail = n_params(source.tail)
    assert full_tail - tail_of_20 == (160 - 20) * (320 * 9 + 320) + 2 * (160 - 20)


@pytest.mark.slow
def test_the_frozen_part_gets_no_gradient_and_does_not_change():
    torch.manual_seed(0)
    model = SplitWideResNet(WideResNet(10, 10, 10), 2, 8, frozen=True, depth=10, widen=10, num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    model.train()
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(p.grad is None for p in (*model.stem.parameters(), *model.group1.parameters()))
    after = model.state_dict()
    frozen_keys = [k for k in before if k.startswith(("stem.", "group1."))]
    assert frozen_keys and all(torch.equal(before[k], after[k]) for k in frozen_keys)  # BN statistics too
    assert not torch.equal(before["tail.fc.weight"], after["tail.fc.weight"])


@pytest.mark.slow
def test_two_updates_of_two_split_models_on_a_generated_local_cifar10(tmp_path, run_job):
    root = write_cifar_batches(tmp_path / "cifar", per_batch=4)   # 20 training images
    assert check_cifar_root(root) is None
    torch.manual_seed(0)
    pretrained = tmp_path / "wrn.pt"
    torch.save(WideResNet(10, 10, 10).state_dict(), pretrained)
    directory, _ = run_job([
        "workload=cifar10_wrn", "method=codistill", f"workload.data_root={root}", "workload.depth=10",
        "workload.scenario=pretrained_frozen", f"workload.pretrained={pretrained}", "workload.loader_workers=0",
        "workload.eval_batch=4", "scale.batch_per_rank=10", "schedule.epochs=1", "schedule.lr.warmup_epochs=0",
        "schedule.lr.milestones=[]", "schedule.weight_decay.values=[5e-4]", "schedule.weight_decay.milestones=[]"])
    record, _ = last_eval(directory)
    assert record["step"] == 2 and record["ensemble_top1"] is not None
    source = torch.load(pretrained, weights_only=True)
    for model in range(2):
        trained = torch.load(directory / f"model{model}.pt", weights_only=True)
        assert all(torch.equal(trained[k], source[k]) for k in source if k.startswith(("stem.", "group1.")))
    assert not torch.equal(final_params(directory, 0), final_params(directory, 1))


def test_missing_cifar_or_pretrained_weights_are_named(tmp_path):
    assert "data_batch_1" in check_cifar_root(tmp_path)
    from conftest import compose_job

    from codistill_experiments.config import data_problem

    job = compose_job(["workload=cifar10_wrn", "workload.scenario=pretrained_trainable"], tmp_path)
    assert "workload.pretrained=None" in data_problem(job)


def test_generated_multiview_data_is_deterministic_and_as_specified():
    from codistill_experiments.vision.multiview import make_data

    (train_x, train_y), (val_x, val_y) = make_data(300, 2000, 0.5, seed=0)
    (again_x, again_y), _ = make_data(300, 2000, 0.5, seed=0)
    assert train_x.shape == (300, 128) and val_x.shape == (2000, 128)
    assert torch.equal(train_x, again_x) and torch.equal(train_y, again_y)
    assert set(val_y.tolist()) == set(range(10))


@pytest.mark.parametrize("scenario, sees", [("pretrained_frozen", [3]), ("pretrained_trainable", [3]),
                                            ("random_init", None), ("full", list(range(8)))])
def test_a_mini_split_model_sees_only_its_view(scenario, sees):
    from codistill_experiments.vision.multiview import make_data, split_model

    (train_x, _), _ = make_data(300, 10, 0.5, seed=0)
    model = split_model(scenario, 3, train_x, seed=1)
    x = train_x[:5].clone().requires_grad_(True)
    model.view(x).sum().backward()
    blocks_used = [k for k in range(8) if x.grad[:, 16 * k:16 * (k + 1)].abs().sum() > 0]
    assert blocks_used == (sees if sees is not None else list(range(8)))  # random init mixes every view
    frozen = scenario == "pretrained_frozen"
    assert all(p.requires_grad != frozen for p in model.features.parameters())


@pytest.mark.slow
def test_n_way_codistillation_of_mini_split_models_runs(run_job):
    directory, _ = run_job(["workload=multiview_mini", "method=codistill", "method.n=4",
                            "schedule.epochs=3", "schedule.lr.warmup_epochs=0", "schedule.lr.milestones=[]"])
    record, records = last_eval(directory)
    assert {r["model"] for r in records if r["kind"] == "eval"} == {0, 1, 2, 3}
    assert record["step"] == 3 * (300 // 32) and 0 <= record["ensemble_top1"] <= 100


def test_mini_view_features_are_standardised_on_the_training_inputs():
    from codistill_experiments.vision.multiview import make_data, split_model

    (train_x, _), _ = make_data(300, 10, 0.5, 0)
    features = split_model("pretrained_trainable", 0, train_x, seed=1).features(train_x)
    torch.testing.assert_close(features.mean(0), torch.zeros(features.shape[1]), atol=1e-5, rtol=0)
    assert abs(features.std().item() - 1.0) < 1e-4


@pytest.mark.slow
def test_mini_codistillation_of_trainable_view_features_stays_finite():
    """Two models codistilled as the mini Fig. 6 runs do (MSE between logits, alpha = 1, the
    Wide-ResNet recipe's peak LR for 32 samples). With outputs divided by per-feature stds this
    went to inf within 70 updates."""
    from codistill.losses import codistill_loss
    from codistill_experiments.vision.multiview import make_data, split_model

    (train_x, train_y), _ = make_data(300, 10, 0.5, 0)
    models = [split_model("pretrained_trainable", i, train_x, seed=1000 + i) for i in range(2)]
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.025, momentum=0.9, weight_decay=5e-4) for m in models]
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        batch = torch.randint(0, len(train_y), (32,), generator=generator)
        logits = [m(train_x[batch]) for m in models]
        for i, optimizer in enumerate(optimizers):
            loss, _, _ = codistill_loss(logits[i], train_y[batch], [logits[1 - i].detach()], 1.0, "mse")
            optimizer.zero_grad()
            loss.backward(retain_graph=True)
            optimizer.step()
            assert torch.isfinite(loss)
