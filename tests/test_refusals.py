"""Jobs that cannot do what they ask are refused before any rank starts or anything is queued, with
the key or the cause named: numbers no run can use (a learning rate <= 0, a momentum outside [0, 1),
an infinite alpha), a queuing launcher without -m (Hydra would train the job in the calling
process), and a job that asks for GPUs where CUDA cannot run it (no GPU found, too few, or a torch
build without kernels for a GPU). CUDA is stood in for by patched torch.cuda functions."""
import re
import warnings

import pytest
import torch
from conftest import ROOT, compose_job
from forked_script import start_script
from test_config import run_cli

from codistill_experiments import jobs
from codistill_experiments.config import ConfigError

# ----- numbers no run can use, refused by the schema's rules (every job of a sweep is validated)

BAD_NUMBERS = {
    "schedule.lr.base=-0.1": [],
    "schedule.lr.base=0": [],
    "schedule.lr.decay=-0.1": [],
    "schedule.momentum=-0.5": [],
    "schedule.momentum=1.5": [],
    "schedule.momentum=1": [],
    "method.alpha=inf": ["method=codistill"],
    "method.alpha=nan": ["method=codistill"],
    "method.alpha=-1": ["method=independent"],
}


@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=BAD_NUMBERS)
def test_a_number_no_run_can_use_is_refused_naming_its_key(tmp_path, bad):
    with pytest.raises(ConfigError) as refused:
        compose_job([*BAD_NUMBERS[bad], bad], tmp_path)
    assert f"  - {bad}: " in str(refused.value), str(refused.value)


def test_the_bounds_keep_every_value_the_recipes_use(tmp_path):
    job = compose_job(["schedule=anil_adagrad", "schedule.lr.decay=0", "method=codistill", "method.alpha=0"],
                      tmp_path)
    assert (job["schedule"]["momentum"], job["schedule"]["lr"]["decay"], job["method"]["alpha"]) == (0.0, 0, 0)
    assert compose_job(["schedule.momentum=0.99", "schedule.lr.base=1e-6"], tmp_path)["schedule"]["momentum"] == 0.99


def test_a_negative_learning_rate_stops_the_command_before_a_rank_or_a_lock(tmp_path):
    done = run_cli("schedule.lr.base=-0.1", "workload=digits_mlp", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0
    assert "schedule.lr.base=-0.1: must be > 0" in done.stderr, done.stderr[-2000:]
    assert "resumes from the last committed state" not in done.stderr
    assert not (tmp_path / "runs").exists()   # no run directory: no lock file, no log, no rank


def test_a_sweep_with_one_bad_number_queues_nothing(tmp_path):
    done = run_cli("-m", "workload=digits_mlp", "schedule.momentum=0.9,1.5", f"results_root={tmp_path}",
                   cwd=tmp_path)
    assert done.returncode != 0
    assert "the sweep was not launched" in done.stderr and "schedule.momentum=1.5: must be in [0, 1)" in done.stderr
    assert not (tmp_path / "runs").exists() and not list(tmp_path.rglob("*.json*"))   # no run, no manifest


# ----- a queuing launcher without -m: Hydra would run the job here

def test_the_slurm_launcher_without_multirun_is_refused_naming_m(tmp_path):
    done = run_cli("launcher=slurm_v100", "launcher.partition=p", "workload=digits_mlp", f"results_root={tmp_path}",
                   cwd=tmp_path)
    assert done.returncode != 0
    said = done.stderr
    assert "launcher=slurm_v100 queues jobs only in a multirun" in said, said[-2000:]
    assert re.search(r"Add -m: python \S*run\.py -m launcher=slurm_v100 launcher\.partition=p workload=digits_mlp",
                     said), said[-2000:]
    assert not (tmp_path / "runs").exists()
    dry = run_cli("launcher=submitit_local", "workload=digits_mlp", "dry_run=true", f"results_root={tmp_path}",
                  cwd=tmp_path)   # a dry run trains nothing: it warns
    assert dry.returncode == 0 and "warning: cannot run here yet: launcher=submitit_local queues jobs only" in dry.stdout


# ----- a job that asks for GPUs where CUDA cannot run it

V100 = (7, 0)
CUDA_13_ARCHES = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]   # torch 2.14.1+cu130's


def fake_cuda(monkeypatch, available=True, count=1, arches=CUDA_13_ARCHES, capability=V100, warning=None):
    def is_available():
        if warning:
            warnings.warn(warning, stacklevel=2)
        return available

    monkeypatch.setattr(torch.cuda, "is_available", is_available)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count if available else 0)
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: list(arches))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.delenv(jobs.SHARED_GPU_BACKEND, raising=False)


def paper_job(tmp_path, *overrides):
    return compose_job(["scale=paper", "method=allreduce", "scale.ranks_per_model=1", "scale.ranks_per_node=1",
                        "workload=digits_mlp", *overrides], tmp_path)


def test_a_gpu_job_without_usable_cuda_is_refused_naming_the_cause_not_trained_on_the_cpu(tmp_path, monkeypatch):
    job = paper_job(tmp_path)
    old_driver = "CUDA initialization: The NVIDIA driver on your system is too old (found version 12020)."
    fake_cuda(monkeypatch, available=False, warning=old_driver)
    problem = jobs.cuda_problem(job)
    assert "scale.gpus_per_rank=1" in problem and "The NVIDIA driver on your system is too old" in problem
    with pytest.raises(jobs.CudaUnusable, match="driver on your system is too old"):
        jobs.trains_on_gpus(job)   # what every rank and the fairseq launcher ask: no silent CPU (nor --cpu)
    fake_cuda(monkeypatch, available=False)
    assert "torch.cuda.is_available() is False" in jobs.cuda_problem(job)


def test_a_job_asking_for_no_gpu_asks_cuda_nothing(tmp_path, monkeypatch):
    def asked():
        raise AssertionError("CUDA was asked")

    monkeypatch.setattr(torch.cuda, "is_available", asked)
    mini = compose_job(["method=codistill"], tmp_path)
    assert jobs.cuda_problem(mini) is None and jobs.trains_on_gpus(mini) is False


def test_fewer_gpus_than_the_ranks_here_need_are_refused(tmp_path, monkeypatch):
    fake_cuda(monkeypatch, count=1, capability=(8, 0))
    two = paper_job(tmp_path, "scale.ranks_per_node=2", "method=codistill")
    assert "need 2 GPUs, and CUDA sees 1" in jobs.cuda_problem(two)
    assert jobs.gpus_needed_here(two, task=(5, 0)) == 1   # one task of a Slurm job: its own GPU, local rank 0
    assert jobs.gpus_needed_here(two, task=(5, 3)) == 4
    monkeypatch.setenv(jobs.SHARED_GPU_BACKEND, "cuda:gloo")
    assert jobs.cuda_problem(two) is None


def test_a_torch_build_without_kernels_for_the_gpu_is_refused_with_the_install_line(tmp_path, monkeypatch):
    fake_cuda(monkeypatch, count=2, capability=V100)
    problem = jobs.cuda_problem(paper_job(tmp_path))
    assert "GPU 0 (sm_70, compute capability 7.0)" in problem and "GPU 1 (sm_70" in problem
    assert "no kernel image is available" in problem
    assert "make setup STACK=v100" in problem and "torch==2.14.1+cu126" in problem
    assert "--extra-index-url https://download.pytorch.org/whl/cu126" in problem
    fake_cuda(monkeypatch, count=2, capability=(8, 6))   # an A100's kernels run on an sm_86 GPU
    assert jobs.cuda_problem(paper_job(tmp_path)) is None
    fake_cuda(monkeypatch, arches=["sm_70", "sm_80"], capability=(12, 0))   # the V100 stack on a Blackwell
    assert "make setup (constraints.txt" in jobs.cuda_problem(paper_job(tmp_path))


# compute capability -> whether code for the arch runs there, by CUDA's compatibility rules: a cubin
# runs on its major version from its minor up, an arch-specific one (a) on its own GPU only, PTX
# (compute_) on every GPU from its version up (the driver compiles it).
RUNS_ON = [
    ("sm_70", (7, 0), True), ("sm_70", (7, 5), True), ("sm_75", (7, 0), False), ("sm_80", (8, 6), True),
    ("sm_86", (8, 0), False), ("sm_90", (10, 0), False), ("sm_120", (12, 0), True), ("sm_100", (12, 0), False),
    ("sm_90a", (9, 0), True), ("sm_90a", (9, 1), False), ("sm_100f", (10, 3), True),
    ("compute_70", (7, 0), True), ("compute_70", (9, 0), True), ("compute_90", (8, 9), False),
    ("compute_120", (12, 1), True), ("compute_75", (7, 0), False),
]


@pytest.mark.parametrize("arch, capability, runs", RUNS_ON)
def test_kernels_run_where_cuda_says_they_do(arch, capability, runs):
    assert jobs.runs_on(arch, capability) is runs


def test_ptx_lets_a_newer_gpu_run_a_build_without_its_cubins():
    assert jobs.arch_problem(["sm_75", "sm_80", "compute_80"], [(12, 0), (8, 6)]) is None
    assert "GPU 0 (sm_120" in jobs.arch_problem(["sm_75", "sm_80"], [(12, 0), (8, 6)])


def test_the_install_line_is_the_v100_constraints_pins():
    pins = dict(re.findall(r"^(torch|torchvision)==(\S+)", (ROOT / "constraints-v100.txt").read_text(), re.M))
    assert f"torch=={pins['torch']}" in jobs.OLD_GPU_STACK and f"torchvision=={pins['torchvision']}" in jobs.OLD_GPU_STACK
    assert pins["torch"].endswith("+cu126")
    index = re.search(r"^--extra-index-url (\S+)", (ROOT / "constraints-v100.txt").read_text(), re.M).group(1)
    assert index in jobs.OLD_GPU_STACK


def refuse_cuda(patches):
    """A preexec_fn for a forked src/run.py: the machine has GPUs (counted without CUDA), and CUDA
    behaves as `patches` says."""
    def patch():
        jobs.gpus_present = lambda *args, **kwargs: 1
        for name, value in patches.items():
            setattr(torch.cuda, name, value)
    return patch


CLI_REFUSALS = {
    "no usable CUDA": ({"is_available": lambda: False}, "torch.cuda.is_available() is False"),
    "no kernels for sm_70": ({"is_available": lambda: True, "device_count": lambda: 1,
                              "get_arch_list": lambda: list(CUDA_13_ARCHES),
                              "get_device_capability": lambda index=None: V100},
                             "GPU 0 (sm_70, compute capability 7.0) can run none of them"),
}


@pytest.mark.parametrize("patches, said", CLI_REFUSALS.values(), ids=CLI_REFUSALS)
def test_a_paper_job_where_cuda_cannot_run_it_stops_before_its_lock_and_ranks(tmp_path, monkeypatch, patches, said):
    monkeypatch.delenv(jobs.SHARED_GPU_BACKEND, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    process = start_script([ROOT / "src" / "run.py", "scale=paper", "method=allreduce", "scale.ranks_per_model=1",
                            "scale.ranks_per_node=1", "workload=digits_mlp", f"results_root={tmp_path}"],
                           cwd=tmp_path, preexec_fn=refuse_cuda(patches))
    _, stderr = process.communicate(timeout=300)
    assert process.returncode != 0
    assert said in stderr and "error: " in stderr, stderr[-2000:]
    assert not (tmp_path / "runs").exists()   # no lock, no log, no rank


# ----- make setup chooses the stack: the V100 one where a GPU older than Turing is, or when named

def setup_constraints(tmp_path, gpus, *args, stack=None):
    """The constraints files `make -n setup` installs with, on a machine whose nvidia-smi lists
    GPUs of the compute capabilities `gpus` (None: no nvidia-smi answers), into a venv at tmp_path/venv
    that was made with `stack` (None: a new venv)."""
    import os
    import subprocess

    bin_dir, venv = tmp_path / "bin", tmp_path / "venv"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\nexit 9\n" if gpus is None else "#!/bin/sh\nprintf '%s\\n' " + " ".join(gpus) + "\n")
    smi.chmod(0o755)
    if stack:
        venv.mkdir(exist_ok=True)
        (venv / ".stack").write_text(stack + "\n")
    done = subprocess.run(["make", "-n", "setup", f"VENV={venv}", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, timeout=60)
    assert done.returncode == 0, done.stderr
    return sorted(set(re.findall(r"PIP_CONSTRAINT=\S*/(constraints[\w-]*\.txt)", done.stdout)))


def test_make_setup_installs_the_v100_stack_where_a_gpu_older_than_turing_is_or_when_named(tmp_path):
    assert setup_constraints(tmp_path, None) == ["constraints.txt"]   # CI, a CPU machine: unchanged
    assert setup_constraints(tmp_path, ["9.0"]) == ["constraints.txt"]
    assert setup_constraints(tmp_path, ["7.5"]) == ["constraints.txt"]   # Turing: CUDA 13 builds for it
    assert setup_constraints(tmp_path, ["7.0"]) == ["constraints-v100.txt"]
    assert setup_constraints(tmp_path, ["8.0", "7.0"]) == ["constraints-v100.txt"]
    assert setup_constraints(tmp_path, None, "STACK=v100") == ["constraints-v100.txt"]
    assert setup_constraints(tmp_path, ["7.0"], "STACK=default") == ["constraints.txt"]
    assert setup_constraints(tmp_path, None, stack="v100") == ["constraints-v100.txt"]   # the venv keeps its stack
