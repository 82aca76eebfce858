"""A Hydra sweeper for figure sweeps: the union of several grids, validated as a whole.

Hydra's basic sweeper runs one Cartesian product; a paper figure is usually a few of them
(Figure 2: three recipes x seeds, plus a batch-size panel). `hydra.sweeper.grids` lists them;
each grid is expanded by the basic sweeper's own parser, command-line sweep arguments apply to
every grid (and replace a grid's value for the same key), and a job that appears twice (same run
id) runs once. Every job is composed and validated before the first one is launched, so a bad
override fails the sweep before anything runs or is queued; with dry_run=true the jobs are listed
and nothing is launched.
"""
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from codistill.config import ConfigError, data_problem, validate
from codistill.runlog import run_id


@dataclass
class GridUnionSweeperConf:
    _target_: str = "hydra_plugins.codistill_sweeper.grid_union_sweeper.GridUnionSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None   # one grid, as for the basic sweeper
    grids: List[Dict[str, str]] = field(default_factory=list)


ConfigStore.instance().store(group="hydra/sweeper", name="grid_union", node=GridUnionSweeperConf,
                             provider="codistill")


def _key(override_string):
    return override_string.split("=", 1)[0].lstrip("+~")


def write_manifest(sweep_name, jobs):
    """<results_root>/sweeps/<sweep>/<scale>.json: the run ids a figure needs, so that figures
    read logs only and can say which runs are missing."""
    by_scale = {}
    for job, container, identifier in jobs:
        entry = {"run_id": identifier, "overrides": job}
        by_scale.setdefault((container["results_root"], container["scale"]["name"]), []).append(entry)
    for (results_root, scale), entries in by_scale.items():
        path = Path(results_root) / "sweeps" / sweep_name / f"{scale}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entries, indent=1) + "\n")


class GridUnionSweeper(BasicSweeper):
    def __init__(self, max_batch_size=None, params=None, grids=None):
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.grids = [dict(grid) for grid in (grids or [])] or [dict(params or {})]

    def _grid_arguments(self, grid, arguments):
        overridden = {_key(argument) for argument in arguments}
        own = [f"{key}={value}" for key, value in grid.items() if key not in overridden]
        return own + list(arguments)

    def expand(self, arguments):
        """Every job's override list, in grid order, duplicates (same override set) removed."""
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        jobs, seen = [], set()
        for grid in self.grids:
            overrides = parser.parse_overrides(self._grid_arguments(grid, arguments))
            for batch in self.split_arguments(overrides, None):
                for job in batch:
                    if tuple(sorted(job)) not in seen:
                        seen.add(tuple(sorted(job)))
                        jobs.append(list(job))
        return jobs

    def compose_and_validate(self, jobs):
        """Composes every job; raises ConfigError naming each invalid one. Returns unique jobs
        with their resolved configs and run ids."""
        loader = self.hydra_context.config_loader
        unique, run_ids, problems = [], set(), []
        for job in jobs:
            job_cfg = loader.load_sweep_config(self.config, job)
            try:
                container = validate(job_cfg)
            except ConfigError as error:
                problems.append(f"job {' '.join(job)}:\n{error}")
                continue
            identifier = run_id(container)
            if identifier not in run_ids:
                run_ids.add(identifier)
                unique.append((job, container, identifier))
        if problems:
            raise ConfigError("the sweep was not launched:\n" + "\n".join(problems))
        return unique

    def sweep(self, arguments: List[str]) -> Any:
        try:
            return self.validated_sweep(arguments)
        except ConfigError as error:  # a user's mistake: the message, not a traceback
            sys.exit(f"error: {error}")

    def validated_sweep(self, arguments):
        jobs = self.compose_and_validate(self.expand(arguments))
        sweep_name = self.config.sweep_id or "adhoc"
        dry_run = bool(jobs) and jobs[0][1]["dry_run"]
        print(f"sweep {sweep_name}: {len(jobs)} jobs{' (dry run: nothing launched)' if dry_run else ''}")
        for index, (job, container, identifier) in enumerate(jobs):
            print(f"  [{index}] {identifier}  {' '.join(job)}")
        if dry_run:
            return []
        missing = sorted({problem for _, container, _ in jobs if (problem := data_problem(container))})
        if missing:
            raise ConfigError("the sweep was not launched:\n  - " + "\n  - ".join(missing))
        write_manifest(sweep_name, jobs)
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        results = self.launcher.launch([job for job, _, _ in jobs], initial_job_idx=0)
        for result in results:
            _ = result.return_value  # re-raises a failed job's exception
        return [results]
