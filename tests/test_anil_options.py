"""The training engine's options for Anil et al. 2018's experiments: label smoothing towards
a uniform or unigram prior (Sec. 3.3, Fig. 2a), disjoint training shards per model (Sec. 3.3.2,
Fig. 2b), Adagrad (Sec. 3.1, Criteo), the ensemble's validation loss and saved validation
predictions; and the run-id rule that keeps every earlier job's id while these keys sit at their
defaults."""
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT, SHORT, compose_job
from omegaconf import OmegaConf
from reference import full_batches
from test_engine_distributed import final_params, last_eval, reference_params

from codistill_experiments import run_state
from codistill_experiments.config import ConfigError
from codistill_experiments.run_schedules import run_schedules
from codistill_experiments.runlog import identity, run_id, without_default
from codistill_experiments.seeds import model_seed
from codistill_experiments.training.engine import Precision, build_optimizer, train_step, training_data
from codistill_experiments.training.evaluation import agreement
from codistill_experiments.training.sampling import CoordinatedBatchSampler, batch_source, shard_indices
from codistill_experiments.training.supervised import SupervisedLoss, dataset_targets
from codistill_experiments.workloads import InMemoryDataset, Workload, batch_is_ready, build_workload

# ----- run identity


def test_keys_at_their_default_leave_the_run_id_of_a_config_without_them(tmp_path):
    job = compose_job(["method=codistill"], tmp_path)
    assert job["supervised"] == {"label_smoothing": 0.0, "smoothing_prior": "uniform"}
    assert job["data"]["split"] == "same" and job["schedule"]["optimizer"] == "sgd"
    assert job["save_predictions"] is False
    older = {**job, "data": {k: v for k, v in job["data"].items() if k != "split"},
             "schedule": {k: v for k, v in job["schedule"].items() if k != "optimizer"}}
    del older["supervised"], older["save_predictions"]
    assert run_id(job) == run_id(older)
    assert "supervised" not in identity(job) and "split" not in identity(job)["data"]
    assert job["data"]["split"] == "same"   # the config itself is left as it is


@pytest.mark.parametrize("overrides", [
    ["supervised.label_smoothing=0.1"],
    ["supervised.label_smoothing=0.1", "supervised.smoothing_prior=unigram"],
    ["data.split=disjoint", "method.exchange=checkpoints"],
    ["schedule.optimizer=adagrad"],
])
def test_a_key_off_its_default_changes_the_run_id(tmp_path, overrides):
    base = ["method=codistill", *(["method.exchange=checkpoints"] if "data.split=disjoint" in overrides else [])]
    assert run_id(compose_job(base, tmp_path)) != run_id(compose_job([*base, *overrides], tmp_path))


def test_save_predictions_is_not_part_of_the_identity(tmp_path):
    assert run_id(compose_job(["save_predictions=true"], tmp_path)) == run_id(compose_job([], tmp_path))


def test_without_default_drops_a_key_or_a_block_only_at_its_default():
    config = {"a": {"b": 1, "c": 2}, "d": 3}
    assert without_default(config, ("a", "b"), 1) == {"a": {"c": 2}, "d": 3}
    assert without_default(config, ("a", "b"), 5) == config
    assert without_default(config, ("a",), {"b": 1, "c": 2}) == {"d": 3}
    assert without_default(config, ("a",), {"b": 1, "c": 9}) == config
    assert without_default(config, ("x", "y"), 1) == config
    assert config == {"a": {"b": 1, "c": 2}, "d": 3}


# ----- validation


@pytest.mark.parametrize("overrides, key", [
    (["supervised.label_smoothing=1.0"], "supervised.label_smoothing"),
    (["supervised.label_smoothing=-0.1"], "supervised.label_smoothing"),
    (["supervised.smoothing_prior=zipf"], "supervised.smoothing_prior"),
    (["data.split=halves", "method=independent"], "data.split"),
    (["data.split=disjoint", "method=codistill"], "method.exchange='predictions'"),
    (["data.split=disjoint", "method=allreduce"], "method.name='allreduce'"),
    (["data.split=disjoint", "method=independent", "method.n=1"], "method.n >= 2"),
    (["schedule.optimizer=adam"], "schedule.optimizer"),
    (["method=two_phase", "init_seed=3"], "init_seed=3"),
    # 1200 x 0.05 = 60 samples: one batch of 32 for a model on all of them, none on a shard of 30
    (["data.split=disjoint", "method=independent", "data.fraction=0.05"], "30 training samples in each model's shard"),
])
def test_refused_values_name_their_key(tmp_path, overrides, key):
    with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace(".", r"\.")):
        compose_job(overrides, tmp_path)


@pytest.mark.parametrize("overrides", [
    ["supervised.label_smoothing=0.1"],
    ["data.split=disjoint"],
])
def test_translation_refuses_the_vision_options(tmp_path, overrides):
    with pytest.raises(ConfigError, match=overrides[0].split("=")[0].replace(".", r"\.")):
        compose_job(["workload=translation_mini", "method=independent", *overrides], tmp_path)


@pytest.mark.parametrize("overrides", [
    ["data.split=disjoint", "method=independent"],
    ["data.split=disjoint", "method=codistill", "method.exchange=checkpoints"],
    ["data.split=disjoint", "method=codistill", "method.exchange=sharded_checkpoints"],
    ["supervised.label_smoothing=0.2", "supervised.smoothing_prior=unigram", "schedule.optimizer=adagrad"],
    ["data.split=same", "method=independent", "data.fraction=0.05"],
])
def test_accepted_combinations(tmp_path, overrides):
    compose_job(overrides, tmp_path)


# ----- supervised term: (1 - w) CE(y, p) + w H(prior, p)

LOGITS = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -2.0], [1.0, 1.0, 1.0], [-0.5, 2.5, 0.0]])
TARGETS = torch.tensor([0, 2, 1, 1])


def test_uniform_prior_is_torchs_label_smoothing():
    for weight in (0.1, 0.35):
        loss = SupervisedLoss(weight, "uniform", 3)(LOGITS, TARGETS)
        torch.testing.assert_close(loss, F.cross_entropy(LOGITS, TARGETS, label_smoothing=weight))


def test_unigram_prior_against_a_hand_computed_value():
    # Training targets 0, 0, 1, 2: prior (1/2, 1/4, 1/4). Logits (0, ln 2, 0): p = (1/4, 1/2, 1/4).
    train = torch.utils.data.Subset(InMemoryDataset(torch.zeros(6, 1), torch.tensor([2, 0, 1, 0, 1, 0])),
                                    [0, 1, 2, 3])
    loss = SupervisedLoss(0.2, "unigram", 3, dataset_targets(train))
    value = loss(torch.tensor([[0.0, math.log(2), 0.0]]), torch.tensor([1]))
    # CE = ln 2; H(prior, p) = 1/2 * 2 ln 2 + 1/4 * ln 2 + 1/4 * 2 ln 2 = 1.75 ln 2
    assert value.item() == pytest.approx(0.8 * math.log(2) + 0.2 * 1.75 * math.log(2), rel=1e-6)


def test_weight_zero_is_plain_cross_entropy():
    for prior in ("uniform", "unigram"):
        loss = SupervisedLoss.from_config(OmegaConf.create({"label_smoothing": 0.0, "smoothing_prior": prior}), 3,
                                          InMemoryDataset(torch.zeros(4, 1), TARGETS))
        assert torch.equal(loss(LOGITS, TARGETS), F.cross_entropy(LOGITS, TARGETS))


# ----- data.split=disjoint


def test_shards_are_disjoint_cover_all_but_the_remainder_and_are_seeded():
    n_samples, n = 103, 4
    shards = [shard_indices(n_samples, i, n, seed=7) for i in range(n)]
    assert all(len(shard) == 25 for shard in shards)
    flat = [index for shard in shards for index in shard]
    assert len(set(flat)) == 100
    # The 103 % 4 = 3 samples left out are the permutation's last three.
    order = torch.randperm(n_samples, generator=torch.Generator().manual_seed(7)).tolist()
    assert set(range(n_samples)) - set(flat) == set(order[100:])
    assert shards[1] == order[25:50]
    assert shards == [shard_indices(n_samples, i, n, seed=7) for i in range(n)]
    assert shards[0] != shard_indices(n_samples, 0, n, seed=8)


@pytest.mark.slow
def test_shards_are_the_same_in_another_process():
    code = ("from codistill_experiments.training.sampling import shard_indices; "
            "print(shard_indices(103, 2, 4, seed=7))")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}).stdout
    assert json.loads(printed) == shard_indices(103, 2, 4, seed=7)


def test_a_models_batches_hold_only_its_shard(tmp_path):
    # Inputs that name their own index: after data.holdout and data.fraction, then the shard.
    size = 400
    workload = Workload(train_set=InMemoryDataset(torch.arange(size).unsqueeze(1), torch.zeros(size, dtype=torch.long)),
                        val_set=InMemoryDataset(torch.zeros(5, 1), torch.zeros(5, dtype=torch.long)),
                        num_classes=10, make_model=None, collate=batch_is_ready)
    cfg = OmegaConf.create(compose_job(["method=independent", "data.split=disjoint", "+data.holdout=40",
                                        "data.fraction=0.5", "data.subset_seed=3"], tmp_path))
    settings = OmegaConf.create({"channels_last": False, "loader_workers": 0})
    seen = []
    for group in range(2):
        whole, own, _ = training_data(cfg, workload, group, 2)
        assert len(whole) == 180 and len(own) == 90   # (400 - 40) / 2 left by the fraction, halved
        rows = set(whole[i][0].item() for i in range(len(whole)))
        shard = {whole[i][0].item() for i in shard_indices(len(whole), group, 2, seed=3)}
        sampler = CoordinatedBatchSampler(len(own), 16, 1, 0, order_seed=0)
        batched = set()
        for epoch in range(2):
            sampler.set_epoch(epoch)
            for inputs, _ in batch_source(workload, own, sampler, settings, torch.device("cpu")):
                batched |= set(inputs.flatten().tolist())
        assert batched <= shard <= rows and len(batched) > 80
        seen.append(batched)
    assert not seen[0] & seen[1]


# ----- optimizer


class Constant:
    def __init__(self, values):
        self.values = values

    def __call__(self, step):
        return self.values[step]


def test_an_engine_update_with_adagrad_is_adagrads_formula():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    start = [p.detach().clone() for p in model.parameters()]
    inputs, targets = torch.randn(5, 3), torch.tensor([0, 1, 1, 0, 1])
    schedule = OmegaConf.create({"optimizer": "adagrad", "momentum": 0.9})
    optimizer = build_optimizer(schedule, model.parameters(), 0.5, 0.0)
    assert type(optimizer) is torch.optim.Adagrad
    state = type("State", (), {"trainable": model, "codistiller": None,
                               "supervised": SupervisedLoss(0.0, "uniform", 2)})()
    schedules = type("Schedules", (), {"lr": Constant([0.1, 0.05]), "weight_decay": Constant([0.01, 0.02])})()
    precision = Precision(False, torch.device("cpu"))
    # By hand: g += wd p; sum += g^2; p -= lr g / (sqrt(sum) + 1e-10), lr and wd of each update.
    params, sums = [p.clone() for p in start], [torch.zeros_like(p) for p in start]
    for step in range(2):
        train_step(state, optimizer, precision, schedules, step, (inputs, targets), None)
        leaves = [p.clone().requires_grad_() for p in params]
        F.cross_entropy(F.linear(inputs, *leaves), targets).backward()
        for index, leaf in enumerate(leaves):
            gradient = leaf.grad + schedules.weight_decay(step) * params[index]
            sums[index] += gradient ** 2
            params[index] = params[index] - schedules.lr(step) * gradient / (sums[index].sqrt() + 1e-10)
    for param, expected in zip(model.parameters(), params):
        torch.testing.assert_close(param.detach(), expected)
    sgd = build_optimizer(OmegaConf.create({"optimizer": "sgd", "momentum": 0.9}), model.parameters(), 0.1, 1e-4)
    assert type(sgd) is torch.optim.SGD and sgd.defaults["momentum"] == 0.9 and sgd.defaults["weight_decay"] == 1e-4


def test_adagrads_state_resumes_through_the_saved_group_state(tmp_path):
    torch.manual_seed(0)
    schedule = OmegaConf.create({"optimizer": "adagrad", "momentum": 0.9})
    gradients = [torch.randn(4) for _ in range(4)]

    def steps(param, optimizer, gradients):
        for gradient in gradients:
            param.grad = gradient.clone()
            optimizer.step()

    straight = torch.nn.Parameter(torch.ones(4))
    steps(straight, build_optimizer(schedule, [straight], 0.1, 0.0), gradients)
    resumed = torch.nn.Parameter(torch.ones(4))
    first = build_optimizer(schedule, [resumed], 0.1, 0.0)
    steps(resumed, first, gradients[:2])
    run_state.save_group_state(tmp_path, 0, 2, {"optimizer": first.state_dict(), "param": resumed.detach()})
    saved = run_state.load_group_state(tmp_path, 0, 2)
    again = torch.nn.Parameter(saved["param"].clone())
    second = build_optimizer(schedule, [again], 0.1, 0.0)
    second.load_state_dict(saved["optimizer"])
    steps(again, second, gradients[2:])
    assert torch.equal(again.detach(), straight.detach())


# ----- whole runs against a one-process reference


def reference_model(container, model, train_indices, loss_of, optimizer_of):
    """Model `model` of a run trained in this process on the training samples `train_indices` (its
    batches in the engine's order for one rank per model, coordinated sampling, order seed = seed)."""
    cfg = OmegaConf.create(container)
    workload = build_workload(cfg.workload)
    inputs, targets = workload.train_set.inputs[train_indices], workload.train_set.targets[train_indices]
    steps_per_epoch = len(train_indices) // 32
    schedules = run_schedules(cfg, 32, steps_per_epoch)
    network = workload.make_model(model_seed(cfg.seed, model))
    optimizer = optimizer_of(network.parameters())
    for step, batch in enumerate(full_batches(len(train_indices), 32, cfg.seed, schedules.total_steps)):
        for group in optimizer.param_groups:
            group["lr"], group["weight_decay"] = schedules.lr(step), schedules.weight_decay(step)
        optimizer.zero_grad()
        loss_of(network(inputs[batch]), targets[batch]).backward()
        optimizer.step()
    return network, schedules.total_steps


@pytest.mark.slow
def test_unigram_label_smoothing_with_adagrad_trains_what_a_written_out_loop_trains(run_job):
    weight = 0.3
    directory, container = run_job(["method=independent", "method.n=1", "supervised.label_smoothing=0.3",
                                    "supervised.smoothing_prior=unigram", "schedule.optimizer=adagrad", *SHORT])
    targets = build_workload(OmegaConf.create(container["workload"])).train_set.targets
    prior = torch.bincount(targets, minlength=10).float() / len(targets)

    def loss_of(logits, y):
        return (1 - weight) * F.cross_entropy(logits, y) - weight * (F.log_softmax(logits, -1) * prior).sum(-1).mean()

    expected, _ = reference_model(container, 0, torch.arange(len(targets)), loss_of,
                                  lambda params: torch.optim.Adagrad(params, lr=0.0))
    torch.testing.assert_close(final_params(directory, 0), reference_params(expected), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_disjoint_models_train_on_their_own_shard(run_job):
    directory, container = run_job(["method=independent", "data.split=disjoint", "data.subset_seed=5", *SHORT])
    record, _ = last_eval(directory)
    assert record["step"] == 3 * (600 // 32)   # 3 epochs of each model's 600 samples
    for model in range(2):
        shard = torch.randperm(1200, generator=torch.Generator().manual_seed(5))[model * 600:(model + 1) * 600]
        expected, steps = reference_model(container, model, shard, F.cross_entropy,
                                          lambda params: torch.optim.SGD(params, lr=0.0, momentum=0.9))
        assert steps == record["step"]
        torch.testing.assert_close(final_params(directory, model), reference_params(expected), rtol=0, atol=1e-5)


# ----- ensemble validation loss and saved predictions


def test_ensemble_validation_loss_against_a_hand_computation():
    probabilities = torch.tensor([[[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]],
                                  [[0.5, 0.5], [0.2, 0.8], [0.6, 0.4]]])
    targets = torch.tensor([0, 1, 0])
    _, _, loss = agreement(probabilities, targets)
    # mean probabilities of the targets: 0.7, 0.7, 0.4
    assert loss == pytest.approx(-(2 * math.log(0.7) + math.log(0.4)), rel=1e-6)


@pytest.mark.slow
def test_saved_predictions_and_ensemble_loss_match_the_final_models(run_job):
    # 2 models of 2 ranks each: every rank evaluates every other of the 597 validation samples.
    directory, container = run_job(["method=codistill", "scale.ranks_per_model=2", "save_predictions=true", *SHORT])
    workload = build_workload(OmegaConf.create(container["workload"]))
    val = workload.val_set
    probabilities = []
    for model in range(2):
        network = workload.make_model(0)
        network.load_state_dict(torch.load(directory / f"model{model}.pt", weights_only=True))
        with torch.no_grad():
            probabilities.append(network(val.inputs).softmax(-1))
        saved = np.load(directory / f"predictions-model{model}.npy")
        assert saved.dtype == np.float16 and saved.shape == (597, 10)
        # float16 keeps 11 significant bits: probabilities in [0, 1] to within 2^-11
        np.testing.assert_allclose(saved.astype(np.float32), probabilities[-1].numpy(), rtol=0, atol=2 ** -11)
    last, logged = last_eval(directory)
    records = [r for r in logged if r["kind"] == "eval" and r["step"] == last["step"]]
    ensemble = torch.stack(probabilities).mean(0)
    expected = -ensemble[torch.arange(597), val.targets].log().mean().item()
    assert [r["ensemble_val_loss"] for r in records] == pytest.approx([expected] * 2, rel=1e-5)


def test_a_single_model_logs_no_ensemble_loss_and_saves_no_predictions_by_default(run_job):
    directory, _ = run_job(["method=independent", "method.n=1", *SHORT])
    record, _ = last_eval(directory)
    assert record["ensemble_val_loss"] is None
    assert not list(directory.glob("predictions-*"))
