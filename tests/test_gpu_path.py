"""The paper path as CUDA and NCCL run it, checked on a CPU machine with the stand-ins that
reproduce their behaviour: a process group built for CUDA only (init_process_group("cuda:gloo"))
refuses CPU tensors as NCCL does; tests/device_probe.py follows the tensors a GPU run would hold
on the CPU; a `meta` device stands in for a GPU the run's state must not be loaded onto; GPUs are
counted without CUDA, so their number can be given to the checks here."""
import dataclasses
import datetime
import importlib.metadata
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import SHORT, compose_job
from device_probe import NCCL_REFUSAL, DevicelessTensors, watch_collectives
from omegaconf import OmegaConf
from PIL import Image
from test_config import run_cli
from test_imagenet_pipeline import make_tree
from test_translation_config import argument

from codistill_experiments import jobs, launch, runlog
from codistill_experiments.config import placement_problem, typed_job
from codistill_experiments.jobs import visible_gpus
from codistill_experiments.runlog import read_records
from codistill_experiments.translation import results as translation_results
from codistill_experiments.translation.commands import device_arguments


def run_ranks(function, world_size, *args):
    """function(rank, init_file, *args) in world_size forked processes; re-raises a failure."""
    with tempfile.TemporaryDirectory() as folder:
        mp.start_processes(_in_rank, args=(function, os.path.join(folder, "init"), *args), nprocs=world_size,
                           start_method="fork")


def _in_rank(rank, function, init_file, *args):
    torch.set_num_threads(1)   # as the engine's ranks: a fork's OpenMP pool can hang in the child
    function(rank, init_file, *args)


# ----- collectives: every tensor handed to one lives on the run's device

def test_a_group_built_for_cuda_only_refuses_cpu_tensors_as_nccl_does():
    """The stand-in the probe reproduces: the refusal NCCL gives a CPU tensor."""
    run_ranks(_refuses_cpu, 1)


def _refuses_cpu(rank, init_file):
    dist.init_process_group("cuda:gloo", init_method=f"file://{init_file}", rank=rank, world_size=1)
    try:
        with pytest.raises(RuntimeError, match=NCCL_REFUSAL):
            dist.all_reduce(torch.zeros(2))
    finally:
        dist.destroy_process_group()


PROBED_RUNS = {
    # every vision method's collectives: evaluation tables, predictions (dense, top-k, 8-bit), the
    # ensemble's all_gather, saved predictions, checkpoints whole and sharded, DDP's hooks, averaging
    "codistill predictions": ["method=codistill", "scale.ranks_per_model=2", "save_predictions=true"],
    "codistill compressed": ["method=codistill", "method.prediction_topk=3", "method.prediction_bits=8"],
    "codistill sharded checkpoints": ["method=codistill", "method.exchange=sharded_checkpoints", "method.period=5",
                                      "scale.ranks_per_model=2"],
    "powersgd": ["method=powersgd", "method.start_iter=2", "scale.ranks_per_model=2", "method.nodes_per_model=1"],
    "localsgd": ["method=localsgd", "method.period=4", "method.warmup_steps=4"],
    "diloco": ["method=diloco", "method.period=4"],
}


@pytest.mark.slow
@pytest.mark.parametrize("overrides", PROBED_RUNS.values(), ids=PROBED_RUNS.keys())
def test_no_collective_of_the_training_path_is_handed_a_tensor_made_without_the_runs_device(
        tmp_path, run_job, monkeypatch, overrides):
    record = tmp_path / "collectives.txt"
    probe = DevicelessTensors()
    watch_collectives(monkeypatch, probe, record)
    with probe:   # forked ranks inherit the mode and the wrapped collectives
        directory, job = run_job([*overrides, "schedule.epochs=2", "schedule.lr.warmup_epochs=1",
                                  "schedule.lr.milestones=[]", "schedule.weight_decay.values=[1e-4]",
                                  "schedule.weight_decay.milestones=[]"])
    assert read_records(directory / "metrics.jsonl")[-1]["kind"] == "end"
    checked = set(record.read_text().split())
    assert "all_reduce" in checked   # the evaluation's table at least: the probe saw the ranks' calls
    if job["method"]["n"] > 1:   # the ensemble and churn: every model's probabilities gathered on group 0's rank
        assert "gather" in checked


def test_the_probe_finds_a_table_made_without_the_device(tmp_path, monkeypatch):
    """The probe's own check: the evaluation table as it was made before it was put on the
    device (torch.zeros without device=) is refused, the same table made on the device is not."""
    record = tmp_path / "collectives.txt"
    probe = DevicelessTensors()
    watch_collectives(monkeypatch, probe, record)
    with probe:
        run_ranks(_sums_tables, 1, torch.device("cpu"))


def _sums_tables(rank, init_file, device):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=1)
    try:
        local = torch.zeros(10, dtype=torch.float64)
        table = torch.zeros(2, 10, dtype=torch.float64)
        table[0] = local
        with pytest.raises(RuntimeError, match=NCCL_REFUSAL):
            dist.all_reduce(table)
        on_device = torch.zeros(2, 10, dtype=torch.float64, device=device)
        on_device[0] = local   # a CPU row copied into a device table: the table stays on the device
        dist.all_reduce(on_device)
        dist.all_reduce(table.to(device))
        with pytest.raises(RuntimeError, match=NCCL_REFUSAL):
            dist.all_reduce(table * 2)   # computed from CPU tensors alone: on the CPU
    finally:
        dist.destroy_process_group()


# ----- resume: state is read onto the CPU, whatever device the run trains on

@pytest.mark.parametrize("method", [["method=allreduce", "method.n=1", "method.nodes_per_model=1"],
                                    ["method=powersgd", "method.start_iter=2", "method.nodes_per_model=1"]],
                         ids=["allreduce", "powersgd"])
def test_a_run_whose_device_is_not_the_cpu_resumes_from_its_saved_state(tmp_path, run_job, method):
    directory, container = run_job([*method, "scale.ranks_per_model=1", *SHORT])
    step = json.loads((directory / "state" / "latest.json").read_text())["step"]
    saved = torch.load(directory / "state" / f"model0-step{step}.pt", weights_only=True)
    results = mp.Manager().dict()
    run_ranks(_resumes_on_meta, 1, container, directory, step, results)
    assert results["step"] == step
    assert torch.equal(results["rng"], saved["rng"])
    for name, value in saved["model"].items():
        assert torch.equal(results["model"][name], value), name
    if "p" in saved["method"]:   # PowerSGD: its iteration and warm-start factors
        assert results["powersgd_iter"] == saved["method"]["iter"]
        assert results["factors"].keys() == saved["method"]["p"].keys() and results["factors"]
        for bucket, factor in saved["method"]["p"].items():
            assert torch.equal(results["factors"][bucket], factor)


def _resumes_on_meta(rank, init_file, container, directory, step, results):
    """Builds the run's rank as the engine does, says that its device is a GPU's (meta stands in:
    a tensor loaded there has no data, as a CUDA tensor has none the CPU can use), and resumes."""
    from codistill.groups import Layout
    from codistill_experiments.run_schedules import run_schedules
    from codistill_experiments.training import engine
    from codistill_experiments.workloads import build_workload

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=1)
    try:
        cfg = typed_job(container)
        workload = build_workload(cfg.workload)
        schedules = run_schedules(cfg, int(cfg.scale.batch_per_rank), 10)
        state = engine.build_rank_state(cfg, Layout(1, 1, 1, 0), workload, torch.device("cpu"), schedules)
        state = dataclasses.replace(state, device=torch.device("meta"))
        optimizer = engine.build_optimizer(cfg.schedule, state.model.parameters(), schedules.lr(0),
                                           schedules.weight_decay(0))
        state.method.attach(optimizer)
        torch.manual_seed(12345)   # a stream the saved one must replace
        resumed_step, _ = engine.resume(Path(directory), state, optimizer, engine.Precision(False, state.device),
                                        step)
        results["step"], results["rng"] = resumed_step, torch.get_rng_state()
        results["model"] = {name: value.clone() for name, value in state.model.state_dict().items()}
        if hasattr(state.method, "state") and hasattr(state.method.state, "p_memory_dict"):
            results["powersgd_iter"] = state.method.state.iter
            results["factors"] = dict(state.method.state.p_memory_dict)
    finally:
        dist.destroy_process_group()


# ----- deterministic kernels: warn where CUDA has none, do not stop the run

def test_deterministic_mode_warns_where_no_deterministic_kernel_exists():
    try:
        launch.set_determinism(True, torch.device("cpu"))
        with pytest.warns(UserWarning, match="does not have a deterministic implementation"):
            # put_ without accumulation has no deterministic kernel on any device (as CUDA's
            # adaptive average pooling backward and NLLLoss, which every vision run calls)
            torch.zeros(3).put_(torch.tensor([0, 0]), torch.tensor([1.0, 2.0]))
    finally:
        torch.use_deterministic_algorithms(False)


# ----- placing ranks on GPUs

def test_gpus_are_counted_as_cuda_would_see_them_without_asking_cuda():
    assert visible_gpus({}, present=8) == 8
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}, present=8) == 2
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,-1,2"}, present=8) == 1   # CUDA stops at an invalid entry
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, present=8) == 0
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}, present=0) == 0


@pytest.mark.slow
@pytest.mark.parametrize("gpus, refused", [(0, "no GPU visible"), (8, "Duplicate GPU detected"), (16, None)])
def test_a_local_launcher_refuses_more_ranks_than_visible_gpus_and_names_the_slurm_launcher(tmp_path, gpus,
                                                                                             refused):
    job = compose_job(["method=codistill", "scale=paper"], tmp_path)   # 2 models x 8 GPUs
    problem = placement_problem(job, gpus=gpus)
    if refused is None:
        assert problem is None
    else:
        assert refused in problem and "launcher=slurm_v100" in problem and "16 ranks" in problem
    assert placement_problem(compose_job(["method=codistill"], tmp_path), gpus=0) is None   # mini: CPU ranks
    parallel = compose_job(["method=codistill", "scale=paper", "launcher=local_parallel",
                            "launcher.jobs_at_once=2"], tmp_path)
    assert "launcher.jobs_at_once=2" in placement_problem(parallel, gpus=64)


@pytest.mark.slow
def test_a_mini_run_trains_on_the_cpu_on_a_machine_with_a_gpu(tmp_path, monkeypatch):
    """Mini asks for no GPU (scale.gpus_per_rank=0): its ranks and fairseq processes train on the
    CPU wherever CUDA finds a GPU (on an H200, mini's 2-rank runs stopped: "rank 1 of this machine
    has no GPU of its own"); a paper job there trains on the GPU."""
    from codistill_experiments.jobs import trains_on_gpus

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    vision, translation = (compose_job(overrides, tmp_path) for overrides in (
        ["method=codistill"], ["workload=translation_grammar", "method=codistill"]))
    assert [launch._device(rank, vision) for rank in range(2)] == [torch.device("cpu")] * 2
    assert not trains_on_gpus(translation)
    paper = compose_job(["method=codistill", "scale=paper", "scale.ranks_per_model=1", "scale.ranks_per_node=1"],
                        tmp_path)
    assert trains_on_gpus(paper) and launch._device(0, paper) == torch.device("cuda", 0)


@pytest.mark.slow
def test_ranks_share_the_gpus_over_the_named_backend_only_when_asked(tmp_path, monkeypatch):
    """scripts/one_gpu_check.py runs 2 models on one GPU over cuda:gloo: each rank gets GPU
    local_rank mod the GPUs, the groups the named backend (no NCCL device binding), and the local
    launcher lets the job start; without the variable, NCCL, a GPU per rank, and the refusal."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    two_models = compose_job(["method=codistill", "scale=paper", "scale.ranks_per_model=1",
                              "scale.ranks_per_node=2"], tmp_path)
    gpu = torch.device("cuda", 0)
    monkeypatch.delenv(jobs.SHARED_GPU_BACKEND, raising=False)
    assert jobs.process_group_backend(gpu) == ("nccl", {"device_id": gpu})
    assert jobs.process_group_backend(torch.device("cpu")) == ("gloo", {})
    assert "Duplicate GPU detected" in placement_problem(two_models, gpus=1)
    with pytest.raises(RuntimeError, match="no GPU of its own"):
        launch._device(1, two_models)
    monkeypatch.setenv(jobs.SHARED_GPU_BACKEND, "cuda:gloo")
    assert jobs.process_group_backend(gpu) == ("cuda:gloo", {})
    assert placement_problem(two_models, gpus=1) is None
    assert [launch._device(rank, two_models) for rank in range(3)] == [gpu] * 3
    assert "no GPU visible" in placement_problem(two_models, gpus=0)   # sharing needs a GPU to share
    # a fairseq model of 2 ranks: NCCL, else the named backend, as its header says
    iwslt = compose_job(["workload=iwslt14_transformer", "method=allreduce", "scale=paper", "scale.ranks_per_model=2",
                         "scale.ranks_per_node=2"], tmp_path)
    monkeypatch.setattr(runlog, "run_environment", lambda device, backend, precision, gpus=None: backend)
    backend = lambda: argument(device_arguments(iwslt, True, 1, 0, "tcp://h:1"), "--distributed-backend")  # noqa: E731
    assert backend() == translation_results.environment(iwslt) == "cuda:gloo"
    monkeypatch.delenv(jobs.SHARED_GPU_BACKEND)
    assert backend() == translation_results.environment(iwslt) == "nccl"
    assert argument(device_arguments(iwslt, False, 1, None, "tcp://h:1"), "--distributed-backend") == "gloo"


@pytest.mark.slow
def test_a_paper_dry_run_on_the_default_launcher_says_to_use_the_slurm_launcher(tmp_path):
    done = run_cli("-m", "sweep=fig2", "scale=paper", "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    said = done.stdout + done.stderr
    assert visible_gpus() < 16   # this machine: the local launcher cannot give fig2's 16 ranks a GPU each
    assert "launcher=slurm_v100" in said and "scale.gpus_per_rank=1" in said
    slurm = run_cli("-m", "sweep=fig2", "scale=paper", "launcher=slurm_v100", "launcher.partition=x",
                    "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    assert slurm.returncode == 0 and "scale.gpus_per_rank" not in slurm.stdout + slurm.stderr
    assert "[0] paper-allreduce-" in slurm.stdout   # its jobs listed as before


def test_a_rank_is_given_its_own_gpu_or_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    paper = {"scale": {"gpus_per_rank": 1}}
    assert launch._device(3, paper) == torch.device("cuda", 3)
    with pytest.raises(RuntimeError, match="no GPU of its own"):
        launch._device(8 + 3, paper)   # would be GPU 3 again: NCCL's "Duplicate GPU detected"
    monkeypatch.setattr(launch, "visible_gpus", lambda: 8)
    config = {"launcher": {"start_method": "fork"}}
    assert launch.rank_start_method(config) == "spawn"   # no rank that uses CUDA is forked
    monkeypatch.setattr(launch, "visible_gpus", lambda: 0)
    assert launch.rank_start_method(config) == "fork"


# ----- process groups carry the configured timeout

def test_every_process_group_of_a_run_waits_as_long_as_the_launcher_says(tmp_path):
    container = compose_job(["method=codistill", "scale.ranks_per_model=2", "launcher.collective_timeout_s=123"],
                            tmp_path)
    results = mp.Manager().dict()
    run_ranks(_group_timeouts, 4, container, results)
    assert dict(results) == {rank: (123.0, 123.0) for rank in range(4)}


def _group_timeouts(rank, init_file, container, results):
    from codistill.groups import Layout
    from codistill_experiments.run_schedules import run_schedules
    from codistill_experiments.training import engine
    from codistill_experiments.workloads import build_workload

    timeout = datetime.timedelta(seconds=container["launcher"]["collective_timeout_s"])
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=4, timeout=timeout)
    try:
        cfg = typed_job(container)
        state = engine.build_rank_state(cfg, Layout(2, 2, 2, rank), build_workload(cfg.workload),
                                        torch.device("cpu"), run_schedules(cfg, int(cfg.scale.batch_per_rank), 10))
        cpu = torch.device("cpu")
        results[rank] = tuple(group._get_backend(cpu).options._timeout.total_seconds()
                              for group in (state.groups.group, state.groups.peers))
    finally:
        dist.destroy_process_group()


# ----- augmentation: peers see the same views, the ranks of one model different ones (at the paper's
# shape, 2 models x 2 ranks with loader workers: tests/test_preflight.py, imagenet_resnet50)

def test_held_out_images_are_read_through_the_validation_transforms(tmp_path):
    from torchvision import transforms

    from codistill_experiments.training.sampling import held_out_split
    from codistill_experiments.vision.workloads import IMAGENET_MEAN, IMAGENET_STD, imagenet

    root = make_tree(tmp_path / "imagenet", {"train": 3, "val": 1})
    workload = imagenet(OmegaConf.create({"data_root": str(root), "arch": "resnet18", "num_classes": 2,
                                          "zero_init_residual": True}))
    train, held_out = held_out_split(workload.train_set, workload.val_set,
                                     OmegaConf.create({"holdout": 2, "subset_seed": 0}))
    assert len(train) == 4 and len(held_out) == 2
    validation = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                     transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    for index in range(2):
        path, label = workload.train_set.samples[held_out.indices[index]]
        image, target = held_out[index]
        assert target == label
        assert torch.equal(image, validation(Image.open(path).convert("RGB")))
    assert workload.train_set.transform is not workload.val_set.transform   # training keeps its augmentation


# ----- the recipe and the run's header

def test_resnets_start_with_zero_scales_on_their_residual_branches(tmp_path):
    from codistill_experiments.vision.workloads import imagenet

    root = make_tree(tmp_path / "imagenet", {"train": 1, "val": 1})
    config = {"data_root": str(root), "num_classes": 2, "zero_init_residual": True}
    resnet50 = imagenet(OmegaConf.create({**config, "arch": "resnet50"})).make_model(0)
    last_norms = [block.bn3.weight for layer in (resnet50.layer1, resnet50.layer4) for block in layer]
    assert last_norms and all(torch.count_nonzero(weight) == 0 for weight in last_norms)
    assert torch.count_nonzero(resnet50.bn1.weight) == resnet50.bn1.weight.numel()   # the stem's is not
    job = compose_job(["scale=paper"], tmp_path)
    assert job["workload"]["zero_init_residual"] is True


@pytest.mark.slow
def test_a_runs_header_says_where_it_ran(tmp_path, run_job):
    directory, _ = run_job(["method=codistill", *SHORT])
    environment = read_records(directory / "metrics.jsonl")[0]["environment"]
    cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
               if line.startswith("model name"))
    assert environment["device"] == "cpu" and environment["backend"] == "gloo"
    assert environment["precision"] == "float32" and environment["torch"] == torch.__version__
    assert environment["cpu"] == cpu and environment["host"] == os.uname().nodename
    family = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("cpu family"))
    assert environment["cpu_signature"].startswith(f"family {family} model ")   # VMs name CPU generations alike
    assert environment["cpu_signature"].endswith(f"; {torch.backends.cpu.get_cpu_capability()}")
    assert environment["cores"] == len(os.sched_getaffinity(0)) and environment["numpy"] == numpy.__version__
    assert environment["fairseq"] == importlib.metadata.version("fairseq-fixed")
    assert environment["python"] == ".".join(str(part) for part in sys.version_info[:3])
    assert "gpu" not in environment   # GPU fields only on GPUs


def test_the_header_names_the_gpu_as_its_driver_does(tmp_path):
    from codistill_experiments.runlog import gpu_model

    gpus = tmp_path / "gpus"
    (gpus / "0000:07:00.0").mkdir(parents=True)
    (gpus / "0000:07:00.0" / "information").write_text("Model: \t\t Tesla V100-SXM2-16GB\nIRQ: 42\n")
    assert gpu_model(gpus) == "Tesla V100-SXM2-16GB"
    assert gpu_model(tmp_path / "none") is None
