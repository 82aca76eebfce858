"""Where this process stands in a job, for both launchers (launch.py for the vision engine,
translation/launcher.py for fairseq): its rank when a job launcher started it (submitit/Slurm,
torchrun), the check that the job has the ranks a run needs, and a free port for a local
rendezvous. Nothing here imports torch."""
import os
import socket


def free_port():
    """A TCP port on localhost that nothing listens on now (for a rendezvous this process starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
