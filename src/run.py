"""The one entry point.

    python src/run.py [overrides]               one job
    python src/run.py -m sweep=<id> [overrides] a figure's sweep (sweeps/<id>.yaml)

Composes the config, validates it, then hands the run to the engine (codistill/launch.py).
"""
import os
import shlex
import sys
import traceback

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from codistill_experiments.config import ConfigError, data_problem, validate
from codistill_experiments.progress import MODE_VARIABLE, mode
from codistill_experiments.runlog import DAMAGED, FAILED, FINISHED, METRICS_FILE, end_state, run_dir, run_id


INTERRUPTED = 128 + 2   # a shell's exit status for SIGINT


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


def rerun_command(directory):
    """The commands that set a run's directory aside (nothing is deleted) and run this job again
    from scratch."""
    overrides = " ".join(shlex.quote(override) for override in HydraConfig.get().overrides.task)
    aside = shlex.quote(f"{directory}.set-aside")
    return f"mv {shlex.quote(str(directory))} {aside} && python {shlex.quote(sys.argv[0])} {overrides}".rstrip()


def ended(identifier, directory):
    """True when the run has ended successfully (nothing to do); exits non-zero, leaving the log
    as it is, when it failed or its log is damaged before its last line."""
    state, detail = end_state(directory / METRICS_FILE)
    if state == DAMAGED:
        sys.exit(f"error: {detail}. The log was left as it is: it cannot be resumed without losing what follows "
                 f"the damaged line. To run {identifier} again from scratch: {rerun_command(directory)}")
    if state == FAILED:
        sys.exit(f"error: run {identifier} failed: {detail.get('reason', 'no reason recorded')}. Its log was left "
                 f"as it is. Once the cause is fixed, to run it again from scratch: {rerun_command(directory)}")
    if state == FINISHED:
        print(f"skip {identifier}: finished run in {directory}")
    return state == FINISHED


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
    if ended(identifier, directory):
        return
    verbosity = progress_mode(container)
    from codistill_experiments.run_state import RunInProgress, StateUnreadable, is_leader_process, recover, run_lock
    from codistill_experiments.launch import RankLost, launch  # torch is imported only when something will train

    try:
        with run_lock(directory, container["launcher"].get("lock_wait_s", 0)):
            if ended(identifier, directory):  # by the job that held the lock meanwhile
                return
            if is_leader_process():  # the other ranks of a job read what it has checked (and repaired)
                resume_step = recover(directory, container["method"]["n"])
                action = "run" if resume_step is None else f"resume (from update {resume_step})"
                if verbosity == "full":
                    print(f"{action} {identifier} ({container['scale']['note']}) -> {directory}", flush=True)
            launch(container, directory)
    except (RunInProgress, StateUnreadable) as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        print(f"\ninterrupted: {identifier} stopped; rerun the same command to resume it from its last committed "
              "state", file=sys.stderr, flush=True)
        sys.exit(INTERRUPTED)
    except RankLost as lost:
        exit_for_lost_rank(lost)
    state, end = end_state(directory / METRICS_FILE)
    if state == FAILED:   # it stopped without a result: the run failed
        sys.exit(f"error: {end.get('reason')}")


if __name__ == "__main__":
    main()
