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


def _mul_or_null(*factors):
    """The product, or None when a factor is None: a request left unset per rank stays unset per node."""
    return None if any(factor is None for factor in factors) else math.prod(factors)


def _gpu_constraint(gpu_memory_gb, features):
    """The Slurm constraint that gives a workload its GPU memory, from a site's table of GB ->
    feature (`{16: volta16gb, 32: volta32gb}`); none for a CPU workload. Feature names are each
    cluster's own, so the table is written in the site file, never in committed config."""
    if gpu_memory_gb is None:
        return None
    for key in (gpu_memory_gb, str(gpu_memory_gb)):
        if key in features:
            return features[key]
    raise ValueError(f"workload.gpu_memory_gb={gpu_memory_gb}: the site's gpu_constraint table {features} has no "
                     "entry for it; add one to launcher.constraint in src/conf/site/local.yaml")


def _job_ranks(world_size, ranks_per_model, transport):
    """The ranks of one job: the run's world, or one model's when each model is its own job."""
    return ranks_per_model if transport == "files" else world_size


def register_resolvers():
    resolvers = (("mul", _mul), ("default", _default), ("mul_or_null", _mul_or_null),
                 ("gpu_constraint", _gpu_constraint),
                 ("whole", _whole), ("job_ranks", _job_ranks), ("jobs_on_cores", jobs_on_cores),
                 ("int_min", lambda *values: int(min(values))), ("int_div", lambda a, b: int(a // b)))
    for name, resolver in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


def share_interpolation_parse_trees():
    """OmegaConf parses an interpolation's text with ANTLR each time it resolves it, and a job's few
    dozen interpolation strings (the same in every job) are resolved anew in every composition and
    validation: about a fifth of a sweep's listing CPU and a tenth of a composition's. A parse tree only
    depends on the text, grammar rule and lexer mode it was parsed from, and OmegaConf only reads it
    (its visitor walks it; the tokens keep the input they were cut from), so each distinct text is
    parsed once per process. A text that does not parse raises each time (errors are not cached).
    Only for the pinned OmegaConf (2.3), whose modules call `grammar_parser.parse` by these names."""
    import functools

    import omegaconf
    from omegaconf import _utils, base, grammar_parser

    if not omegaconf.__version__.startswith("2.3.") or base.parse is not grammar_parser.parse \
            or _utils.parse is not grammar_parser.parse:
        return
    shared = functools.lru_cache(maxsize=4096)(grammar_parser.parse)
    base.parse = _utils.parse = shared
