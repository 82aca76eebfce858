"""The one entry point.

    python src/run.py [overrides]               one job
    python src/run.py -m sweep=<id> [overrides] a figure's sweep (sweeps/<id>.yaml)

Composes the config, validates it, then hands the run to the engine
(src/codistill_experiments/launch.py).
"""
import os
import shlex
import sys
import traceback

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf

from codistill_experiments.config import ConfigError, data_problem, install_problem, placement_problem, validate
from codistill_experiments.jobs import STARTS_ITS_RANKS, cuda_problem
from codistill_experiments.model_jobs import (
    assemble_run_log,
    exchange_directory,
    model_directory,
    model_ended,
    uses_files,
)
from codistill_experiments.progress import MODE_VARIABLE, mode
from codistill_experiments.refusals import announce_refusal, clear_old_refusals, job_attempt, watch_for_refusal
from codistill_experiments.runlog import DAMAGED, FAILED, FINISHED, METRICS_FILE, end_state, run_dir, run_id

INTERRUPTED = 128 + 2   # a shell's exit status for SIGINT


def progress_mode(container):
    """How much the run prints (src/codistill_experiments/progress.py). A sweep run here prints one
    line per run (its summary): hundreds of mini runs share this terminal. Jobs of other launchers
    each have their own output and print their progress in full. CODISTILL_PROGRESS, when set, wins."""
    if HydraConfig.get().mode == RunMode.MULTIRUN and container["launcher"]["name"] in STARTS_ITS_RANKS:
        os.environ.setdefault(MODE_VARIABLE, "quiet")
    try:
        return mode()
    except ValueError as error:
        sys.exit(f"error: {error}")


def queue_problem(container):
    """Why this command would not queue the job its launcher queues, or None. Hydra hands jobs to
    a launcher (Slurm, submitit) only in a multirun: without -m it runs the job in this process,
    here (a login node), whatever the launcher says."""
    launcher = container["launcher"]["name"]
    if launcher in STARTS_ITS_RANKS or HydraConfig.get().mode == RunMode.MULTIRUN:
        return None
    chosen = HydraConfig.get().runtime.choices.get("launcher", launcher)
    overrides = " ".join(shlex.quote(override) for override in HydraConfig.get().overrides.task)
    return (f"launcher={chosen} queues jobs only in a multirun: without -m Hydra would train this job here, in this "
            f"process, not on {launcher}'s nodes. Add -m: python {shlex.quote(sys.argv[0])} -m {overrides}")


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


def state_directories(container, directory):
    """(directory, model groups or None for all, name) of each run state this job resumes: the
    run's, or with method.transport=files each unfinished model's (the one of `model_job`)."""
    if not uses_files(container):
        return [(directory, None, "")]
    chosen = container["model_job"]
    models = range(container["method"]["n"]) if chosen is None else [chosen]
    return [(model_directory(directory, model), [model], f" model {model}") for model in models
            if not model_ended(directory, model)]


def model_job_ended(container, directory):
    """A job of one model (method.transport=files, model_job=<i>) whose model has ended: it
    assembles the run's log if every other model has ended too, and has nothing to train."""
    model = container["model_job"]
    if model is None or not uses_files(container) or not model_ended(directory, model):
        return False
    print(f"skip model {model} of {run_id(container)}: it has finished; the run's log is "
          f"{'complete' if assemble_run_log(container, directory) else 'assembled once every model has finished'}")
    return True


def model_jobs_line(container):
    """What a run of independent model jobs queues (method.transport=files)."""
    n, k = container["method"]["n"], container["job_ranks"]
    where = ("started together on this machine" if container["launcher"]["name"] in STARTS_ITS_RANKS
             else "the sweeper queues one job per model (model_job=<i>)")
    return (f"model jobs: {n} independent jobs of {k} rank{'s' * (k > 1)} each, launcher {container['launcher']['name']}"
            f" ({where}), exchanging checkpoints through {exchange_directory(run_dir(container))}")


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
    problems = [problem for problem in (queue_problem(container), install_problem(container), data_problem(container),
                                        placement_problem(container)) if problem]
    if cfg.dry_run:
        print(OmegaConf.to_yaml(cfg, resolve=True))
        print(f"run id: {identifier}\nrun dir: {directory}")
        if uses_files(container):
            print(model_jobs_line(container))
        for problem in problems:
            print(f"warning: cannot run here yet: {problem}")
        return
    if problems:
        sys.exit("error: " + "\nerror: ".join(problems))
    if ended(identifier, directory) or model_job_ended(container, directory):
        return
    for where, _, what in state_directories(container, directory):   # a model job's log: damaged is refused too
        if end_state(where / METRICS_FILE)[0] == DAMAGED:
            ended(identifier + what, where)
    # before the lock and any rank: a job that asks for GPUs is refused where CUDA cannot run it
    # (none found, too few, or no kernels for a GPU), not trained on the CPU. Mini asks CUDA nothing.
    unusable = cuda_problem(container)
    if unusable:
        sys.exit(f"error: {unusable}")
    verbosity = progress_mode(container)
    from codistill_experiments.launch import RankLost, launch  # torch is imported only when something will train
    from codistill_experiments.run_state import RunInProgress, StateUnreadable, is_leader_process, recover, run_lock
    from codistill_experiments.translation.checks import is_fairseq
    from codistill_experiments.translation.launcher import resume_update as translation_resume_update

    model_job = container["model_job"]
    locked = directory if model_job is None else model_directory(directory, model_job)
    # In a job of several tasks, a leader that refuses says so in the run directory: its peers would
    # otherwise wait for it in the rendezvous or a collective for launcher.collective_timeout_s.
    attempt = job_attempt()
    if not is_leader_process():
        watch_for_refusal(locked, attempt)
    try:
        with run_lock(locked, container["launcher"]["lock_wait_s"]):
            if ended(identifier, directory) or model_job_ended(container, directory):  # by the job that held the lock
                return
            if is_leader_process():  # the other ranks of a job read what it has checked (and repaired)
                clear_old_refusals(locked)
                for where, groups, what in state_directories(container, directory):
                    resume_step = (translation_resume_update(container, directory) if is_fairseq(container)
                                   else recover(where, container["method"]["n"], groups=groups))
                    action = "run" if resume_step is None else f"resume (from update {resume_step})"
                    if verbosity == "full":
                        print(f"{action} {identifier}{what} ({container['scale']['note']}) -> {where}", flush=True)
            launch(container, directory)
    except (RunInProgress, StateUnreadable) as error:
        if is_leader_process():
            announce_refusal(locked, attempt, str(error))
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
