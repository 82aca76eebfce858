"""A job's config: its schemas, its resolvers, its validation at compose time, and its typed form.

The job's own keys (codistill.yaml's) and each config group's files are typed by a schema
(job_schema.py, schema.py; registered in Hydra's ConfigStore when this package is imported): Hydra
checks every key and type while it composes a job. `validate` then runs before anything trains or is
queued (single runs, every job of a sweep, and `dry_run=true`): the rules each schema declares beside
its types (rules.py), then the checks that relate several values (checks.py; translation/checks.py
for the fairseq jobs). Each problem names the key, the value and what is allowed. It returns the
resolved job as a plain dict (what the run id hashes, and what crosses process boundaries);
`typed_job` turns that dict back into the typed config, each node merged onto its schema.

  job_schema.py the dataclass of codistill.yaml's own keys (seed, data, supervised, ...)
  schema.py     the dataclasses of the groups method, scale, schedule, launcher and workload
  rules.py      allowed values and bounds, declared on the schema fields and checked for every job
  checks.py     what no schema can say: relations between values, the run's updates
  resolvers.py  the resolvers of the config files' interpolations, and their parse trees shared
  reads.py      the config files each read once per process while unchanged, by every Hydra loader
"""
import dataclasses
import re
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from ..data_checks import check_cifar_root, check_criteo_root, check_imagefolder_root
from ..jobs import STARTS_ITS_RANKS, shared_gpu_backend, visible_gpus
from ..translation.checks import (
    FAIRSEQ_SCHEDULE_KINDS,
    check_translation_job,
    is_fairseq,
    translation_install_problem,
    workload_data_problem,
)
from .checks import (
    check_launcher,
    check_layout,
    check_method,
    check_models,
    check_own_method_workload,
    check_prediction_topk,
    check_schedule,
    check_top_level,
    check_torchft,
    check_updates,
)
from .job_schema import Job
from .reads import share_config_reads
from .resolvers import register_resolvers, share_interpolation_parse_trees
from .rules import RULE, dataclass_in, problems_of
from .schema import SCHEMAS, register_schemas

register_resolvers()
share_interpolation_parse_trees()
share_config_reads()
register_schemas()

CONF = Path(__file__).resolve().parents[2] / "conf"


class ConfigError(ValueError):
    pass


def data_problem(container):
    """Why the job's data cannot be read on this machine, or None. Checked before a run starts or
    a sweep launches (a dry run only warns: it may be preparing a cluster's jobs elsewhere)."""
    workload = container["workload"]
    if is_fairseq(container):
        return workload_data_problem(workload)
    if workload["name"] == "imagenet":
        return check_imagefolder_root(workload["data_root"])
    if workload["name"] == "criteo":
        return check_criteo_root(workload["data_root"])
    if workload["name"] == "cifar10":
        pretrained = workload["pretrained"]
        if workload["scenario"].startswith("pretrained") and not (pretrained and Path(pretrained).is_file()):
            return (f"workload.pretrained={pretrained!r}: scenario {workload['scenario']} needs the weights of "
                    "a Wide-ResNet trained with workload.scenario=full: run sweep=wrn_pretrain at the same scale, "
                    "then pass workload.pretrained=<results>/runs/<its run id>/model0.pt (docs/configs.md, \"Paper scale\")")
        return check_cifar_root(workload["data_root"])
    return None


def install_problem(container):
    """Why this environment lacks a package the job runs on (a translation job without fairseq),
    naming the command that installs it, or None. Checked with the data before a run starts or a
    sweep launches."""
    return translation_install_problem(container)


def placement_problem(container, gpus=None):
    """Why this machine cannot give each rank of the job the GPU it asks for (scale.gpus_per_rank),
    with what to use instead, or None. Only the launchers that start a job's ranks here place them
    on this machine's GPUs (GPU i for its i-th rank); Slurm gives each task GPUs of its own.
    gpus: the GPUs visible here (jobs.visible_gpus, which asks no CUDA)."""
    launcher, per_rank, ranks = container["launcher"], container["scale"]["gpus_per_rank"], container["job_ranks"]
    if launcher["name"] not in STARTS_ITS_RANKS or not per_rank:
        return None
    visible = visible_gpus() if gpus is None else gpus
    wanted = (f"scale.gpus_per_rank={per_rank}: each of the job's {ranks} ranks trains on a GPU of its own, and "
              f"launcher={launcher['name']} starts them on this machine")
    cluster = "on a GPU cluster, use launcher=slurm_v100 (one Slurm task per GPU, docs/gpu-cluster.md)"
    if visible == 0:
        return (f"{wanted}, which has no GPU visible: {cluster}; or set scale.gpus_per_rank=0 to train the paper's "
                "shapes on this machine's CPU")
    if visible < ranks * per_rank and not shared_gpu_backend():
        return (f"{wanted}, which has {visible} visible: ranks would share a GPU, which NCCL refuses (\"Duplicate GPU "
                f"detected\"); {cluster}, or give the job fewer ranks (method.n x scale.ranks_per_model)")
    if launcher.get("jobs_at_once", 1) > 1:   # only local_parallel has it
        return (f"launcher.jobs_at_once={launcher['jobs_at_once']}: every job of launcher=local_parallel places its "
                "ranks on this machine's first GPUs, so jobs running at once would share them; set "
                "launcher.jobs_at_once=1, or use launcher=slurm_v100")
    return None


def sweep_files():
    """The ids of the sweeps there are (sweeps/*.yaml, the config group `sweep`)."""
    names = [path.stem for path in (CONF / "sweep").glob("*.yaml")]
    return sorted(names, key=lambda name: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)])


def check_sweep_choice(cfg):
    """Hydra skips an optional config group whose option does not exist: `sweep=fig99` (a typo)
    would train the default job. Raises ConfigError naming the id and the sweeps there are. cfg:
    a composed config with its `hydra` node (every job of a sweep), or a single run's."""
    choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None)
    if choices is None and HydraConfig.initialized():  # a single run's task config has no hydra node
        choices = HydraConfig.get().runtime.choices
    chosen = None if choices is None else choices.get("sweep")
    if chosen is not None and chosen not in sweep_files():
        raise ConfigError(f"sweep={chosen}: no such sweep (no sweeps/{chosen}.yaml); the sweeps are: "
                          f"{', '.join(sweep_files())}")


def composition_problem(error):
    """What Hydra could not compose (a key or a type the schemas refuse), with the key: its own
    message, then its cause's (OmegaConf's, which names the key)."""
    cause = f"\n{error.__cause__}" if error.__cause__ is not None else ""
    return f"  - {error}{cause}".replace("\n", "\n    ")


def schema_problems(cfg, container):
    """The rules of the job's schema (job_schema.Job: codistill.yaml's own keys) and of each group's
    (the one its config file named), and the schemas' absence."""
    problems, schemas = [], {}
    if OmegaConf.get_type(cfg) is not Job:
        problems.append("codistill.yaml: names no schema for its own keys; its defaults must begin with "
                        "/schema/codistill@_here_")
    else:
        problems += problems_of({key: value for key, value in container.items() if key not in SCHEMAS}, Job, "")
    for group, known in SCHEMAS.items():
        schema = OmegaConf.get_type(cfg, group)
        if not dataclasses.is_dataclass(schema):
            problems.append(f"{group}: its config file names no schema; its defaults must begin with "
                            f"/schema/{group}/<name> (one of {', '.join(known)}), as in method/codistill.yaml")
            continue
        schemas[group] = schema
        problems += problems_of(container[group], schema, group)
    return problems, schemas


def _resolved(cfg, key):
    node = cfg._get_node(key)
    if OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    return cfg[key]   # a value (an interpolation resolved; MissingMandatoryValue where it is ???)


def validate(cfg):
    """Raises ConfigError listing every problem of a composed job config (Hydra has checked its
    types); returns the resolved job as a plain dict."""
    check_sweep_choice(cfg)
    try:
        # each top-level node resolved in place (interpolations read the whole config, hydra's node
        # included), hydra's own node left out: a masked copy would deep-copy the config per job
        container = {key: _resolved(cfg, key) for key in cfg if key != "hydra"}
    except Exception as error:  # an interpolation that cannot resolve names its key itself
        raise ConfigError(f"config does not resolve: {error}") from error
    problems, schemas = schema_problems(cfg, container)
    if len(schemas) < len(SCHEMAS):   # the checks below read values of the schemas' types
        raise ConfigError("invalid job:\n  - " + "\n  - ".join(problems))
    check_method(container["method"], schemas["method"], problems)
    check_prediction_topk(container["method"], container["workload"], problems)
    check_layout(container["scale"], problems)
    translation = is_fairseq(container)
    schedule = container["schedule"]
    if translation:  # fairseq recipes: their own schedule keys (translation/checks.py)
        check_translation_job(container, problems)
    elif schedule.get("kind") in FAIRSEQ_SCHEDULE_KINDS:   # only the fairseq recipes have a kind
        problems.append(f"schedule.name={schedule['name']!r}: a {schedule['kind']} recipe; workload "
                        f"{container['workload']['name']!r} needs a vision schedule (e.g. goyal_step)")
    else:
        check_schedule(container["schedule"], problems)
        check_updates(container, problems)
        check_models(container["workload"], container["method"], problems)
    check_own_method_workload(container, translation, problems)
    check_top_level(container, translation, problems)
    check_launcher(container, problems)
    check_torchft(container, problems)
    if problems:
        raise ConfigError("invalid job:\n  - " + "\n  - ".join(problems))
    return container


def schema_of(group, node):
    """The schema a validated group node (a plain dict) was composed with, told by its values as
    `validate` told it by its config file: the schema of the group whose identifying fields (`name`,
    `kind`, `task`, where a rule names the values they allow) accept the node's values, the most
    specific first (a vision schedule has none of them)."""
    def identifying(schema):
        return [f for f in dataclasses.fields(schema) if f.name in ("name", "kind", "task") and RULE in f.metadata]

    def accepts(schema):
        return all(f.name in node and f.metadata[RULE].holds(node[f.name]) for f in identifying(schema))

    fitting = sorted((schema for schema in SCHEMAS[group].values() if accepts(schema)),
                     key=lambda schema: -len(identifying(schema)))
    if not fitting or len(fitting) > 1 and len(identifying(fitting[0])) == len(identifying(fitting[1])):
        raise ConfigError(f"{group}: no single schema of {', '.join(SCHEMAS[group])} fits {group}.name="
                          f"{node.get('name')!r}")
    return fitting[0]


def _typed(values, schema, key):
    """`values` (a plain dict) merged onto `schema`, nested schemas too; a key the schema lets a
    config add (`optional_keys`, e.g. data.holdout) is kept untyped."""
    node, declared = OmegaConf.structured(schema), {f.name: f for f in dataclasses.fields(schema)}
    for name, value in values.items():
        field = declared.get(name)
        nested = None if field is None else dataclass_in(field.type)
        if nested is not None and isinstance(value, dict):
            value = _typed(value, nested, f"{key}.{name}" if key else name)
        if field is None:
            if name not in getattr(schema, "optional_keys", {}) and getattr(schema, "closed", False):
                raise ConfigError(f"{key or 'the job'}: {name!r} is not a key of {schema.__name__}")
            with open_dict(node):
                node[name] = value
        else:
            node[name] = value   # checked against the field's type (omegaconf.ValidationError names the key)
    return node


def typed_job(container):
    """The typed config of a validated job: `container` (what `validate` returns, a plain dict of
    resolved values: what submitit pickles for each rank) merged onto job_schema.Job, each group
    onto the schema `validate` checked it with (`schema_of`). Every value keeps its declared type
    (`cfg.method.period` is an int; a Number stays as written), attribute access works, and a key
    or a value of the wrong type is refused (omegaconf's ValidationError or ConfigError, naming
    the key). `OmegaConf.to_container(typed_job(c)) == c`."""
    groups = {group: _typed(container[group], schema_of(group, container[group]), group) for group in SCHEMAS}
    job = _typed({key: value for key, value in container.items() if key not in SCHEMAS}, Job, "")
    for group, node in groups.items():
        job[group] = node
    missing = sorted(OmegaConf.missing_keys(job))
    if missing:
        raise ConfigError(f"typed_job: the job has no value for {', '.join(missing)}")
    return job
