"""Where this process stands in a job, for both launchers (launch.py for the vision engine,
translation/launcher.py for fairseq): its rank when a job launcher started it (submitit/Slurm,
torchrun), the check that the job has the ranks a run needs, and the rendezvous of the worlds
this process starts on this machine, and the GPUs a rank may use. Nothing here imports torch but
gpu_of, when it is called."""
import contextlib
import os
import tempfile
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


def trains_on_gpus(config):
    """Whether a job's ranks train on GPUs: the job asks for them (scale.gpus_per_rank; mini asks
    for none, so its runs are the CPU runs they were committed from, whatever the machine has) and
    CUDA finds one. It asks CUDA: a process that starts ranks afterwards spawns them
    (launch.rank_start_method)."""
    import torch

    return bool(config["scale"]["gpus_per_rank"]) and torch.cuda.is_available()


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
