"""Config resolvers and compose-time validation.

`validate` runs before anything trains or is queued (single runs, every job of a sweep, and
`dry_run=true`); each problem names the key, the value and what is allowed.
"""
import math
import re
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from .data_checks import check_cifar_root, check_imagefolder_root
from codistill.choices import DISTILL_LOSSES

from .names import MINI_ARCHS, MINI_RESNETS, MODEL_KEYS, SCENARIOS
from .translation.checks import (TRANSLATION_WORKLOADS, check_translation_job, is_translation,
                                 workload_data_problem)

METHODS = ("allreduce", "codistill", "independent", "powersgd", "localsgd", "diloco")
EXCHANGES = ("predictions", "checkpoints", "sharded_checkpoints")
PREDICTION_BITS = (32, 16)
ALPHA_SCHEDULES = ("constant", "step", "exponential")
LR_KINDS = ("step", "cosine")
WORKLOADS = ("digits_mlp", "clusters_resnet", "imagenet", "cifar10", "multiview_mini", *TRANSLATION_WORKLOADS)
SCALES = ("mini", "paper")


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


def register_resolvers():
    resolvers = (("mul", _mul), ("default", _default), ("v100_constraint", _v100_constraint),
                 ("whole", _whole),
                 ("int_min", lambda *values: int(min(values))), ("int_div", lambda a, b: int(a // b)))
    for name, resolver in resolvers:
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)


register_resolvers()


class ConfigError(ValueError):
    pass


def data_problem(container):
    """Why the job's data cannot be read on this machine, or None. Checked before a run starts or
    a sweep launches (a dry run only warns: it may be preparing a cluster's jobs elsewhere)."""
    workload = container["workload"]
    if is_translation(container):
        return workload_data_problem(workload)
    if workload["name"] == "imagenet":
        return check_imagefolder_root(workload["data_root"])
    if workload["name"] == "cifar10":
        pretrained = workload["pretrained"]
        if workload["scenario"].startswith("pretrained") and not (pretrained and Path(pretrained).is_file()):
            return (f"workload.pretrained={pretrained!r}: scenario {workload['scenario']} needs the weights of "
                    "a Wide-ResNet trained with workload.scenario=full: run sweep=wrn_pretrain at the same scale, "
                    "then pass workload.pretrained=<results>/runs/<its run id>/model0.pt (README, \"Paper scale\")")
        return check_cifar_root(workload["data_root"])
    return None


def _is_whole(value):
    return isinstance(value, (int, float)) and float(value).is_integer() and value >= 1


def _check_method(method, problems):
    name = method.get("name")
    if name not in METHODS:
        problems.append(f"method.name={name!r}: unknown method; allowed: {', '.join(METHODS)}")
        return
    n = method.get("n")
    if name == "allreduce" and n != 1:
        problems.append(f"method.n={n!r}: allreduce trains one model; use method.n=1")
    if name == "independent" and not (isinstance(n, int) and n >= 1):
        problems.append(f"method.n={n!r}: independent needs an integer n >= 1")
    if name in FRONTIER_CHECKS:
        FRONTIER_CHECKS[name](method, problems)
        return
    if name != "codistill":
        return
    if not (isinstance(n, int) and n >= 2):
        problems.append(f"method.n={n!r}: codistillation needs an integer n >= 2 models")
    if method.get("exchange") not in EXCHANGES:
        problems.append(f"method.exchange={method.get('exchange')!r}: allowed: {', '.join(EXCHANGES)}")
    bits = method.get("prediction_bits", 32)
    if bits not in PREDICTION_BITS:
        problems.append(f"method.prediction_bits={bits!r}: logits travel in 32- or 16-bit floats; allowed: 32, 16")
    elif bits != 32 and method.get("exchange") != "predictions":
        problems.append(f"method.prediction_bits={bits!r} applies to method.exchange=predictions only "
                        "(checkpoints send the parameters in their own dtype); leave it at 32")
    period = method.get("period")
    if not (isinstance(period, int) and period >= 1):
        problems.append(f"method.period={period!r}: the exchange period T must be an integer >= 1")
    if method.get("loss") not in DISTILL_LOSSES:
        problems.append(f"method.loss={method.get('loss')!r}: allowed: {', '.join(DISTILL_LOSSES)}")
    temperature = method.get("temperature", 1.0)
    if isinstance(temperature, bool) or not (isinstance(temperature, (int, float)) and temperature > 0):
        problems.append(f"method.temperature={temperature!r}: must be a number > 0 (kl and soft_ce divide the "
                        "logits by it)")
    alpha = method.get("alpha")
    if not (isinstance(alpha, (int, float)) and alpha >= 0):
        problems.append(f"method.alpha={alpha!r}: must be a number >= 0")
    if method.get("alpha_schedule") not in ALPHA_SCHEDULES:
        problems.append(f"method.alpha_schedule={method.get('alpha_schedule')!r}: allowed: "
                        f"{', '.join(ALPHA_SCHEDULES)}")
    gamma = method.get("alpha_gamma")
    if not (isinstance(gamma, (int, float)) and gamma > 0):
        problems.append(f"method.alpha_gamma={gamma!r}: must be > 0")
    burn_in = method.get("burn_in_steps")
    if not (isinstance(burn_in, int) and burn_in >= 0):
        problems.append(f"method.burn_in_steps={burn_in!r}: must be an integer >= 0")
    if method.get("exchange") == "predictions" and not method.get("coordinated_sampling"):
        problems.append("method.coordinated_sampling=false: exchanging predictions needs every "
                        "model to see the same mini-batch; set it true or use method.exchange=checkpoints")


def _is_int(value, minimum):
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_powersgd(method, problems):
    if method.get("n") != 1:
        problems.append(f"method.n={method.get('n')!r}: powersgd trains one model over all ranks; use method.n=1")
    if not _is_int(method.get("rank"), 1):
        problems.append(f"method.rank={method.get('rank')!r}: PowerSGD's matrix approximation rank must be an "
                        "integer >= 1")
    for key in ("error_feedback", "warm_start"):
        if not isinstance(method.get(key), bool):
            problems.append(f"method.{key}={method.get(key)!r}: must be true or false")
    start, memories = method.get("start_iter"), method.get("error_feedback") or method.get("warm_start")
    if not _is_int(start, 2 if memories else 0):
        problems.append(f"method.start_iter={start!r}: must be an integer >= {2 if memories else 0} (torch's "
                        "PowerSGDState needs >= 2 with error_feedback or warm_start: DDP rebuilds its buckets "
                        "after the first update)")
    rate = method.get("min_compression_rate")
    if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and rate >= 0):
        problems.append(f"method.min_compression_rate={rate!r}: must be a number >= 0")


def _check_averaging(method, problems):
    """localsgd and diloco: n groups averaged every `period` updates."""
    name, n = method["name"], method.get("n")
    if not _is_int(n, 2):
        problems.append(f"method.n={n!r}: {name} averages n >= 2 model groups; use an integer n >= 2")
    if not _is_int(method.get("period"), 1):
        problems.append(f"method.period={method.get('period')!r}: H (updates between averagings) must be an "
                        "integer >= 1")
    if name == "localsgd" and not _is_int(method.get("warmup_steps"), 0):
        problems.append(f"method.warmup_steps={method.get('warmup_steps')!r}: must be an integer >= 0 (0: no "
                        "post-local SGD warm-up)")
    if name != "diloco":
        return
    outer_lr, momentum = method.get("outer_lr"), method.get("outer_momentum")
    if isinstance(outer_lr, bool) or not (isinstance(outer_lr, (int, float)) and outer_lr > 0):
        problems.append(f"method.outer_lr={outer_lr!r}: must be a number > 0")
    if isinstance(momentum, bool) or not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        problems.append(f"method.outer_momentum={momentum!r}: must be a number in [0, 1)")


FRONTIER_CHECKS = {"powersgd": _check_powersgd, "localsgd": _check_averaging, "diloco": _check_averaging}


def _check_layout(scale, problems):
    if scale.get("name") not in SCALES:
        problems.append(f"scale.name={scale.get('name')!r}: allowed: {', '.join(SCALES)}")
    ranks, per_node, batch = scale.get("ranks_per_model"), scale.get("ranks_per_node"), scale.get("batch_per_rank")
    if not _is_whole(ranks):
        problems.append(f"scale.ranks_per_model={ranks!r}: must be a whole number >= 1 "
                        "(check batch_scale: at paper scale it multiplies the GPUs per model)")
    if not _is_whole(per_node):
        problems.append(f"scale.ranks_per_node={per_node!r}: must be a whole number >= 1")
    if not _is_whole(batch):
        problems.append(f"scale.batch_per_rank={batch!r}: must be a whole number >= 1 "
                        "(check batch_scale: at mini scale it multiplies the per-rank batch)")
    if _is_whole(ranks) and _is_whole(per_node) and int(ranks) % int(per_node) and int(per_node) % int(ranks):
        problems.append(f"scale.ranks_per_model={ranks!r} does not fit nodes of scale.ranks_per_node="
                        f"{per_node!r}: one must divide the other")


def _check_models(workload, method, problems):
    """workload.models: one entry per model group with that group's own model settings."""
    models = workload.get("models")
    if models is None:
        return
    if not isinstance(models, list) or len(models) != method.get("n"):
        problems.append(f"workload.models={models!r}: needs one entry per model (method.n={method.get('n')})")
        return
    allowed = MODEL_KEYS[workload["name"]]
    for index, spec in enumerate(models):
        unknown = set(spec or {}) - allowed
        if unknown:
            problems.append(f"workload.models[{index}]: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        classes = (spec or {}).get("num_classes", workload.get("num_classes"))
        if classes != workload.get("num_classes"):
            problems.append(f"workload.models[{index}].num_classes={classes!r} differs from workload.num_classes="
                            f"{workload.get('num_classes')!r}: codistilled models must predict the same classes")


def _check_frontier_workload(container, translation, problems):
    """PowerSGD, local SGD and DiLoCo train copies of one model in this engine (vision)."""
    name = container["method"].get("name")
    if name not in FRONTIER_CHECKS:
        return
    if translation:
        problems.append(f"method.name={name!r}: the translation workloads train through fairseq, which has no "
                        f"{name}; use it with a vision workload (e.g. workload=clusters_resnet)")
    elif container["workload"].get("models") is not None:
        problems.append(f"workload.models: {name} averages copies of one model; per-model architectures are for "
                        "method=codistill or independent (set workload.models=null)")


def _check_launcher(container, problems):
    launcher = container["launcher"]
    if launcher.get("name") != "slurm":
        return
    if not launcher.get("partition"):
        problems.append("launcher.partition=None: no Slurm partition configured; set it in src/conf/site/local.yaml "
                        "(see src/conf/site/example.yaml), in CODISTILL_SLURM_PARTITION, or with "
                        "launcher.partition=<name> on the command line")
    per_node = launcher["tasks_per_node"]
    if container["world_size"] % per_node:
        problems.append(f"world_size={container['world_size']} ranks do not fill nodes of "
                        f"launcher.tasks_per_node={per_node} evenly")
    if not (isinstance(launcher.get("max_requeues"), int) and launcher["max_requeues"] >= 0):
        problems.append(f"launcher.max_requeues={launcher.get('max_requeues')!r}: must be an integer >= 0")
    if not 0 < launcher.get("signal_delay_s", 0) < 60 * launcher.get("time_limit_min", 0):
        problems.append(f"launcher.signal_delay_s={launcher.get('signal_delay_s')!r}: must be > 0 and below "
                        f"the time limit (launcher.time_limit_min={launcher.get('time_limit_min')!r})")


def _check_schedule(schedule, problems):
    epochs = schedule.get("epochs")
    if not (isinstance(epochs, (int, float)) and epochs > 0):
        problems.append(f"schedule.epochs={epochs!r}: must be > 0")
        return
    lr = schedule.get("lr", {})
    if lr.get("kind") not in LR_KINDS:
        problems.append(f"schedule.lr.kind={lr.get('kind')!r}: allowed: {', '.join(LR_KINDS)}")
    warmup = lr.get("warmup_epochs", 0)
    if not 0 <= warmup <= epochs:
        problems.append(f"schedule.lr.warmup_epochs={warmup!r}: must be in [0, schedule.epochs={epochs}]")
    for key, milestones in (("lr.milestones", lr.get("milestones", [])),
                            ("weight_decay.milestones", schedule.get("weight_decay", {}).get("milestones", []))):
        milestones = list(milestones)
        if milestones != sorted(milestones) or any(not 0 < m < epochs for m in milestones):
            problems.append(f"schedule.{key}={milestones}: must be increasing and inside (0, {epochs})")
    wd = schedule.get("weight_decay", {})
    values, milestones = list(wd.get("values", [])), list(wd.get("milestones", []))
    if len(values) != len(milestones) + 1:
        problems.append(f"schedule.weight_decay.values={values}: needs one value more than "
                        f"schedule.weight_decay.milestones={milestones}")
    if any(v < 0 for v in values):
        problems.append(f"schedule.weight_decay.values={values}: must be >= 0")


def _check_eval_every(container, problems):
    """The engine evaluates (and commits the run's state) every eval_every_epochs x
    steps-per-epoch updates and at the end; a fraction of an epoch rarely gives a whole number of
    updates (steps per epoch depend on the data), so such a run would evaluate only at its end."""
    every = container.get("eval_every_epochs")
    if isinstance(every, bool) or not _is_whole(every):
        problems.append(f"eval_every_epochs={every!r}: must be a whole number of epochs >= 1 (the run evaluates "
                        "and saves its state every eval_every_epochs epochs and at its end)")


METHOD_CONFIGS = Path(__file__).resolve().parents[1] / "conf" / "method"
# Methods whose sample order and schedules follow all_reduce's global batch (vision/methods.py).
GLOBAL_BATCH_METHODS = ("localsgd", "diloco")
# Training set sizes of the workloads whose config does not state one (their data on disk).
KNOWN_TRAIN_SIZES = {"cifar10": 50000}


def _check_method_keys(method, problems):
    """A key added to the method (`+method.<key>=...`) that the chosen method's config does not
    define is read by nothing: refused, rather than silently ignored (and changing the run id)."""
    path = METHOD_CONFIGS / f"{method.get('name')}.yaml"
    if not path.is_file():
        return
    defined = set(OmegaConf.load(path).keys())
    for key in sorted(set(method) - defined):
        problems.append(f"method.{key}={method[key]!r}: method {method['name']} does not read this key (it reads "
                        f"{', '.join(sorted(defined))}); remove the override")


def _check_updates(container, problems):
    """At least one batch per model in the training set left by data.fraction, and at least one
    update (hence one evaluation, at the run's end), worked out as the engine does (vision
    workloads of known size)."""
    workload, scale, method = container["workload"], container["scale"], container["method"]
    size = workload.get("train_size", KNOWN_TRAIN_SIZES.get(workload.get("name")))
    fraction, epoch_scale = container["data"].get("fraction"), container.get("epoch_scale")
    numbers = (size, fraction, epoch_scale, scale.get("batch_per_rank"), scale.get("ranks_per_model"))
    if not all(isinstance(value, (int, float)) and value > 0 for value in numbers):
        return   # not known here, or already refused by its own check
    ranks = container.get("world_size") if method.get("name") in GLOBAL_BATCH_METHODS else scale["ranks_per_model"]
    batch = int(scale["batch_per_rank"]) * int(ranks)
    holdout = container["data"].get("holdout", 0)
    size = size - holdout if isinstance(holdout, int) and 0 < holdout < size else size   # held out of training
    samples = size if fraction >= 1 else round(size * fraction)
    steps_per_epoch = samples // batch
    if steps_per_epoch == 0:
        problems.append(f"data.fraction={fraction!r}: leaves {samples} training samples, fewer than one batch of "
                        f"{batch} per model (scale.batch_per_rank={scale['batch_per_rank']} x {ranks} ranks); "
                        "raise data.fraction or lower the batch")
        return
    epochs = container["schedule"].get("epochs")
    if not isinstance(epochs, (int, float)):
        return
    stretch = epoch_scale / fraction * workload.get("epoch_scale", 1.0)   # as schedules.run_schedules
    updates = int(round(epochs * stretch * steps_per_epoch))
    if updates < 1:
        problems.append(f"epoch_scale={epoch_scale!r}: gives {epochs * epoch_scale / fraction:g} epochs of "
                        f"{steps_per_epoch} updates, i.e. no update and no evaluation; raise epoch_scale "
                        "(or schedule.epochs)")


def sweep_files():
    """The ids of the sweeps there are (sweeps/*.yaml, the config group `sweep`)."""
    names = [path.stem for path in (Path(__file__).resolve().parents[1] / "conf" / "sweep").glob("*.yaml")]
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


def validate(cfg):
    """Raises ConfigError listing every problem of a composed job config."""
    check_sweep_choice(cfg)
    problems = []
    try:
        job = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])
        container = OmegaConf.to_container(job, resolve=True)
    except Exception as error:  # an interpolation that cannot resolve names its key itself
        raise ConfigError(f"config does not resolve: {error}") from error
    _check_method(container["method"], problems)
    _check_method_keys(container["method"], problems)
    _check_layout(container["scale"], problems)
    translation = is_translation(container)
    if translation:  # fairseq recipes: their own schedule keys (codistill/translation/checks.py)
        check_translation_job(container, problems)
    elif container["schedule"].get("kind") == "translation":
        problems.append(f"schedule.name={container['schedule'].get('name')!r}: a translation recipe; workload "
                        f"{container['workload'].get('name')!r} needs a vision schedule (e.g. goyal_step)")
    else:
        _check_schedule(container["schedule"], problems)
        _check_eval_every(container, problems)
        _check_updates(container, problems)
    workload = container["workload"].get("name")
    if workload not in WORKLOADS:
        problems.append(f"workload.name={workload!r}: allowed: {', '.join(WORKLOADS)}")
    elif not translation:
        _check_models(container["workload"], container["method"], problems)
    _check_frontier_workload(container, translation, problems)
    arch = container["workload"].get("arch")
    stand_ins = {"digits_mlp": MINI_ARCHS, "clusters_resnet": MINI_RESNETS}.get(workload)
    if stand_ins and arch is not None and arch not in stand_ins:
        problems.append(f"workload.arch={arch!r}: the mini stand-ins are {', '.join(stand_ins)}")
    if workload in ("cifar10", "multiview_mini") and container["workload"].get("scenario") not in SCENARIOS:
        problems.append(f"workload.scenario={container['workload'].get('scenario')!r}: allowed: {', '.join(SCENARIOS)}")
    fraction = container["data"].get("fraction")
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        problems.append(f"data.fraction={fraction!r}: must be in (0, 1] (1/k of the training set)")
    holdout = container["data"].get("holdout", 0)
    train_size = container["workload"].get("train_size")
    if not (isinstance(holdout, int) and holdout >= 0) or (
            holdout and isinstance(train_size, int) and holdout >= train_size):
        problems.append(f"data.holdout={holdout!r}: training samples held out for evaluation must be an integer "
                        f">= 0 and below workload.train_size ({train_size})")
    elif holdout and translation:
        problems.append("data.holdout: held-out tuning data is implemented for the vision workloads only")
    epoch_scale = container.get("epoch_scale")
    if not (isinstance(epoch_scale, (int, float)) and epoch_scale > 0):
        problems.append(f"epoch_scale={epoch_scale!r}: must be > 0 (it multiplies the schedule's epochs)")
    if not isinstance(container.get("seed"), int):
        problems.append(f"seed={container.get('seed')!r}: must be an integer")
    _check_launcher(container, problems)
    if problems:
        raise ConfigError("invalid job:\n  - " + "\n  - ".join(problems))
    return container
