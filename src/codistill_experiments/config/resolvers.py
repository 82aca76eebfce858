"""The resolvers the config files use in their interpolations (`${mul:...}`, `${whole:...}`, ...)."""
import math

from omegaconf import OmegaConf

from ..jobs import jobs_on_cores


def _mul(*factors):
    return math.prod(factors)


def _whole(value):
    """An integral number as an int (4.0 GPUs -> 4); anything else unchanged, for validate to name."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _default(value, fallback):
    return fallback if value is None else value


def _v100_constraint(gpu_memory_gb):
    """The Slurm constraint of a V100 of that memory (16 or 32 GB); none for a CPU workload."""
    return None if gpu_memory_gb is None else f"volta{int(gpu_memory_gb)}gb"


def _job_ranks(world_size, ranks_per_model, transport):
    """The ranks of one job: the run's world, or one model's when each model is its own job."""
    return ranks_per_model if transport == "files" else world_size


def register_resolvers():
    resolvers = (("mul", _mul), ("default", _default), ("v100_constraint", _v100_constraint),
                 ("whole", _whole), ("job_ranks", _job_ranks), ("jobs_on_cores", jobs_on_cores),
                 ("int_min", lambda *values: int(min(values))), ("int_div", lambda a, b: int(a // b)))
    for name, resolver in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
