"""Composition of every config group, and compose-time validation with messages naming the key."""
import dataclasses
import itertools
import json

import pytest
from conftest import CONF, ROOT, compose_job, covering
from forked_script import run_script
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from codistill_experiments import launch
from codistill_experiments.config import ConfigError, composition_problem, typed_job
from codistill_experiments.config.job_schema import Data, Job
from codistill_experiments.config.schema import Codistill, LocalLauncher, Scale, VisionSchedule
from codistill_experiments.config.translation_schema import TranslationMini, TranslationSchedule
from codistill_experiments.names import LM_SCHEDULES
from codistill_experiments.runlog import run_id
from codistill_experiments.training.engine import updates_between_evaluations
from codistill_experiments.translation.checks import TRANSLATION_SCHEDULES

GROUPS = {group: sorted(p.stem for p in (CONF / group).glob("*.yaml"))
          for group in ("workload", "method", "schedule", "scale", "launcher")}
# Translation recipes go with translation workloads: tests/test_translation_config.py composes those.
GROUPS["schedule"] = [name for name in GROUPS["schedule"] if name not in (*TRANSLATION_SCHEDULES, *LM_SCHEDULES)]


def test_every_group_has_its_options():
    assert GROUPS["method"] == ["allreduce", "codistill", "diloco", "independent", "localsgd", "muloco", "powersgd",
                                "sparseloco", "streaming_diloco", "two_phase"]
    assert GROUPS["scale"] == ["mini", "paper"]
    assert {"local", "submitit_local"} <= set(GROUPS["launcher"])


# `make test` composes the whole product (180 jobs, a quarter of this file's time); `make test-fast`
# composes at each scale a covering set of it, every method and every schedule at least once.
COVERING = covering(GROUPS["method"], GROUPS["schedule"])


@pytest.mark.parametrize("method, scale, schedule", [
    pytest.param(method, scale, schedule, marks=() if (method, schedule) in COVERING else pytest.mark.slow)
    for method, scale, schedule in itertools.product(GROUPS["method"], GROUPS["scale"], GROUPS["schedule"])])
def test_every_combination_composes_and_validates(tmp_path, method, scale, schedule):
    job = compose_job([f"method={method}", f"scale={scale}", f"schedule={schedule}"], tmp_path)
    assert job["scale"]["name"] == scale and job["method"]["name"] == method
    expected_ranks = {"mini": 1, "paper": 8}[scale] * (2 if method in ("allreduce", "powersgd") else 1)
    assert job["scale"]["ranks_per_model"] == expected_ranks


def test_the_fast_tiers_combinations_have_every_method_and_every_schedule():
    assert sorted({method for method, _ in COVERING}) == GROUPS["method"]
    assert sorted({schedule for _, schedule in COVERING}) == GROUPS["schedule"]
    assert len(COVERING) == max(len(GROUPS["method"]), len(GROUPS["schedule"]))


def test_scale_chooses_the_workload_and_batch(tmp_path):
    mini = compose_job(["method=codistill"], tmp_path, quick=False)
    paper = compose_job(["method=codistill", "scale=paper", "batch_scale=4"], tmp_path)
    assert mini["workload"]["name"] == "clusters_resnet" and mini["scale"]["batch_per_rank"] == 256
    assert paper["workload"]["name"] == "imagenet"
    assert paper["scale"]["ranks_per_model"] * paper["scale"]["batch_per_rank"] == 1024


@pytest.mark.slow
def test_run_id_depends_on_content_not_on_where_it_runs(tmp_path):
    a = compose_job(["method=codistill", "seed=1"], tmp_path)
    b = compose_job(["method=codistill", "seed=1", "launcher=submitit_local", "sweep_id=other"], tmp_path / "x")
    c = compose_job(["method=codistill", "seed=2"], tmp_path)
    assert run_id(a) == run_id(b) != run_id(c)
    assert run_id(a).startswith("mini-codistill-")


def test_interpolations_resolve_as_omegaconf_parses_them_each_time(tmp_path, monkeypatch):
    """The config package shares OmegaConf's parse trees of interpolation texts within a process
    (config/resolvers.py): a job resolves to what it resolves to with OmegaConf's own parser, and a
    text that does not parse raises at every access, not only the first."""
    import omegaconf
    from omegaconf import grammar_parser
    from omegaconf.errors import GrammarParseError

    text = "${mul:${scale.ranks_per_model},${scale.batch_per_rank}}"
    assert omegaconf.base.parse is not grammar_parser.parse
    assert omegaconf.base.parse(text) is omegaconf.base.parse(text)   # parsed once
    jobs = [["method=codistill"], ["scale=paper", "method=codistill", "launcher=slurm_v100", "launcher.partition=gpu"],
            ["workload=translation_mini", "method=codistill"], ["scale=paper", "workload=wmt16_transformer_big"]]
    shared = [compose_job(job, tmp_path) for job in jobs]
    for module in (omegaconf.base, omegaconf._utils):
        monkeypatch.setattr(module, "parse", grammar_parser.parse)
    assert shared == [compose_job(job, tmp_path) for job in jobs]
    monkeypatch.undo()
    for _ in range(2):
        with pytest.raises(GrammarParseError):
            OmegaConf.create({"a": 1, "b": "${a"})


def test_every_config_loader_reads_a_file_once_while_it_is_unchanged(tmp_path, monkeypatch):
    """Each hydra.compose builds a config loader of its own, as src/run.py does: all of them read a
    config file once per process (config/reads.py), and compose what Hydra composes reading every
    file each time. A file that changes is read again; another search path reads its own files; a
    composition that changes its config leaves the next one untouched."""
    import shutil

    from hydra import compose, initialize_config_dir
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.config_repository import ConfigRepository
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import open_dict

    from codistill_experiments.config import validate

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    read = []   # the configs read from their sources (Hydra's plugin scan reloads the sources' modules)

    def reading(repository, config_path):
        result = load(repository, config_path)
        if result is not None:   # a config the search path lacks is looked for again each time
            read.append(config_path)
        return result

    load = ConfigRepository.load_config
    monkeypatch.setattr(ConfigRepository, "load_config", reading)
    job = ["method=codistill", "method.period=7", f"results_root={tmp_path}"]

    def composed(directory=conf, change=None):
        read.clear()
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            cfg = compose("codistill", overrides=job)
        resolved = validate(cfg)
        if change:
            with open_dict(cfg):
                cfg.method.alpha = change
        return resolved, list(read)

    first, files = composed(change=123.0)
    assert "method/codistill" in files and "codistill" in files
    again, files = composed()
    assert files == [] and again == first and again["method"]["alpha"] == 1.0
    # the same job with every file read, as Hydra alone reads them
    shared = ConfigLoaderImpl.__init__
    monkeypatch.setattr(ConfigLoaderImpl, "__init__", shared.__wrapped__)
    plain, files = composed()
    assert plain == first and "method/codistill" in files
    monkeypatch.setattr(ConfigLoaderImpl, "__init__", shared)

    edited = conf / "method" / "codistill.yaml"
    edited.write_text(edited.read_text().replace("alpha: 1.0", "alpha: 0.5"))
    changed, files = composed()
    assert files == ["method/codistill"] and changed["method"]["alpha"] == 0.5
    other = tmp_path / "other"
    shutil.copytree(CONF, other)
    elsewhere, files = composed(other)
    assert elsewhere["method"]["alpha"] == 1.0 and "method/codistill" in files


@pytest.mark.parametrize("overrides, key", [
    (["method=codistill", "method.n=1"], "method.n"),
    (["method=codistill", "method.period=0"], "method.period"),
    (["method=codistill", "method.loss=hinge"], "method.loss"),
    (["method=codistill", "method.exchange=gradients"], "method.exchange"),
    (["method=codistill", "method.alpha=-1"], "method.alpha"),
    (["method=codistill", "method.alpha_gamma=0"], "method.alpha_gamma"),
    (["method=codistill", "method.coordinated_sampling=false"], "method.coordinated_sampling"),
    (["method=allreduce", "method.n=2"], "method.n"),
    (["scale=paper", "batch_scale=0.3"], "scale.ranks_per_model"),
    (["batch_scale=0.3"], "scale.batch_per_rank"),
    (["scale.ranks_per_model=3", "scale.ranks_per_node=2"], "scale.ranks_per_model"),
    (["schedule.lr.milestones=[60,30]"], "schedule.lr.milestones"),
    (["schedule.lr.warmup_epochs=100"], "schedule.lr.warmup_epochs"),
    (["schedule.weight_decay.values=[1e-4,0]"], "schedule.weight_decay.values"),
    (["eval_every_epochs=0"], "eval_every_epochs=0"),
    (["eval_every_epochs=-2"], "eval_every_epochs=-2"),
    (["+data.holdout=-1"], "data.holdout=-1: must be an integer >= 0"),
    (["+data.holdout=null"], "data.holdout=None: must be an integer >= 0"),   # an optional key has no null
    (["+data.split_seed=1"], "data.split_seed=1: data does not read this key"),
    (["+supervised.weight=0.1"], "supervised.weight=0.1: supervised does not read this key"),
    (["+epochs=3"], "epochs=3: the job does not read this key"),
    (["batch_scale=0"], "batch_scale=0: must be > 0"),
    (["seed=-1"], "seed=-1: must be an integer >= 0"),   # trained a full run once
    (["epoch_scale=-1"], "epoch_scale=-1: must be > 0 (it multiplies the schedule's epochs)"),
    (["update_pause_s=-0.1"], "update_pause_s=-0.1: must be >= 0"),
    (["workload=translation_mini", "method=independent", "update_pause_s=0.1"],
     "update_pause_s=0.1: pausing after each update is implemented for the torch engine's workloads only"),
])
def test_invalid_jobs_name_the_offending_key(tmp_path, overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        compose_job(overrides, tmp_path)


@pytest.mark.parametrize("override, key", [
    ("seed=abc", "seed"), ("init_seed=1.5", "init_seed"), ("eval_every_epochs=true", "eval_every_epochs"),
    ("save_predictions=maybe", "save_predictions"), ("dry_run=sometimes", "dry_run"),
    ("data.fraction=half", "data.fraction"),
    ("data.order_seed=x", "data.order_seed"), ("supervised.label_smoothing=[0.1]", "supervised.label_smoothing"),
    ("model_job=first", "model_job"), ("update_pause_s=long", "update_pause_s"),
    ("data.holdout=10", "data.holdout"),   # an optional key needs `+`
])
def test_the_top_level_keys_have_a_schema_that_hydra_checks_as_it_composes(tmp_path, override, key):
    with pytest.raises(ConfigCompositionException) as refused:
        compose_job([override], tmp_path)
    problem = composition_problem(refused.value)   # what the entry point and the sweeper print
    assert f"full_key: {key}" in problem or f"Could not override '{key}'" in problem, problem


@pytest.mark.slow
def test_a_validated_job_round_trips_through_its_typed_config(tmp_path):
    """typed_job: the plain dict that crosses process boundaries, back to the typed config the
    engine reads (every value of its declared type, attribute access), and back to the same dict."""
    job = compose_job(["method=codistill", "+data.holdout=100", "supervised.label_smoothing=0.1"], tmp_path)
    typed = typed_job(job)
    assert OmegaConf.to_container(typed) == job and json.dumps(OmegaConf.to_container(typed)) == json.dumps(job)
    assert OmegaConf.get_type(typed) is Job and OmegaConf.get_type(typed.data) is Data
    assert [OmegaConf.get_type(typed, group) for group in ("method", "scale", "schedule", "launcher")] == [
        Codistill, Scale, VisionSchedule, LocalLauncher]
    assert typed.method.period == job["method"]["period"] and typed.data.holdout == 100
    translation = compose_job(["workload=translation_mini", "method=independent"], tmp_path)
    typed = typed_job(translation)
    assert OmegaConf.to_container(typed) == translation
    assert (OmegaConf.get_type(typed, "workload"), OmegaConf.get_type(typed, "schedule")) == (
        TranslationMini, TranslationSchedule)


# One job per option of every group (the schemas typed_job must choose among), and the sweeps' extra keys.
ROUND_TRIPS = ([[f"workload={name}"] for name in sorted(p.stem for p in (CONF / "workload").glob("*.yaml"))]
               + [[f"method={name}"] for name in GROUPS["method"]]
               + [[f"schedule={name}"] for name in GROUPS["schedule"]]
               + [["scale=paper"], ["launcher=local_parallel"], ["launcher=submitit_local"],
                  ["launcher=slurm_v100", "launcher.partition=gpu"], ["launcher=slurm_local", "launcher.partition=cpu"],
                  ["method=codistill", "method.transport=files", "method.exchange=checkpoints", "model_job=1"],
                  ["+data.holdout=100", "+workload.weight_decay_scale=0.3", "epoch_scale=2", "data.fraction=0.5"],
                  ["workload=wmt16_transformer_big", "+workload.model.encoder_layers=2", "method=codistill"]])


@pytest.mark.parametrize("overrides", ROUND_TRIPS, ids=" ".join)
def test_every_option_of_every_group_round_trips_through_typed_job(tmp_path, overrides):
    job = compose_job(overrides, tmp_path)
    typed = typed_job(job)
    assert json.dumps(OmegaConf.to_container(typed)) == json.dumps(job)   # the same keys, values, types and order
    for group in ("schedule", "workload", "method", "launcher", "scale"):
        assert dataclasses.is_dataclass(OmegaConf.get_type(typed, group)), group


def test_a_shared_workload_field_sits_where_the_config_files_write_it():
    """The resolved config's keys are in its schema's order; a field several workload schemas share
    (declared once, placed by rules.shares) follows the key its workload file writes before it."""
    from omegaconf import OmegaConf as Conf

    from codistill_experiments.config.schema import SCHEMAS
    from codistill_experiments.config.translation_schema import LanguageModelTraining, TranslationTraining
    from codistill_experiments.config.workload_fields import EngineData, GpuSpeed

    shared = {field.name for group in (EngineData, GpuSpeed, TranslationTraining, LanguageModelTraining)
              for field in dataclasses.fields(group)}
    checked = set()
    for path in sorted((CONF / "workload").glob("*.yaml")):
        written = Conf.load(path)
        schemas = [entry.split("/schema/workload/")[1].split("@")[0] for entry in written.defaults
                   if isinstance(entry, str) and entry.startswith("/schema/workload/")]
        if not schemas:   # a variant of another workload file (iwslt14_transformer_big)
            continue
        fields = [field.name for field in dataclasses.fields(SCHEMAS["workload"][schemas[0]])]
        keys = [key for key in written if key != "defaults"]
        for name in shared & set(fields):
            assert keys[keys.index(name) - 1] == fields[fields.index(name) - 1], (path.name, name)
            checked.add(name)
    assert checked == shared


@pytest.mark.parametrize("path, value, key", [
    (("seed",), "abc", "seed"), (("method", "period"), "often", "period"), (("data", "fraction"), "all", "fraction"),
    (("dry_run",), "maybe", "dry_run"), (("schedule", "lr", "milestones"), "30", "milestones"),
])
def test_typed_job_refuses_a_value_of_the_wrong_type(tmp_path, path, value, key):
    job = compose_job(["method=codistill"], tmp_path)
    node = job
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(ValidationError, match=key):
        typed_job(job)


def test_the_engine_receives_the_typed_config(tmp_path, monkeypatch):
    """launch.train_typed hands engine.train_rank the typed config of the dict submitit pickled:
    the method's schema, ints as ints, and lists of numbers that iterate as numbers (omegaconf 2.3
    yields UnionNode wrappers when a List[Union[int, float]] is iterated, omegaconf#1310)."""
    received = []
    monkeypatch.setattr(launch, "train_rank", lambda cfg, *where: received.append(cfg))
    job = compose_job(["method=codistill", "schedule=goyal_step"], tmp_path)
    launch.train_typed(job, None, None, None)
    (cfg,) = received
    assert OmegaConf.get_type(cfg) is Job and OmegaConf.get_type(cfg, "method") is Codistill
    assert type(cfg.method.period) is int and cfg.method.period == job["method"]["period"]
    milestones = job["schedule"]["lr"]["milestones"]
    assert milestones and [m * 2 for m in cfg.schedule.lr.milestones] == [m * 2 for m in milestones]
    assert [type(v) for v in cfg.schedule.weight_decay["values"]] == [type(v) for v in job["schedule"]["weight_decay"]["values"]]


def test_a_list_of_numbers_with_a_word_in_it_is_refused_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"schedule.lr.milestones=\[30, 'x'\]"):
        compose_job(["schedule.lr.milestones=[30,x]"], tmp_path)


def test_typed_job_refuses_a_key_its_schema_does_not_have(tmp_path):
    job = compose_job(["method=codistill"], tmp_path)
    with pytest.raises(ConfigError, match="'epochs' is not a key of Job"):
        typed_job({**job, "epochs": 3})
    with pytest.raises(ConfigError, match="'holdout' is not a key of Job"):   # data.holdout belongs to data
        typed_job({**job, "holdout": 3})


def run_cli(*args, cwd):
    """`python src/run.py <args>` in cwd, in a fork of this process (tests/forked_script.py)."""
    return run_script([ROOT / "src" / "run.py", *args], cwd=cwd, timeout=300)


@pytest.mark.slow
def test_dry_run_prints_the_job_and_its_run_id_and_trains_nothing(tmp_path):
    done = run_cli("method=codistill", "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "run id: mini-codistill-" in done.stdout and "exchange: predictions" in done.stdout
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_invalid_job_exits_nonzero_naming_the_key(tmp_path):
    done = run_cli("method=codistill", "method.period=0", "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0 and "method.period=0" in done.stderr


@pytest.mark.slow
def test_dry_run_reports_every_bad_input_by_key(tmp_path):
    bad = {"method.n": "1", "method.period": "0", "method.loss": "hinge", "method.alpha": "-1",
           "method.alpha_gamma": "0", "method.coordinated_sampling": "false", "method.burn_in_steps": "-5",
           "schedule.lr.warmup_epochs": "100", "schedule.lr.milestones": "[60,30]",
           "schedule.weight_decay.milestones": "[10,200]", "scale.ranks_per_model": "3",
           "scale.ranks_per_node": "2"}
    done = run_cli("method=codistill", *(f"{k}={v}" for k, v in bad.items()), "dry_run=true",
                   f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0
    for key in bad:
        assert f"{key}=" in done.stderr or f"{key} " in done.stderr, key
    for overrides, key in ((["method=codistill", "method.exchange=gradients"], "method.exchange='gradients'"),
                           (["method.name=sgd"], "method.name='sgd'"),
                           (["batch_scale=0.3"], "scale.batch_per_rank=76.8"),   # 256 x 0.3
                           (["method=codistill", "scale=paper", "workload.models=[{arch:resnet50},{num_classes:10}]"],
                            "workload.models[1].num_classes=10"),
                           (["data.fraction=0"], "data.fraction=0")):
        done = run_cli(*overrides, "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
        assert done.returncode != 0 and key in done.stderr, (overrides, done.stderr)


@pytest.mark.slow
def test_a_paper_run_without_imagenet_fails_before_training_and_says_what_layout_is_expected(tmp_path):
    done = run_cli("scale=paper", f"workload.data_root={tmp_path / 'imagenet'}", f"results_root={tmp_path}",
                   cwd=tmp_path)
    assert done.returncode != 0 and "train/<class>/<image>.JPEG" in done.stderr
    assert not (tmp_path / "runs").exists()
    # A dry run prepares jobs on machines without the data (a laptop, a login node): it warns,
    # naming the key, and the real launch is what refuses.
    dry = run_cli("scale=paper", f"workload.data_root={tmp_path / 'imagenet'}", "dry_run=true",
                  f"results_root={tmp_path}", cwd=tmp_path)
    assert dry.returncode == 0 and "warning: cannot run here yet: workload.data_root=" in dry.stdout


def test_per_model_settings_need_one_entry_per_model_and_the_same_classes(tmp_path):
    job = compose_job(["method=codistill", "method.n=3", "scale=paper",
                       "workload.models=[{arch:resnet18},{arch:resnet50},{arch:resnext101_32x8d}]"], tmp_path)
    assert [m["arch"] for m in job["workload"]["models"]] == ["resnet18", "resnet50", "resnext101_32x8d"]
    with pytest.raises(ConfigError, match=r"workload\.models=.*method\.n=2"):
        compose_job(["method=codistill", "workload.models=[{hidden:[64]}]"], tmp_path)
    with pytest.raises(ConfigError, match=r"workload\.models\[1\]\.num_classes=10 differs"):
        compose_job(["method=codistill", "scale=paper", "workload.models=[{arch:resnet50},{num_classes:10}]"],
                    tmp_path)


@pytest.mark.slow
def test_the_slurm_launcher_lays_a_job_out_on_8_gpu_nodes_and_needs_a_partition(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.setenv("CODISTILL_SLURM_PARTITION", "v100")
    for overrides, nodes, tasks in ((["method=codistill"], 2, 8),            # one 8-GPU server per model
                                    (["method=allreduce"], 2, 8),            # 16 GPUs on 2 servers
                                    (["method=codistill", "method.n=4", "batch_scale=0.5"], 2, 8),
                                    (["method=codistill", "batch_scale=0.5"], 1, 8)):  # 2 x 4 GPUs
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            # ~site: without a checkout's own site file, which could set any of these
            cfg = compose("codistill", overrides=["scale=paper", "launcher=slurm_v100", "~site", *overrides],
                          return_hydra_config=True)
        launcher = cfg.hydra.launcher
        assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (nodes, tasks, tasks)
        # no GPU feature asked for (its name is a site's, tests/test_slurm.py); memory: each rank's share,
        # 24 GB by default, so that a partition's per-CPU default does not starve ImageNet's loaders
        assert launcher.partition == "v100" and launcher.constraint is None and launcher.mem_gb == 24 * tasks
    monkeypatch.delenv("CODISTILL_SLURM_PARTITION")
    done = run_cli("-m", "sweep=fig2", "scale=paper", "launcher=slurm_v100", "dry_run=true",
                   f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0 and "launcher.partition=None" in done.stderr
    assert "Traceback" not in done.stderr


def test_whole_numbers_of_epochs_between_evaluations_are_accepted(tmp_path):
    assert compose_job(["eval_every_epochs=3"], tmp_path)["eval_every_epochs"] == 3
    assert compose_job(["eval_every_epochs=2.0"], tmp_path)["eval_every_epochs"] == 2.0


@pytest.mark.parametrize("every, steps_per_epoch, updates", [(1, 214, 214), (3, 53, 159), (0.12355, 429, 53),
                                                              (1.5, 214, 321), (0.001, 53, 1)])
def test_a_fraction_of_an_epoch_between_evaluations_is_the_nearest_whole_number_of_updates(every, steps_per_epoch,
                                                                                          updates):
    # int(0.3) was 0 once: a run evaluated only at its end
    assert updates_between_evaluations(every, steps_per_epoch) == updates


@pytest.mark.slow
def test_eval_every_zero_exits_nonzero_naming_the_key_before_anything_runs(tmp_path):
    done = run_cli("eval_every_epochs=0", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0 and "eval_every_epochs=0: must be > 0" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("args", [["-m", "sweep=fig99"], ["-m", "sweep=fig99", "dry_run=true"], ["sweep=fig99"],
                                  ["sweep=fig99", "dry_run=true"]])
def test_an_unknown_sweep_id_exits_nonzero_naming_it_and_the_sweeps_there_are(tmp_path, args):
    done = run_cli(*args, f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0
    assert "sweep=fig99: no such sweep" in done.stderr, done.stderr[-2000:]
    listed = done.stderr.split("the sweeps are: ")[1].strip().split(", ")
    assert set(listed) == {path.stem for path in (ROOT / "sweeps").glob("*.yaml")}
    assert listed.index("fig2") < listed.index("fig10")   # in natural order
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("overrides, key", [
    (["method=codistill", "method.loss=kl", "method.temperature=0"], "method.temperature=0:"),
    (["method=codistill", "method.temperature=-1"], "method.temperature=-1:"),
    (["method=codistill", "data.fraction=0.0255"], "data.fraction=0.0255: leaves 31 training samples"),
    (["method=codistill", "epoch_scale=0.0001"], "epoch_scale=0.0001: gives"),
    (["method=allreduce", "+method.alpha=-1"], "method.alpha=-1: method allreduce does not read this key"),
])
def test_each_check_that_once_failed_at_runtime_names_its_key_in_a_dry_run(tmp_path, overrides, key):
    done = run_cli("workload=digits_mlp", *overrides, "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0 and key in done.stderr and "Traceback" not in done.stderr, done.stderr
    sweep = run_cli("-m", "workload=digits_mlp", *overrides, "seed=0,1", f"results_root={tmp_path}", cwd=tmp_path)
    assert sweep.returncode != 0 and key in sweep.stderr, sweep.stderr   # refused before any job is queued
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_smallest_runnable_fraction_and_epoch_scale_pass_and_just_below_fail(tmp_path):
    # digits: 1200 training samples, 32 per model and update (mini scale, one rank per model);
    # 90 epochs of 37 updates. One batch needs 32 samples; one update needs 90 x 37 x epoch_scale >= 0.5.
    job = ["workload=digits_mlp", "method=codistill"]
    compose_job([*job, f"data.fraction={32 / 1200}"], tmp_path)
    compose_job([*job, "epoch_scale=0.0002"], tmp_path)
    with pytest.raises(ConfigError, match="leaves 31 training samples"):
        compose_job([*job, f"data.fraction={31 / 1200}"], tmp_path)
    with pytest.raises(ConfigError, match=r"epoch_scale=0.00014: gives 0.0126 epochs of 37 updates"):
        compose_job([*job, "epoch_scale=0.00014"], tmp_path)
