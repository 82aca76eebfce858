"""Where this process stands in a job, for both launchers (launch.py for the vision engine,
translation/launcher.py for fairseq): its rank when a job launcher started it (submitit/Slurm,
torchrun), the check that the job has the ranks a run needs, and the rendezvous of the worlds
this process starts on this machine. Nothing here imports torch."""
import contextlib
import os
import tempfile

# The launchers whose jobs run in a process of this machine that starts the run's ranks itself:
# `local` one job after another in the sweep's process, `local_parallel` up to
# launcher.jobs_at_once jobs at once in Hydra's joblib launcher's worker processes.
STARTS_ITS_RANKS = ("local", "local_parallel")


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
