"""The checks no schema can say: those that relate several values (of one group or of several, the
top-level keys' included: their schema is job_schema.py's) or that work out what the run will do
(its updates, its nodes). Each appends 'key=value: why' to `problems`; the values are a resolved
job's (a plain dict) whose types hold (Hydra checked them as it composed the job); the rules declared
on the schemas' fields (choices, bounds: rules.problems_of) are checked before these."""
import importlib.util

from ..names import GLOBAL_BATCH_METHODS, MODEL_KEYS, OWN_METHODS
from .schema import Codistill, PowerSGD, StreamingDiLoCo

# Training set sizes of the workloads whose config does not state one (their data on disk).
KNOWN_TRAIN_SIZES = {"cifar10": 50000}
# Classes of the workloads whose config does not state them (vision/workloads.py, tabular.py build them).
KNOWN_CLASSES = {"digits_mlp": 10, "multiview_mini": 10, "criteo": 2, "criteo_mini": 2}


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_whole(value):
    return _is_number(value) and float(value).is_integer() and value >= 1


def check_method(method, schema, problems):
    if schema is Codistill:
        if method["prediction_bits"] != 32 and method["exchange"] != "predictions":
            problems.append(f"method.prediction_bits={method['prediction_bits']!r} applies to method.exchange="
                            "predictions only (checkpoints: method.checkpoint_bits); leave it at 32")
        if method["prediction_topk"] is not None and method["exchange"] != "predictions":
            problems.append(f"method.prediction_topk={method['prediction_topk']!r} applies to method.exchange="
                            "predictions only (checkpoints send parameters, not logits); leave it null")
        compressed = [f"method.{key}={method[key]!r}" for key, plain in (("checkpoint_bits", 32),
                                                                         ("checkpoint_delta_fraction", None))
                      if method[key] != plain]
        if compressed and (method["exchange"] == "predictions" or method["transport"] == "files"):
            problems.append(f"{' and '.join(compressed)}: compresses checkpoints exchanged through collectives only "
                            f"(method.exchange=checkpoints or sharded_checkpoints, method.transport=collectives; got "
                            f"{method['exchange']!r} through {method['transport']!r})")
        if len(compressed) == 2:
            problems.append(f"{' and '.join(compressed)}: one or the other (checkpoints travel quantised or as sparse "
                            "deltas, not both); leave one at its default")
        if method["transport"] == "files" and method["exchange"] != "checkpoints":
            problems.append(f"method.transport=files: models in separate jobs exchange checkpoints through files; "
                            f"method.exchange={method['exchange']!r} needs every model in one world "
                            "(set method.exchange=checkpoints, or method.transport=collectives)")
        if method["exchange"] == "predictions" and not method["coordinated_sampling"]:
            problems.append("method.coordinated_sampling=false: exchanging predictions needs every model to see "
                            "the same mini-batch; set it true or use method.exchange=checkpoints")
    if schema is StreamingDiLoCo:
        period, fragments, delay = method["period"], method["fragments"], method["fragment_sync_delay"]
        if period % fragments:
            problems.append(f"method.fragments={fragments!r}: must divide method.period={period!r} (torchft's DiLoCo "
                            "syncs one fragment every period / fragments updates)")
        elif not delay < period // fragments:
            problems.append(f"method.fragment_sync_delay={delay!r}: must be below method.period / method.fragments "
                            f"= {period // fragments} (a fragment's all_reduce must end before the next one starts)")
    if schema is PowerSGD and (method["error_feedback"] or method["warm_start"]) and method["start_iter"] < 2:
        problems.append(f"method.start_iter={method['start_iter']!r}: must be an integer >= 2 with error_feedback "
                        "or warm_start (torch's PowerSGDState needs it: DDP rebuilds its buckets after the first "
                        "update)")


def check_prediction_topk(method, workload, problems):
    """A top-k prediction exchange sends at most the workload's classes per example."""
    topk = method.get("prediction_topk")
    classes = workload.get("num_classes", KNOWN_CLASSES.get(workload["name"]))
    if _is_number(topk) and _is_number(classes) and topk > classes:
        problems.append(f"method.prediction_topk={topk!r}: at most the workload's {classes} classes travel per "
                        f"example ({workload['name']}; k = {classes} sends them all)")


def check_layout(scale, problems):
    ranks, per_node = scale["ranks_per_model"], scale["ranks_per_node"]
    if _is_whole(ranks) and _is_whole(per_node) and int(ranks) % int(per_node) and int(per_node) % int(ranks):
        problems.append(f"scale.ranks_per_model={ranks!r} does not fit nodes of scale.ranks_per_node="
                        f"{per_node!r}: one must divide the other")


def check_schedule(schedule, problems):
    """A vision schedule's milestones and warm-up inside its epochs, a weight decay per interval."""
    epochs, lr, wd = schedule["epochs"], schedule["lr"], schedule["weight_decay"]
    listed = [*lr["milestones"], *wd["milestones"], *wd["values"]]
    if not epochs > 0 or not all(map(_is_number, listed)):
        return   # named by its rule
    if not 0 <= lr["warmup_epochs"] <= epochs:
        problems.append(f"schedule.lr.warmup_epochs={lr['warmup_epochs']!r}: must be in [0, schedule.epochs={epochs}]")
    for key, milestones in (("lr.milestones", lr["milestones"]), ("weight_decay.milestones", wd["milestones"])):
        if milestones != sorted(milestones) or any(not 0 < m < epochs for m in milestones):
            problems.append(f"schedule.{key}={milestones}: must be increasing and inside (0, {epochs})")
    if len(wd["values"]) != len(wd["milestones"]) + 1:
        problems.append(f"schedule.weight_decay.values={wd['values']}: needs one value more than "
                        f"schedule.weight_decay.milestones={wd['milestones']}")


def check_models(workload, method, problems):
    """workload.models: one entry per model group with that group's own model settings."""
    models = workload["models"]   # every vision workload's schema has it
    if models is None:
        return
    if len(models) != method["n"]:
        problems.append(f"workload.models={models!r}: needs one entry per model (method.n={method['n']})")
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


def check_own_method_workload(container, translation, problems):
    """PowerSGD, local SGD and DiLoCo train copies of one model in this engine (vision); two_phase is
    this engine's too."""
    name = container["method"]["name"]
    if name == "two_phase" and translation:
        problems.append("method.name='two_phase': the two-phase distillation is the training engine's "
                        "(training/two_phase.py); use it with a workload it runs (e.g. workload=clusters_resnet)")
    if name not in OWN_METHODS:
        return
    if translation:
        problems.append(f"method.name={name!r}: the translation workloads train through fairseq, which has no "
                        f"{name}; use it with a vision workload (e.g. workload=clusters_resnet)")
    elif container["workload"]["models"] is not None:
        problems.append(f"workload.models: {name} averages copies of one model; per-model architectures are for "
                        "method=codistill or independent (set workload.models=null)")
    method = container["method"]
    if name == "sparseloco" and method["top_k"] > method["chunk_size"] ** 2:
        problems.append(f"method.top_k={method['top_k']}: at most a chunk's method.chunk_size^2 = "
                        f"{method['chunk_size'] ** 2} values can be kept")


def check_torchft(container, problems):
    """method=streaming_diloco trains through torchft, an optional extra; a dry run trains nothing."""
    if container["method"]["name"] == "streaming_diloco" and not container["dry_run"] \
            and importlib.util.find_spec("torchft") is None:
        problems.append("method.name='streaming_diloco': trains through torchft, which is not installed; install "
                        "the extra: pip install -e '.[torchft]' (docs/setup.md)")


def check_launcher(container, problems):
    launcher = container["launcher"]
    if launcher["name"] != "slurm":
        return
    if not launcher["partition"]:
        problems.append("launcher.partition=None: no Slurm partition configured; set it in src/conf/site/local.yaml "
                        "(see src/conf/site/example.yaml), in CODISTILL_SLURM_PARTITION, or with "
                        "launcher.partition=<name> on the command line")
    per_node = launcher["tasks_per_node"]
    if container["job_ranks"] % per_node:
        problems.append(f"job_ranks={container['job_ranks']} ranks do not fill nodes of "
                        f"launcher.tasks_per_node={per_node} evenly")
    if not launcher["signal_delay_s"] < 60 * launcher["time_limit_min"]:
        problems.append(f"launcher.signal_delay_s={launcher['signal_delay_s']!r}: must be below the time limit "
                        f"(launcher.time_limit_min={launcher['time_limit_min']!r})")


def check_updates(container, problems):
    """At least one batch per model in the training set left by data.fraction, and at least one
    update (hence one evaluation, at the run's end), worked out as the engine does (vision
    workloads of known size)."""
    workload, scale, method = container["workload"], container["scale"], container["method"]
    size = workload.get("train_size", KNOWN_TRAIN_SIZES.get(workload["name"]))
    fraction, epoch_scale = container["data"]["fraction"], container["epoch_scale"]
    numbers = (size, fraction, epoch_scale, scale["batch_per_rank"], scale["ranks_per_model"])
    if not all(_is_number(value) and value > 0 for value in numbers):
        return   # not known here, or already refused by its own check
    ranks = container["world_size"] if method["name"] in GLOBAL_BATCH_METHODS else scale["ranks_per_model"]
    batch = int(scale["batch_per_rank"]) * int(ranks)
    holdout = container["data"].get("holdout", 0)
    size = size - holdout if isinstance(holdout, int) and 0 < holdout < size else size   # held out of training
    samples = size if fraction >= 1 else round(size * fraction)
    shards = ""
    if container["data"]["split"] == "disjoint" and _is_whole(method["n"]):
        samples //= method["n"]   # each model its own shard (sampling.model_shard)
        shards = f" in each model's shard (data.split=disjoint, method.n={method['n']})"
    steps_per_epoch = samples // batch
    if steps_per_epoch == 0:
        problems.append(f"data.fraction={fraction!r}: leaves {samples} training samples{shards}, fewer than one "
                        f"batch of {batch} per model (scale.batch_per_rank={scale['batch_per_rank']} x {ranks} "
                        "ranks); raise data.fraction or lower the batch")
        return
    epochs = container["schedule"]["epochs"]
    stretch = epoch_scale / fraction * workload.get("epoch_scale", 1.0)   # as schedules.run_schedules
    updates = int(round(epochs * stretch * steps_per_epoch))
    if updates < 1:
        problems.append(f"epoch_scale={epoch_scale!r}: gives {epochs * epoch_scale / fraction:g} epochs of "
                        f"{steps_per_epoch} updates, i.e. no update and no evaluation; raise epoch_scale "
                        "(or schedule.epochs)")


def check_top_level(container, translation, problems):
    """The keys of codistill.yaml itself (and data.holdout, which a sweep may add) against the other
    values: their types and bounds are job_schema.Job's."""
    data, train_size, method = container["data"], container["workload"].get("train_size"), container["method"]
    holdout = data.get("holdout", 0)   # an optional key: absent, nothing is held out
    if isinstance(holdout, int) and isinstance(train_size, int) and 0 < train_size <= holdout:
        problems.append(f"data.holdout={holdout!r}: must be below workload.train_size ({train_size}) (training "
                        "samples held out for evaluation)")
    elif holdout and translation:
        problems.append("data.holdout: held-out tuning data is implemented for the vision workloads only")
    model_job, n = container["model_job"], method["n"]
    if model_job is not None and model_job >= 0 and (method.get("transport") != "files" or model_job >= n):
        problems.append(f"model_job={model_job!r}: names the one model (0 to {n - 1}) a job trains when the models "
                        "are independent jobs (method.transport=files); leave it null otherwise")
    if method["name"] == "two_phase" and container["init_seed"] is not None:
        problems.append(f"init_seed={container['init_seed']!r}: two_phase initialises its teachers and its students "
                        "each from its own seed (seed x 1000 + index), which one init_seed would make the same; "
                        "leave it null")
    if container["update_pause_s"] and translation:
        problems.append(f"update_pause_s={container['update_pause_s']!r}: pausing after each update is implemented "
                        "for the torch engine's workloads only (fairseq trains the translation workloads); leave it at 0")
    if container["save_predictions"] and translation:
        problems.append("save_predictions=true: saving validation predictions is implemented for the vision "
                        "workloads only")
    check_data_split(container, translation, problems)
    if container["supervised"]["label_smoothing"] and translation:
        problems.append(f"supervised.label_smoothing={container['supervised']['label_smoothing']!r}: the "
                        "translation workloads smooth labels through their schedule (schedule.label_smoothing); "
                        "leave supervised.label_smoothing at 0")


def check_data_split(container, translation, problems):
    """data.split=disjoint: model i of n trains on shard i of n (Anil et al. 2018 Sec. 3.3.2)."""
    if container["data"]["split"] != "disjoint":
        return
    method = container["method"]
    if translation:
        problems.append("data.split=disjoint: disjoint training shards are implemented for the vision "
                        "workloads only")
        return
    if method["n"] < 2:
        problems.append(f"data.split=disjoint: needs method.n >= 2 models to give each its shard "
                        f"(method.n={method['n']!r})")
    if method["name"] == "codistill":
        if method["exchange"] not in ("checkpoints", "sharded_checkpoints"):
            problems.append(f"data.split=disjoint: method.exchange={method['exchange']!r} sends the predictions of "
                            "one mini-batch, which models on disjoint shards do not share; set "
                            "method.exchange=checkpoints (or sharded_checkpoints)")
    elif method["name"] != "independent":
        problems.append(f"data.split=disjoint: method.name={method['name']!r}; disjoint shards are for "
                        "method=codistill (exchange=checkpoints) and method=independent")
