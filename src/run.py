"""The one entry point.

    python src/run.py [overrides]               one job
    python src/run.py -m sweep=<id> [overrides] a figure's sweep (sweeps/<id>.yaml)

Composes the config, validates it, then hands the run to the engine (codistill/launch.py).
"""
import sys

import hydra
from omegaconf import OmegaConf

from codistill.config import ConfigError, data_problem, validate
from codistill.runlog import is_finished, run_dir, run_id


@hydra.main(config_path="conf", config_name="codistill", version_base="1.3")
def main(cfg):
    try:
        container = validate(cfg)
    except ConfigError as error:
        sys.exit(f"error: {error}")
    identifier, directory = run_id(container), run_dir(container)
    if cfg.expected_run_id not in (None, identifier):
        sys.exit(f"error: this job was validated as run {cfg.expected_run_id} when its sweep was launched, but "
                 f"its config now resolves to run {identifier}: the configs changed in between. Launch the sweep "
                 "again (finished runs are skipped).")
    problem = data_problem(container)
    if cfg.dry_run:
        print(OmegaConf.to_yaml(cfg, resolve=True))
        print(f"run id: {identifier}\nrun dir: {directory}")
        if problem:
            print(f"warning: cannot run here yet: {problem}")
        return
    if problem:
        sys.exit(f"error: {problem}")
    if is_finished(directory):
        print(f"skip {identifier}: finished run in {directory}")
        return
    from codistill.checkpoint import RunInProgress, committed_step, run_lock
    from codistill.launch import launch  # torch is imported only when something will train

    try:
        with run_lock(directory, container["launcher"].get("lock_wait_s", 0)):
            if is_finished(directory):  # by the job that held the lock meanwhile
                print(f"skip {identifier}: finished run in {directory}")
                return
            resume_step = committed_step(directory)
            action = "run" if resume_step is None else f"resume (from update {resume_step})"
            print(f"{action} {identifier} ({container['scale']['note']}) -> {directory}", flush=True)
            launch(container, directory)
    except RunInProgress as busy:
        sys.exit(f"error: {busy}")


if __name__ == "__main__":
    main()
