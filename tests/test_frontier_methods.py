"""PowerSGD, local SGD and DiLoCo (src/codistill_experiments/baselines/methods.py) in real gloo runs,
against all_reduce and each other, with their bits against formulas, and resumed after a SIGKILL."""
import multiprocessing
import os
import signal
import time

import pytest
import torch
from conftest import SHORT, compose_job
from omegaconf import OmegaConf

from benchmarks import soak_resume
from codistill_experiments.config import ConfigError
from codistill_experiments.launch import launch
from codistill_experiments.runlog import read_records, run_dir

STEPS = 54          # SHORT: 3 epochs of 1200 // 64 updates (all_reduce's global batch of 2 x 32)
PLAIN_SGD = "schedule.momentum=0"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs a job of overrides once per module (real gloo ranks); returns (run dir, container)."""
    root, done = tmp_path_factory.mktemp("frontier"), {}

    def run(*overrides):
        if overrides not in done:
            container = compose_job([*overrides, *SHORT], root)
            launch(container, run_dir(container))
            done[overrides] = run_dir(container), container
        return done[overrides]

    return run


def final_params(directory, model):
    state = torch.load(directory / f"model{model}.pt", weights_only=True)
    return torch.cat([tensor.flatten() for tensor in state.values()])


def inter_node_bits(directory):
    last = [r for r in read_records(directory / "metrics.jsonl") if r["kind"] == "eval"][-1]
    assert last["step"] == STEPS
    return last["comm_bits_inter_node"]


def fresh_model(container):
    from codistill_experiments.workloads import build_workload

    return build_workload(OmegaConf.create(container["workload"])).make_model(0)


def b_model(container):
    return 32 * sum(p.numel() for p in fresh_model(container).parameters())


@pytest.mark.slow
def test_local_sgd_with_h_1_is_all_reduce(runs):
    allreduce, _ = runs("method=allreduce", PLAIN_SGD)
    local, container = runs("method=localsgd", "method.period=1", PLAIN_SGD)
    assert torch.equal(final_params(local, 0), final_params(local, 1))
    torch.testing.assert_close(final_params(local, 0), final_params(allreduce, 0), rtol=0, atol=1e-5)
    assert inter_node_bits(local) == STEPS * 2 * b_model(container)


@pytest.mark.slow
def test_diloco_with_outer_lr_1_and_no_momentum_is_local_sgd(runs):
    period = 9  # divides STEPS: both end on an averaging, every group with the same model
    local, container = runs("method=localsgd", f"method.period={period}")
    diloco, _ = runs("method=diloco", f"method.period={period}", "method.outer_lr=1", "method.outer_momentum=0")
    for directory in (local, diloco):
        assert torch.equal(final_params(directory, 0), final_params(directory, 1))
        assert inter_node_bits(directory) == STEPS // period * 2 * b_model(container)
    torch.testing.assert_close(final_params(diloco, 0), final_params(local, 0), rtol=0, atol=1e-5)
    # Averaging every 9 updates is not all_reduce (the test above could not pass by accident).
    allreduce, _ = runs("method=allreduce", PLAIN_SGD)
    plain_local, _ = runs("method=localsgd", f"method.period={period}", PLAIN_SGD)
    assert (final_params(plain_local, 0) - final_params(allreduce, 0)).abs().max() > 1e-4  # 10 x the tolerance


def powersgd_elements(model, rank, min_compression_rate):
    """Elements PowerSGD all_reduces per update (Vogels et al.; torch's selection): each tensor as
    an n x m matrix (rows x the rest; a vector is n x 1) goes as factors of (n + m) r elements,
    r = min(n, m, rank), when they are min_compression_rate times smaller, else whole (so vectors
    go whole unless the rate is below 1)."""
    total = 0
    for parameter in model.parameters():
        rows, cols = parameter.shape[0], parameter[0].numel()
        r = min(rows, cols, rank)
        small = (rows + cols) * r * min_compression_rate < rows * cols
        total += (rows + cols) * r if small else parameter.numel()
    return total


@pytest.mark.slow
def test_powersgd_at_full_rank_is_all_reduce_and_sends_its_factors(runs):
    allreduce, _ = runs("method=allreduce", PLAIN_SGD)
    rank, rate, start = 512, 0.1, 2   # every matrix compressed, at its full rank
    powersgd, container = runs("method=powersgd", f"method.rank={rank}", f"method.min_compression_rate={rate}",
                               f"method.start_iter={start}", PLAIN_SGD)
    torch.testing.assert_close(final_params(powersgd, 0), final_params(allreduce, 0), rtol=0, atol=1e-5)
    factors = powersgd_elements(fresh_model(container), rank, rate)
    assert factors > b_model(container) / 32  # full-rank factors are larger than the matrices
    assert inter_node_bits(powersgd) == start * 2 * b_model(container) + (STEPS - start) * 2 * 32 * factors


@pytest.mark.slow
def test_powersgd_at_rank_2_sends_its_factors_and_compresses(runs):
    allreduce, _ = runs("method=allreduce", PLAIN_SGD)
    powersgd, container = runs("method=powersgd", "method.start_iter=2", PLAIN_SGD)  # rank 2, rate 2
    factors = powersgd_elements(fresh_model(container), 2, 2)
    assert factors < b_model(container) / 32 / 10
    assert inter_node_bits(powersgd) == 2 * 2 * b_model(container) + (STEPS - 2) * 2 * 32 * factors
    assert (final_params(powersgd, 0) - final_params(allreduce, 0)).abs().max() > 1e-3


RESUME_EPOCHS = ["schedule.epochs=10", "schedule.lr.warmup_epochs=1", "schedule.lr.milestones=[5,8]",
                 "schedule.weight_decay.values=[1e-4,1e-5,0]", "schedule.weight_decay.milestones=[5,8]"]


def _launch_in_own_session(container):
    os.setsid()  # its ranks too: one killpg reaches them all, as a SIGKILL of a whole job would
    launch(container, run_dir(container))


def killed_after_first_commit(overrides, root):
    """Starts the run in a forked process (its ranks forked from that), SIGKILLs all of them
    once it has committed a state, and returns."""
    container = compose_job(overrides, root)
    process = multiprocessing.get_context("fork").Process(target=_launch_in_own_session, args=(container,))
    process.start()
    deadline = time.time() + 120
    while not list(root.glob("runs/*/state/latest.json")) and process.is_alive() and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.join()
    assert process.exitcode == -signal.SIGKILL, "the run ended before it could be killed"


def run_to_the_end(overrides, root):
    """Runs (or resumes) the job in real gloo ranks forked from this process."""
    container = compose_job(overrides, root)
    launch(container, run_dir(container))
    return container


@pytest.mark.parametrize("method", [
    # 18 updates per epoch: the state committed at each epoch lies mid-period; local SGD's is in
    # its post-local warm-up (30 updates) at the first epoch. `make test-fast` keeps local SGD's.
    ["method=localsgd", "method.period=5", "method.warmup_steps=30"],
    # outer_lr 0.7, Nesterov momentum 0.9: the paper's
    pytest.param(["method=diloco", "method.period=5"], marks=pytest.mark.slow),
], ids=["localsgd", "diloco"])
def test_a_run_killed_mid_period_resumes_to_the_uninterrupted_log(tmp_path, method):
    overrides = ["workload=digits_mlp", *method, *RESUME_EPOCHS]
    container = run_to_the_end(overrides, tmp_path / "reference")
    killed_after_first_commit(overrides, tmp_path / "killed")
    run_to_the_end(overrides, tmp_path / "killed")
    expected = soak_resume.log_without_wall_time(tmp_path / "reference")
    assert soak_resume.log_without_wall_time(tmp_path / "killed") == expected
    last = [r for r in expected if r["kind"] == "eval"][-1]
    averagings = (180 - 30) // 5 + 30 if method[0] == "method=localsgd" else 180 // 5  # + warm-up all_reduces
    assert last["step"] == 180 and last["comm_bits_inter_node"] == averagings * 2 * b_model(container)


@pytest.mark.slow
def test_a_killed_powersgd_run_resumes_with_one_uncompressed_update(tmp_path):
    """PowerSGD's memories are keyed by DDP's buckets, which a new DDP lays out anew after its
    first update: a resumed run all_reduces that update whole, then compresses again."""
    overrides = ["workload=digits_mlp", "method=powersgd", "method.start_iter=2", *SHORT,
                 "schedule.epochs=5", "schedule.lr.milestones=[3]"]
    killed_after_first_commit(overrides, tmp_path)
    container = run_to_the_end(overrides, tmp_path)
    last = [r for r in soak_resume.log_without_wall_time(tmp_path) if r["kind"] == "eval"][-1]
    factors, whole = powersgd_elements(fresh_model(container), 2, 2), b_model(container)
    assert last["step"] == 90
    assert last["comm_bits_inter_node"] == (2 + 1) * 2 * whole + (90 - 2 - 1) * 2 * 32 * factors


@pytest.mark.parametrize("overrides, named", [
    (["method=powersgd", "method.rank=0"], "method.rank=0"),
    (["method=powersgd", "method.start_iter=1"], "method.start_iter=1"),
    (["method=powersgd", "method.n=2"], "method.n=2"),
    (["method=localsgd", "method.period=0"], "method.period=0"),
    (["method=localsgd", "method.warmup_steps=-1"], "method.warmup_steps=-1"),
    (["method=localsgd", "method.n=1"], "method.n=1"),
    (["method=diloco", "method.outer_lr=0"], "method.outer_lr=0"),
    (["method=diloco", "method.outer_momentum=1.0"], "method.outer_momentum=1.0"),
    (["method=diloco", "method.outer_momentum=-0.1"], "method.outer_momentum=-0.1"),
    (["method=localsgd", "workload=clusters_resnet", "+workload.models=[{arch: resnet18}, {arch: resnet50}]"],
     "workload.models: localsgd"),
    (["method=diloco", "workload=translation_mini"], "method.name='diloco'"),
])
def test_invalid_options_fail_validation_naming_the_key(tmp_path, overrides, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        compose_job(overrides, tmp_path)


@pytest.mark.parametrize("method", ["powersgd", "localsgd", "diloco"])
def test_paper_scale_jobs_use_all_reduces_16_gpus(tmp_path, method):
    job = compose_job([f"method={method}", "scale=paper"], tmp_path)
    assert job["world_size"] == 16 and job["method"]["n"] * job["scale"]["ranks_per_model"] == 16
