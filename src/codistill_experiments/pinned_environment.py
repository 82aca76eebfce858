"""The config values a job reads from the environment (`${oc.env:...}`: the data sets' roots,
results_root, the Slurm partition and account), pinned as overrides when the job is queued.

A queued job composes its config again where it starts (submitit pickles the overrides, not the
resolved config), in the environment its scheduler gives it: on sites that set
SBATCH_EXPORT=NONE (or `--export=NONE`), none of the submitting shell's variables, so each such
value would fall back to its default there (another results folder, a data root that does not
exist). Pinned, each resolves as it did when the sweep was validated, and the run id with it."""
from omegaconf import DictConfig, ListConfig, OmegaConf

ENVIRONMENT_RESOLVER = "oc.env:"


def environment_keys(cfg, prefix=""):
    """The dotted keys of `cfg` (a composed DictConfig) whose value interpolates the environment,
    outside Hydra's own node."""
    for key in cfg.keys():
        if not prefix and key == "hydra":
            continue
        node = cfg._get_node(key)
        path = f"{prefix}{key}"
        if isinstance(node, DictConfig):
            yield from environment_keys(node, f"{path}.")
        elif not isinstance(node, ListConfig) and node._is_interpolation() \
                and ENVIRONMENT_RESOLVER in str(node._value()):
            yield path


def quoted(value):
    """`value` as an override's value: null, a number or a boolean as such, a string quoted."""
    if value is None:
        return "null"
    if isinstance(value, (bool, int, float)):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + str(value).replace("'", "\\'") + "'"


def environment_overrides(cfg):
    """Overrides (`key=value`) that set every value `cfg` reads from the environment to what it
    resolves to here."""
    return [f"{key}={quoted(OmegaConf.select(cfg, key))}" for key in environment_keys(cfg)]
