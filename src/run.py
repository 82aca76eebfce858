"""The one entry point.

    python src/run.py [overrides]               one job
    python src/run.py -m sweep=<id> [overrides] a figure's sweep (sweeps/<id>.yaml)

Composes the config, validates it, then hands the run to the engine (codistill/launch.py).
"""
import os
import sys
import traceback

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from codistill.config import ConfigError, data_problem, validate
from codistill.progress import MODE_VARIABLE, mode
from codistill.runlog import is_finished, run_dir, run_id


def progress_mode(container):
    """How much the run prints (codistill/progress.py). A sweep run here prints one line per run
    (its summary): hundreds of mini runs share this terminal. Jobs of other launchers each have
    their own output and print their progress in full. CODISTILL_PROGRESS, when set, wins."""
    if HydraConfig.get().mode == RunMode.MULTIRUN and container["launcher"]["name"] == "local":
        os.environ.setdefault(MODE_VARIABLE, "quiet")
    try:
        return mode()
    except ValueError as error:
        sys.exit(f"error: {error}")


def exit_for_lost_rank(lost):
    """The traceback of what failed first, then the message alone on the last lines, so that it
    is what the user sees."""
    if lost.__cause__ is not None:
        traceback.print_exception(lost.__cause__, file=sys.stderr)
    sys.stderr.flush()
    sys.exit(f"\nerror: {lost}")


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
    verbosity = progress_mode(container)
    from codistill.checkpoint import RunInProgress, StateUnreadable, is_leader_process, recover, run_lock
    from codistill.launch import RankLost, launch  # torch is imported only when something will train

    try:
        with run_lock(directory, container["launcher"].get("lock_wait_s", 0)):
            if is_finished(directory):  # by the job that held the lock meanwhile
                print(f"skip {identifier}: finished run in {directory}")
                return
            if is_leader_process():  # the other ranks of a job read what it has checked (and repaired)
                resume_step = recover(directory, container["method"]["n"])
                action = "run" if resume_step is None else f"resume (from update {resume_step})"
                if verbosity == "full":
                    print(f"{action} {identifier} ({container['scale']['note']}) -> {directory}", flush=True)
            launch(container, directory)
    except (RunInProgress, StateUnreadable) as error:
        sys.exit(f"error: {error}")
    except RankLost as lost:
        exit_for_lost_rank(lost)


if __name__ == "__main__":
    main()
