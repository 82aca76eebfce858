"""Where this process stands in a job, for both launchers (launch.py for the training engine,
translation/launcher.py for fairseq): its rank when a job launcher started it (submitit/Slurm,
torchrun), the check that the job has the ranks a run needs, and the rendezvous of the worlds
this process starts on this machine, the GPUs a rank may use, and whether CUDA can train a job
that asks for GPUs here. Nothing here imports torch but gpu_of and the CUDA checks
(trains_on_gpus, cuda_problem), when they are called."""
import contextlib
import os
import tempfile
import warnings
from pathlib import Path

# The launchers whose jobs run in a process of this machine that starts the run's ranks itself:
# `local` one job after another in the sweep's process, `local_parallel` up to
# launcher.jobs_at_once jobs at once in Hydra's joblib launcher's worker processes.
STARTS_ITS_RANKS = ("local", "local_parallel")


NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")   # one folder per GPU the NVIDIA driver holds
NVIDIA_DEVICES = Path("/dev")                     # /dev/nvidia0, /dev/nvidia1, ...: one file per GPU


def gpus_present(driver_gpus=None, devices=None):
    """The NVIDIA GPUs of this machine, as the driver lists them (or its device files)."""
    driver_gpus = NVIDIA_GPUS if driver_gpus is None else Path(driver_gpus)
    if driver_gpus.is_dir():
        return len(list(driver_gpus.iterdir()))
    devices = NVIDIA_DEVICES if devices is None else Path(devices)
    return len([path for path in devices.glob("nvidia*") if path.name[len("nvidia"):].isdigit()])


def visible_gpus(environ=None, present=None):
    """The GPUs a process started here may use: the first CUDA_VISIBLE_DEVICES entries up to an
    invalid one, as CUDA reads them (Slurm sets it to the job's GPUs), at most the GPUs present
    (`present`, by default gpus_present()). Read without CUDA and without torch: a process that
    asks CUDA how many devices there are can no longer fork ranks that use CUDA."""
    environ = os.environ if environ is None else environ
    present = gpus_present() if present is None else present
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return present
    entries = [entry.strip() for entry in listed.split(",")]
    valid = next((index for index, entry in enumerate(entries) if not entry or entry.startswith("-")), len(entries))
    return min(valid, present)


# NCCL refuses two ranks on one GPU ("Duplicate GPU detected"). Set to a torch.distributed backend
# that takes CUDA tensors (gloo; "cuda:gloo" also refuses CPU tensors, as NCCL does), this lets the
# ranks of a machine share its GPUs over that backend, so that a machine with fewer GPUs than a job's
# ranks runs every method's code on CUDA tensors (scripts/one_gpu_check.py). A check, not a way to
# train: gloo copies each CUDA tensor through host memory.
SHARED_GPU_BACKEND = "CODISTILL_SHARED_GPU_BACKEND"


def shared_gpu_backend(environ=None):
    """The backend of ranks sharing GPUs (SHARED_GPU_BACKEND), or None: one GPU per rank, NCCL."""
    return (os.environ if environ is None else environ).get(SHARED_GPU_BACKEND) or None


def process_group_backend(device):
    """(backend, init_process_group's extra arguments) of a rank on `device`."""
    if device.type != "cuda":
        return "gloo", {}
    shared = shared_gpu_backend()
    # device_id binds NCCL's communicators and barriers to this rank's GPU, not one guessed from the rank
    return (shared, {}) if shared else ("nccl", {"device_id": device})


# The stack for GPUs older than Turing (V100s: sm_70). CUDA 13 has no kernels for them, and torch's
# CUDA 12.8 builds dropped Volta from 2.11 on; its CUDA 12.6 build keeps sm_50 to sm_90
# (constraints-v100.txt).
OLD_GPU_STACK = ("make setup STACK=v100 (constraints-v100.txt: torch==2.14.1+cu126 torchvision==0.29.1+cu126 "
                 "from --extra-index-url https://download.pytorch.org/whl/cu126)")
NEW_GPU_STACK = "make setup (constraints.txt: torch==2.14.1 from the package index, CUDA 13)"
OLDEST_CUDA_13_GPU = (7, 5)   # Turing: CUDA 13 builds nothing older


class CudaUnusable(RuntimeError):
    """A job that asks for GPUs (scale.gpus_per_rank) where CUDA cannot run it: it is refused
    rather than trained on the CPU."""


def no_cuda_problem(config):
    """Why CUDA finds no GPU for a job that asks for GPUs, or None when it finds one. Asks CUDA
    (torch.cuda.is_available): a process that starts ranks afterwards spawns them."""
    import torch

    with warnings.catch_warnings(record=True) as said:   # torch warns the driver's reason, if any
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return None
    if torch.version.cuda is None:
        cause = f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    else:
        reasons = " ".join(" ".join(str(warning.message).split()) for warning in said)
        cause = (f"torch {torch.__version__} (a CUDA {torch.version.cuda} build) finds no usable GPU: "
                 + (reasons or f"torch.cuda.is_available() is False (no GPU granted to this process, "
                    f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}, or an NVIDIA driver too old "
                    f"for CUDA {torch.version.cuda}; nvidia-smi names the driver)"))
    return (f"scale.gpus_per_rank={config['scale']['gpus_per_rank']}: this job trains on GPUs, but {cause}. It was "
            "not started: it would have trained on the CPU. Run it where CUDA works, or set scale.gpus_per_rank=0 "
            "to train the paper's shapes on this machine's CPU")


def trains_on_gpus(config):
    """Whether a job's ranks train on GPUs: whether the job asks for them (scale.gpus_per_rank;
    mini asks for none, so its runs are the CPU runs they were committed from, whatever the machine
    has, and CUDA is not asked). A job that asks for them where CUDA finds no GPU raises
    CudaUnusable, naming the cause, instead of training on the CPU."""
    if not config["scale"]["gpus_per_rank"]:
        return False
    problem = no_cuda_problem(config)
    if problem:
        raise CudaUnusable(problem)
    return True


def _arch_version(digits):
    return int(digits[:-1]), int(digits[-1])   # "70" -> (7, 0), "120" -> (12, 0)


def runs_on(arch, capability):
    """Whether code built for `arch` (an entry of torch.cuda.get_arch_list()) runs on a GPU of
    compute capability `capability` (major, minor). A cubin (sm_XY) runs on the same major
    version from minor Y up (sm_80 on an sm_86 GPU), an arch-specific one (sm_90a) on that exact
    GPU only; PTX (compute_XY) is compiled by the driver for any GPU from X.Y up."""
    kind, _, version = arch.partition("_")
    digits = version.rstrip("af")
    if not digits.isdigit() or len(digits) < 2:
        return False
    built, capability = _arch_version(digits), tuple(capability)
    if kind == "compute":
        return capability >= built
    if kind != "sm":
        return False
    if version.endswith("a"):
        return capability == built
    return capability[0] == built[0] and capability[1] >= built[1]


def arch_problem(arch_list, capabilities, version="", cuda=""):
    """Why the kernels of this torch build (arch_list: torch.cuda.get_arch_list()) cannot run on
    every GPU (capabilities: torch.cuda.get_device_capability of each), with the line that installs
    a build that can, or None. Without it a job dies at its first kernel ("no kernel image is
    available for execution on the device")."""
    lacking = [(index, tuple(capability)) for index, capability in enumerate(capabilities)
               if not any(runs_on(arch, capability) for arch in arch_list)]
    if not lacking:
        return None
    gpus = ", ".join(f"GPU {index} (sm_{major}{minor}, compute capability {major}.{minor})"
                     for index, (major, minor) in lacking)
    old = any(capability < OLDEST_CUDA_13_GPU for _, capability in lacking)
    return (f"torch {version} (CUDA {cuda}) has kernels for {' '.join(arch_list) or 'no GPU'} only: {gpus} can run "
            "none of them, and every job would die at its first kernel (\"no kernel image is available for execution "
            f"on the device\"). Install the stack built for {'them' if len(lacking) > 1 else 'it'}: "
            f"{OLD_GPU_STACK if old else NEW_GPU_STACK}; docs/gpu-cluster.md, \"The stack\"")


def gpus_needed_here(config, task=None):
    """The GPUs CUDA must show this process for the job's ranks it runs: one when ranks share GPUs
    (SHARED_GPU_BACKEND); as one rank of a job that a job launcher started (task: (rank,
    local_rank), by default job_rank()), GPUs up to its own, GPU local_rank (gpu_of); else the
    ranks it starts here, a GPU each."""
    if shared_gpu_backend():
        return 1
    task = job_rank() if task is None else task
    if task is not None:
        return task[1] + 1
    return int(config["job_ranks"]) * int(config["scale"]["gpus_per_rank"])


def cuda_problem(config):
    """Why this machine cannot train a job that asks for GPUs (scale.gpus_per_rank) on them, or
    None; None at once, without asking CUDA, for a job that asks for none (mini). Checked before a
    job's lock is taken and its ranks start: CUDA finds no GPU (the cause named), finds fewer than
    the job's ranks here need, or this torch build has no kernels for a visible GPU (its
    arch list against each GPU's compute capability). It initialises CUDA in this process: call
    it where no rank is forked afterwards (the local launchers spawn ranks on a machine with
    GPUs, launch.rank_start_method; a job launcher's task is its rank)."""
    if not config["scale"]["gpus_per_rank"]:
        return None
    problem = no_cuda_problem(config)
    if problem:
        return problem
    import torch

    count, needed = torch.cuda.device_count(), gpus_needed_here(config)
    if count < needed:
        return (f"scale.gpus_per_rank={config['scale']['gpus_per_rank']}: the job's ranks on this machine need "
                f"{needed} GPUs, and CUDA sees {count} here (CUDA_VISIBLE_DEVICES="
                f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}): ask Slurm for a GPU per task, or give the job fewer "
                "ranks (method.n x scale.ranks_per_model)")
    return arch_problem(torch.cuda.get_arch_list(), [torch.cuda.get_device_capability(i) for i in range(count)],
                        torch.__version__, torch.version.cuda)


def gpu_of(local_rank):
    """The GPU of the rank `local_rank` of this machine: its own, GPU `local_rank`. A rank without
    one is refused here, as NCCL would refuse two ranks on one GPU ("Duplicate GPU detected"),
    with what to do (config.placement_problem says it before a job starts), unless the ranks share
    GPUs over SHARED_GPU_BACKEND."""
    import torch

    count = torch.cuda.device_count()
    if shared_gpu_backend() and count:
        return local_rank % count
    if local_rank >= count:
        raise RuntimeError(f"rank {local_rank} of this machine has no GPU of its own ({count} visible): start at most "
                           "one rank per GPU here (fewer models or ranks per model), or run on a cluster with "
                           "launcher=slurm_v100")
    return local_rank


def cores():
    """The CPU cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def jobs_on_cores(job_ranks, cores_here=None):
    """How many jobs of job_ranks ranks (one core each) fit on this machine's cores at once; at
    least 1, so that a job wider than the machine still runs."""
    return max(1, (cores() if cores_here is None else cores_here) // int(job_ranks))


@contextlib.contextmanager
def local_rendezvous():
    """Yields init_method(name): the torch.distributed init method (`file://`, torch's FileStore)
    of world `name` among the worlds whose ranks this process starts on this machine; the files
    go when the block ends. A file of a fresh private directory cannot be another job's, where a
    port probed free and released (then bound by rank 0) can be taken by a job starting beside
    it; gloo's own connections bind ports the OS assigns. Ranks forked or started as processes
    (fairseq) both read it."""
    with tempfile.TemporaryDirectory(prefix="codistill-rendezvous-") as folder:
        yield lambda name: f"file://{os.path.join(folder, str(name))}"


def submitit_rank():
    """(rank, local_rank) when this process is one task of a submitit job, else None."""
    try:
        import submitit

        environment = submitit.JobEnvironment()
    except (ImportError, RuntimeError):
        return None
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return environment.global_rank, environment.local_rank


def torchrun_rank():
    """(rank, local_rank) when the environment already names this process's rank, else None."""
    if all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        rank = int(os.environ["RANK"])
        return rank, int(os.environ.get("LOCAL_RANK", rank))
    return None


def job_rank():
    """(rank, local_rank) of this process in a multi-task job, or None when it is to start the
    ranks itself."""
    return submitit_rank() or torchrun_rank()


def check_world_size(world_size):
    """A job's tasks are the run's ranks, one each: refuse a job of another size."""
    tasks = int(os.environ.get("WORLD_SIZE", world_size))
    if tasks != world_size:
        raise RuntimeError(f"the job has {tasks} tasks but the run needs {world_size} ranks "
                           "(method.n x scale.ranks_per_model)")
