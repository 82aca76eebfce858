"""A Hydra sweeper for figure sweeps: the union of several grids, validated as a whole.

Hydra's basic sweeper runs one Cartesian product; a paper figure is usually a few of them
(Figure 2: three recipes x seeds, plus a batch-size panel). `hydra.sweeper.grids` lists them;
each grid is expanded by the basic sweeper's own parser, command-line sweep arguments apply to
every grid (and replace a grid's value for the same key), and a job that appears twice (same run
id) runs once. A grid that names a `scale` applies only when the sweep runs at that scale (a
filter, not an override): one sweep file holds a figure's paper-scale jobs and their mini
stand-ins where the two differ (another workload, exchange periods scaled to a mini epoch).
Every job is composed and validated before the first one is launched, so a bad override fails the
sweep before anything runs or is queued; with dry_run=true the jobs are listed and nothing is
launched. Jobs whose run has already finished (in this sweep or any other) are listed as done and
not launched again, so a rerun of a finished sweep queues nothing; nor are runs that failed (a
diverged run would only fail again) or whose log is damaged (a rerun would refuse it), listed as such.

A sweep reuses another's jobs with a grid entry `{include: <sweep id>}`, which stands for the jobs
that sweep lists at this scale (its own includes resolved) where a copy of its grids could drift
from it. `where` keeps some of them: `{include: fig1, where: {method.exchange: checkpoints,
method.period: "625,1250"}}` keeps the jobs of fig1 that set every key named to one of the values
listed (the values its grids set, not values a job takes from defaults). An include may name a
`scale`, as any grid; command-line arguments apply to included jobs as to the others; it holds no
other key (to add jobs, write a grid beside it). A sweep that is another's whole copy may instead
name it in its `defaults` (fig12 of fig4). Includes are resolved when the sweep runs, by Hydra
composing `sweep=<id>`; an unknown id, a cycle of includes, or a `where` that keeps none of the jobs
the included sweep has at this scale (a misspelt key or value) fails the sweep before any launch.

Jobs of one sweep can need different resources (2-way and 4-way codistillation are jobs of 2k
and 4k ranks), but a Hydra launcher resolves its resources once, from the sweep's primary config.
So pending jobs are grouped by their own resolved `hydra.launcher` and each group goes to a
launcher instantiated (by Hydra's plugin registry) from that group's config.
"""
import json
import pickle
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from codistill_experiments.config import (
    ConfigError,
    composition_problem,
    data_problem,
    install_problem,
    placement_problem,
    validate,
)
from codistill_experiments.job_cost import ASSUMPTIONS, NotCosted, job_cost
from codistill_experiments.jobs import STARTS_ITS_RANKS
from codistill_experiments.pinned_environment import environment_overrides
from codistill_experiments.runlog import (
    DAMAGED,
    FAILED,
    FINISHED,
    METRICS_FILE,
    end_state,
    read_records,
    run_dir,
    run_id,
)


@dataclass
class GridUnionSweeperConf:
    _target_: str = "hydra_plugins.codistill_sweeper.grid_union_sweeper.GridUnionSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None   # one grid, as for the basic sweeper
    grids: list[dict[str, Any]] = field(default_factory=list)   # Any: an include's `where` is a mapping
    # The first N seeds of each setting, in the order the grids list them (None: every seed). The
    # seeds a power analysis adds at mini scale come after the paper's three, so N = 3 runs the
    # paper's seeds of any sweep (make reproduce), whatever seed values it uses.
    seeds_per_setting: int | None = None


ConfigStore.instance().store(group="hydra/sweeper", name="grid_union", node=GridUnionSweeperConf,
                             provider="codistill")


def _key(override_string):
    return override_string.split("=", 1)[0].lstrip("+~")


def _container(node):
    return OmegaConf.to_container(node) if OmegaConf.is_config(node) else dict(node or {})


def plain_grids(grids, params=None):
    """A sweeper's grids as dicts of strings (an include's `where`: a dict of strings); its
    `params` as its one grid when it lists no grids."""
    grids = [_container(grid) for grid in grids or []] or [_container(params)]
    return [{key: {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else str(value)
             for key, value in grid.items()} for grid in grids]


INCLUDE_KEYS = {"include", "where", "scale"}


def check_includes(grids, sweep_name):
    """Raises ConfigError naming an include entry that is not {include: <id>[, where, scale]}."""
    for index, grid in enumerate(grids):
        entry = f"sweep {sweep_name}: hydra.sweeper.grids[{index}] {grid}"
        if "where" in grid and "include" not in grid:
            raise ConfigError(f"{entry}: `where` filters an include; add include: <sweep id>")
        if "include" in grid and set(grid) - INCLUDE_KEYS:
            raise ConfigError(f"{entry}: an include holds only include, where and scale, not "
                              f"{sorted(set(grid) - INCLUDE_KEYS)}; write other jobs as a grid of their own")
        if not isinstance(grid.get("where", {}), dict):
            raise ConfigError(f"{entry}: `where` maps keys to values, e.g. where: {{method.period: \"1,5\"}}")


def first_seeds(jobs, count):
    """The jobs of the first `count` seeds of each setting (a job's overrides but its seed), in
    order; a job without a seed override is kept."""
    kept, seeds = [], {}
    for job in jobs:
        setting = tuple(sorted(override for override in job if _key(override) != "seed"))
        chosen = seeds.setdefault(setting, [])
        seed = next((override for override in job if _key(override) == "seed"), None)
        if seed is None or seed in chosen or len(chosen) < count:
            if seed is not None and seed not in chosen:
                chosen.append(seed)
            kept.append(job)
    return kept


def write_manifest(sweep_name, jobs):
    """<results_root>/sweeps/<sweep>/<scale>.json: the run ids a figure needs, so that figures
    read logs only and can say which runs are missing."""
    by_scale = {}
    for job, container, identifier, _ in jobs:
        entry = {"run_id": identifier, "overrides": job}
        by_scale.setdefault((container["results_root"], container["scale"]["name"]), []).append(entry)
    for (results_root, scale), entries in by_scale.items():
        path = Path(results_root) / "sweeps" / sweep_name / f"{scale}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entries, indent=1) + "\n")


def model_jobs_of(container):
    """The jobs one run is queued as: itself ([[]]: no override), or, when its models are
    independent jobs (method.transport=files) and the launcher runs jobs at once (Slurm,
    submitit), one per model ([["model_job=0"], ...]), each requeued on its own. The local
    launchers start a run's ranks in one process: there a run starts its models together itself."""
    if container["method"].get("transport") != "files" or container["launcher"]["name"] in STARTS_ITS_RANKS:
        return [[]]
    return [[f"model_job={model}"] for model in range(container["method"]["n"])]


def after_their_teachers(unfinished):
    """The run ids of the two_phase jobs among `unfinished` ([(resolved config, run id)]) whose
    teacher run is one of them too: those are launched after it has finished."""
    two_phase = [(container, identifier) for container, identifier in unfinished
                 if container["method"]["name"] == "two_phase"]
    if not two_phase:
        return set()
    from codistill_experiments.training.two_phase import teacher_config  # imports torch: only for such sweeps

    ids = {identifier for _, identifier in unfinished}
    return {identifier for container, identifier in two_phase if run_id(teacher_config(container)) in ids}


def skip_line(identifier, directory, state, detail):
    if state == FINISHED:
        return f"skip {identifier}: finished run (of sweep {finished_by(directory)})"
    if state == FAILED:
        return f"skip {identifier}: failed run ({detail.get('reason')})"
    return (f"skip {identifier}: its log is damaged before its last line (python src/run.py with this job's "
            "overrides says where, and how to run it again)")


def finished_by(directory):
    """The sweep that ran a finished run (its header's sweep_id)."""
    return read_records(Path(directory) / METRICS_FILE)[0].get("sweep_id") or "none"


# Hydra's joblib launcher: its jobs run on this machine's cores, up to hydra.launcher.n_jobs at once.
JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"


def launch_all(launchers, job_groups, one_after_another=False):
    """Launches job_groups[i] on launchers[i]; returns every JobReturn, in group order. A launcher
    waits for its own jobs, so groups are launched from threads: all are queued before any is
    awaited. Groups that share this machine's cores (one_after_another) run one after the other,
    each at its own cap, so that two groups never together exceed the cores."""
    starts = [sum(map(len, job_groups[:index])) for index in range(len(job_groups))]
    launch = lambda index: launchers[index].launch(job_groups[index], initial_job_idx=starts[index])  # noqa: E731
    if len(job_groups) == 1 or one_after_another:
        return [result for index in range(len(job_groups)) for result in launch(index)]
    with ThreadPoolExecutor(len(job_groups)) as pool:
        return [result for group in pool.map(launch, range(len(job_groups))) for result in group]


class GridUnionSweeper(BasicSweeper):
    def __init__(self, max_batch_size=None, params=None, grids=None, seeds_per_setting=None):
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grids = plain_grids(grids, params)
        self.seeds_per_setting = seeds_per_setting
        self.task_function = None
        self.parser = None
        self.known_groups = set()   # config groups seen chosen by a composed job
        self.parsed_overrides = {}   # an override as written -> Hydra's parse of it
        self.grids_of_sweep = {}   # included sweep id -> its grids, composed once per sweep
        self.pinned = {}   # run id -> overrides pinning what its config reads from the environment

    def setup(self, *, hydra_context, task_function, config):
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.task_function = task_function
        self.parser = OverridesParser.create(config_loader=hydra_context.config_loader)

    def _grid_arguments(self, grid, arguments):
        overridden = {_key(argument) for argument in arguments}
        own = [f"{key}={value}" for key, value in grid.items() if _key(key) not in overridden]
        return own + list(arguments)

    @staticmethod
    def grids_at(grids, scale):
        """The grids that apply at `scale`: those naming no scale, and those naming this one."""
        return [{key: value for key, value in grid.items() if key != "scale"}
                for grid in grids if str(grid.get("scale", scale)) == scale]

    @property
    def sweep_name(self):
        """The sweep file this sweep was composed from (`sweep=<id>`), else its sweep_id."""
        return self.config.hydra.runtime.choices.get("sweep") or self.config.sweep_id or "adhoc"

    def expand(self, arguments):
        """Every job's override list, in grid order, duplicates (same override set) removed."""
        jobs, seen = [], set()
        for job in self.jobs_of(self.grids, arguments, (self.sweep_name,)):
            if tuple(sorted(job)) not in seen:
                seen.add(tuple(sorted(job)))
                jobs.append(job)
        return jobs if self.seeds_per_setting is None else first_seeds(jobs, self.seeds_per_setting)

    def jobs_of(self, grids, arguments, chain):
        """The jobs of `grids` at this sweep's scale, `arguments` applied to each, includes
        resolved; `chain` lists the sweeps being expanded, outermost first."""
        check_includes(grids, chain[-1])
        for grid in self.grids_at(grids, self.config.scale.name):
            if "include" not in grid:
                yield from self.grid_jobs(grid, arguments)
                continue
            for job in self.included_jobs(grid["include"], grid.get("where", {}), chain):
                yield from self.grid_jobs(dict(override.split("=", 1) for override in job), arguments)

    def grid_jobs(self, grid, arguments):
        overrides = self.parser.parse_overrides(self._grid_arguments(grid, arguments))
        for batch in self.split_arguments(overrides, None):
            yield from (list(job) for job in batch)

    def included_jobs(self, sweep_id, where, chain):
        """The jobs sweep `sweep_id` lists at this scale that `where` selects."""
        if sweep_id in chain:
            raise ConfigError(f"sweep {chain[0]}: sweeps include each other in a cycle: "
                              f"{' -> '.join([*chain, sweep_id])}")
        jobs = list(self.jobs_of(self.grids_of(sweep_id, chain[-1]), [], (*chain, sweep_id)))
        wanted = {override.key_or_group: self.values_of(override)
                  for override in self.parser.parse_overrides([f"{key}={value}" for key, value in where.items()])}
        selected = [job for job in jobs if self.selects(wanted, job)]
        if jobs and not selected:
            raise ConfigError(f"sweep {chain[-1]}: `include: {sweep_id}, where: {where}` keeps none of the "
                              f"{len(jobs)} jobs {sweep_id} has at scale {self.config.scale.name}")
        return selected

    @staticmethod
    def values_of(override):
        return list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]

    def selects(self, wanted, job):
        """Whether the job sets every key of `wanted` to one of its values."""
        values = {override.key_or_group: override.value() for override in self.parser.parse_overrides(job)}
        return all(key in values and values[key] in choices for key, choices in wanted.items())

    def grids_of(self, sweep_id, including):
        """The grids of sweep file `sweep_id`, composed by Hydra as `sweep=<sweep_id>` (so that its
        own `defaults` apply) with this sweep's hydra overrides (hydra.searchpath) except those of
        hydra.sweeper, which would replace the included sweep's grids with this one's."""
        if sweep_id not in self.grids_of_sweep:
            loader, config_name = self.hydra_context.config_loader, self.config.hydra.job.config_name
            overrides = [override for override in self.config.hydra.overrides.hydra
                         if not _key(override).startswith("hydra.sweeper")]
            known = loader.get_group_options("sweep", config_name=config_name, overrides=overrides)
            if sweep_id not in known:
                raise ConfigError(f"sweep {including}: `include: {sweep_id}` names no sweep file; "
                                  f"known sweeps: {', '.join(known)}")
            sweeper = loader.load_configuration(config_name=config_name, overrides=[*overrides, f"sweep={sweep_id}"],
                                                run_mode=RunMode.RUN).hydra.sweeper
            self.grids_of_sweep[sweep_id] = plain_grids(sweeper.get("grids"), sweeper.get("params"))
        return self.grids_of_sweep[sweep_id]

    def compose_and_validate(self, jobs):
        """Composes every job; raises ConfigError naming each invalid one. Returns unique jobs as
        (overrides, resolved config, run id, resolved hydra.launcher: the job's resources)."""
        # Every job reads the same YAML files: the loader reads each once per process
        # (codistill_experiments.config.reads; parsing them again was most of a long sweep's validation).
        loader = self.hydra_context.config_loader
        unique, run_ids, problems = [], set(), []
        twins = {}   # a job with the values of its plain overrides blanked -> the first such job composed, pickled
        for job in jobs:
            try:
                job_cfg = self.composed(loader, job, twins)
            except ConfigCompositionException as error:  # a key or a type the config's schemas refuse
                problems.append(f"job {' '.join(job)}:\n{composition_problem(error)}")
                continue
            try:
                container = validate(job_cfg)
                resources = OmegaConf.to_container(job_cfg.hydra.launcher, resolve=True)
            except ConfigError as error:
                problems.append(f"job {' '.join(job)}:\n{error}")
                continue
            except Exception as error:  # a launcher setting that does not resolve
                problems.append(f"job {' '.join(job)}:\nhydra.launcher does not resolve: {error}")
                continue
            identifier = run_id(container)
            self.pinned.setdefault(identifier, environment_overrides(job_cfg))
            if identifier not in run_ids:
                run_ids.add(identifier)
                unique.append((job, container, identifier, resources))
        if problems:
            raise ConfigError("the sweep was not launched:\n" + "\n".join(problems))
        return unique

    def composed(self, loader, job, twins):
        """The job's config as Hydra composes it. Hydra composes a config in two stages: the
        config groups the overrides choose (and the defaults lists they pull in) are merged, then
        every other override sets a value on the merged config (`ConfigLoaderImpl.
        _apply_overrides_to_config`), and no value can choose a file (a defaults list interpolates
        group choices only). So a job that differs from one composed before only in the values of
        the same plain keys (seeds, learning rates, periods: most of a sweep) is that job's merged
        config with its own values set by Hydra's same function, at a fraction of the cost."""
        template, values = self.twin_template(loader, job)
        if template is not None and template in twins:
            job_cfg = pickle.loads(twins[template])
            ConfigLoaderImpl._apply_overrides_to_config(values, job_cfg)
            job_cfg.hydra.overrides.task = list(job)
            job_cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=self.parsed(job),
                kv_sep=job_cfg.hydra.job.config.override_dirname.kv_sep,
                item_sep=job_cfg.hydra.job.config.override_dirname.item_sep,
                exclude_keys=job_cfg.hydra.job.config.override_dirname.exclude_keys)
            return job_cfg
        job_cfg = loader.load_sweep_config(self.config, job)
        # the groups this config chose, from any source on the search path: an override of one of
        # them is never a plain value in the templates that follow
        self.known_groups.update(job_cfg.hydra.runtime.choices.keys())
        if template is not None:
            twins[template] = pickle.dumps(job_cfg)
        return job_cfg

    def parsed(self, job):
        """The job's overrides parsed, each string once per sweep (Hydra's parser is costly, and a
        sweep's jobs repeat the same few overrides)."""
        for override in job:
            if override not in self.parsed_overrides:
                self.parsed_overrides[override] = self.parser.parse_overrides([override])[0]
        return [self.parsed_overrides[override] for override in job]

    def twin_template(self, loader, job):
        """(the job with the values of its plain overrides blanked, those overrides parsed), or
        (None, None) for a job that must be composed whole. A plain override sets a primitive on a
        key that is not a config group, outside hydra's own node: `key=value` without `+`, `~`
        or a package."""
        template, values = [], []
        for override in self.parsed(job):
            key = override.key_or_group
            if override.is_hydra_override() or override.is_sweep_override():
                return None, None
            if override.package is None and not override.is_add() and not override.is_force_add() \
                    and not override.is_delete() and key not in self.known_groups \
                    and not loader.repository.group_exists(key) \
                    and isinstance(override.value(), (str, int, float, bool, type(None))):
                template.append(f"{key}=")
                values.append(override)
            else:
                template.append(override.input_line)
        return tuple(template), values

    def sweep(self, arguments: list[str]) -> Any:
        try:
            return self.validated_sweep(arguments)
        except ConfigError as error:  # a user's mistake: the message, not a traceback
            sys.exit(f"error: {error}")

    def validated_sweep(self, arguments):
        if self.seeds_per_setting is not None and self.seeds_per_setting < 1:
            raise ConfigError(f"hydra.sweeper.seeds_per_setting={self.seeds_per_setting}: at least 1, or null "
                              "for every seed")
        scale = self.config.scale.name
        jobs = self.compose_and_validate(self.expand(arguments))
        sweep_name = self.config.sweep_id or "adhoc"
        dry_run = bool(self.config.dry_run)
        # a finished run is not launched again, nor a failed one (it would only fail again), nor one whose log
        # is damaged (a rerun would refuse it)
        ends = [end_state(run_dir(container) / METRICS_FILE) for _, container, _, _ in jobs]
        done = [state for state, _ in ends]
        others = ", ".join(f"{done.count(state)} {state}" for state in (FAILED, DAMAGED) if state in done)
        print(f"sweep {sweep_name}: {len(jobs)} jobs at scale {scale}, {done.count(FINISHED)} already finished"
              f"{' (' + others + ')' if others else ''}"
              f"{' (dry run: nothing launched)' if dry_run else ''}")
        if not jobs:
            scales = sorted({str(grid["scale"]) for grid in self.grids if "scale" in grid} - {scale})
            print(f"  this sweep has no job at scale {scale}" + (f"; it has jobs at: {', '.join(scales)}" if scales else ""))
        costs = []
        for index, ((job, container, identifier, _), finished) in enumerate(zip(jobs, done)):
            print(f"  [{index}] {identifier}  {' '.join(job)}{f'  ({finished})' if finished else ''}")
            for model_job in filter(None, model_jobs_of(container)):
                print(f"        {model_job[0]}: its own job of {container['job_ranks']} rank(s) on "
                      f"launcher {container['launcher']['name']}")
            if container["scale"].get("gpus_per_rank"):
                costs.append(print_cost(container))
        if any(cost is not None for cost in costs):
            print_total(costs)
        if not jobs:
            return []
        missing, unchecked = self.missing_data(jobs)
        # ranks this machine cannot give a GPU each (the launchers that start them here)
        missing = sorted({*missing, *(problem for _, container, _, _ in jobs if (problem := placement_problem(container)))})
        if unchecked:  # queued from a machine without the data (a login node): the jobs check it where they run
            queued = "a launch would queue it anyway" if dry_run else "queued anyway"
            for problem in unchecked:
                print(f"warning: not found here, {queued} (launcher.check_data_on_submit=false): {problem}",
                      file=sys.stderr)
            print("warning: each job checks its data again when it starts on its node, and stops if it is missing",
                  file=sys.stderr)
        # packages this environment lacks (a translation job without fairseq): no launcher helps
        uninstalled = sorted({problem for _, container, _, _ in jobs if (problem := install_problem(container))})
        if dry_run:  # it may be preparing a cluster's jobs elsewhere: it warns, a launch refuses
            for problem in [*uninstalled, *missing]:
                print(f"warning: a launch here would refuse: {problem}", file=sys.stderr)
            return []
        if uninstalled:
            raise ConfigError("the sweep was not launched:\n  - " + "\n  - ".join(uninstalled))
        if missing:
            raise ConfigError("the sweep was not launched:\n  - " + "\n  - ".join(missing) + "\n(to queue jobs "
                              "whose data is only on the nodes that run them: launcher.check_data_on_submit=false)")
        write_manifest(sweep_name, jobs)
        # Each job composes its config again when it starts (on Slurm, maybe hours later): it is
        # handed the run id validated here and stops if its config has changed since.
        # A job composed again where it starts (Slurm, submitit) may not see this environment
        # (SBATCH_EXPORT=NONE): what its config reads from it is pinned to the values validated here.
        # A two_phase job whose teachers are an unfinished job of this sweep is queued once they
        # have finished: queued together, it would wait on the teachers' lock and be refused.
        later = after_their_teachers([(container, identifier) for (_, container, identifier, _), finished
                                      in zip(jobs, done) if not finished])
        waves = [[], []]
        for (job, container, identifier, resources), finished in zip(jobs, done):
            if finished:
                continue
            pinned = [] if container["launcher"]["name"] in STARTS_ITS_RANKS else self.pinned.get(identifier, [])
            waves[identifier in later] += [([*job, *pinned, f"expected_run_id={identifier}", *model_job], resources)
                                           for model_job in model_jobs_of(container)]
        pending = waves[0] + waves[1]
        for (_, container, identifier, _), (state, detail) in zip(jobs, ends):
            if state:
                print(skip_line(identifier, run_dir(container), state, detail))
        if not pending:
            return []
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        if waves[1]:
            print(f"  {len(later)} two_phase job(s) wait for their teacher runs, jobs of this sweep: queued once "
                  "those have finished")
        results = []
        for wave in filter(None, waves):
            groups = self.by_resources(wave)
            # Every launcher is built here, in this thread, before any job is queued: building one
            # deep-copies the sweep config, and OmegaConf's deepcopy detaches each node it copies for
            # a moment, so a copy made while another thread pickles or resolves that config breaks it
            # (seen in CI: "Interpolation key 'launcher.mem_gb' not found").
            launchers = [self.launcher_for(resources) for resources, _ in groups]
            results += launch_all(launchers, [group for _, group in groups],
                                  one_after_another=all(resources.get("_target_") == JOBLIB_LAUNCHER
                                                        for resources, _ in groups))
        for result in results:
            _ = result.return_value  # re-raises a failed job's exception
        return [results]

    @staticmethod
    def missing_data(jobs):
        """(the data problems on this machine that refuse a launch, those of jobs whose launcher
        leaves the check to the job itself: launcher.check_data_on_submit=false), each sorted."""
        problems = [(problem, container["launcher"]["check_data_on_submit"]) for _, container, _, _ in jobs
                    if (problem := data_problem(container))]
        refused = {problem for problem, checked in problems if checked}
        return sorted(refused), sorted({problem for problem, _ in problems} - refused)

    @staticmethod
    def by_resources(pending):
        """[(resolved hydra.launcher, [job overrides])], in the order jobs were listed."""
        groups = {}
        for job, resources in pending:
            groups.setdefault(json.dumps(resources, sort_keys=True), (resources, []))[1].append(job)
        return list(groups.values())

    def launcher_for(self, resources):
        """A launcher whose resources are `resources`; the sweep's own one when they are its own."""
        if resources == OmegaConf.to_container(self.config.hydra.launcher, resolve=True):
            return self.launcher
        config = self.config.copy()
        with open_dict(config):
            config.hydra.launcher = resources
        return Plugins.instance().instantiate_launcher(hydra_context=self.hydra_context,
                                                       task_function=self.task_function, config=config)


def print_cost(container):
    """The job's planned cost on the paper's GPUs (job_cost.py), on the line below it; its JobCost or None."""
    try:
        cost = job_cost(container)
    except NotCosted as reason:
        print(f"        cost: not estimated: {reason}")
        return None
    print(f"        cost: {cost.line()}")
    return cost


def print_total(costs):
    known = [cost for cost in costs if cost is not None]
    hours, gpu_hours = sum(cost.hours for cost in known), sum(cost.gpu_hours for cost in known)
    missing = f"; {len(costs) - len(known)} job(s) not estimated" if len(known) < len(costs) else ""
    print(f"total: {gpu_hours:,.0f} GPU-h over {len(known)} jobs ({hours:,.1f} h if run one after another, "
          f"{max(cost.hours for cost in known):,.1f} h for the longest){missing}")
    print(f"  assumed: {ASSUMPTIONS}")
