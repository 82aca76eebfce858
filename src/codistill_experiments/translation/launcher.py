"""A translation run: every rank is one fairseq-train process, started from this process by the
local launcher (processes.start_method: forked on the CPU, spawned on a GPU), or started by
Slurm/submitit (one task per rank, codistill_experiments.jobs); when every model has trained,
results.py scores BLEU and writes the log.

Layout of a run directory (results/runs/<scale>-<method>-<hash>):
  metrics.jsonl          header, eval records of every model, test (BLEU) records, end record
  model<i>/              fairseq's save dir (checkpoint_last.pt: the model, for resume and BLEU),
                         evals.jsonl (model i's records), train-rank<r>.log, generate-test.txt,
                         trained.json once it has trained, failed-rank<r>.json when a rank failed,
                         checkpoint_last.json (the sha256 a resume checks checkpoint_last.pt against)
  exchange/model<i>/     parameter snapshots step<s>.pt (removed when the run finishes)
"""
import json
import os
import sys
import time
from pathlib import Path

from .. import runlog
from ..jobs import check_world_size, gpu_of, local_rendezvous, trains_on_gpus
from .checkpoints import repair_torn_checkpoint, resume_step
from .commands import model_dir, shape, train_arguments
from .data import mini_data_bin
from .processes import FairseqDiverged, FairseqFailed, import_fairseq, run_fairseq, start_fairseq, wait_all
from .results import fail, finish, start_log


def data_bin_of(config):
    workload = config["workload"]
    if workload["data_bin"]:
        return Path(workload["data_bin"])
    return mini_data_bin(workload, config["results_root"],
                         lambda argv, log: run_fairseq("preprocess", argv, log))


def trained(run_directory, group):
    return (model_dir(run_directory, group) / "trained.json").exists()


def has_trained(config, run_directory, group, warn=None):
    """Whether model `group` has trained: trained.json, or a complete checkpoint_last.pt at
    schedule.max_update. A kill after fairseq's last save but before trained.json leaves the
    second; fairseq-train started again from it would train one update more (it checks the limit
    after each update), so the model is marked trained instead. Its checkpoint is checked first
    (checkpoints.resume_step: restored from an intact copy, or CheckpointUnreadable)."""
    if trained(run_directory, group):
        return True
    step = resume_step(model_dir(run_directory, group), warn or _stderr)
    if step is None or step < config["schedule"]["max_update"]:   # >= 1: its schema's rule
        return False
    mark_trained(run_directory, group)
    return True


def resume_steps(config, run_directory, warn=None):
    """{model: the update it resumes from} of each model that has saved a checkpoint (a trained
    one: schedule.max_update), each checked as has_trained checks it; {} for a fresh run. Run by
    the run's leading process before any rank starts, so that a damaged checkpoint stops the job
    before anything trains."""
    n, _ = shape(config)
    limit, steps = config["schedule"]["max_update"], {}
    for group in range(n):
        if trained(run_directory, group):
            steps[group] = limit
        elif (step := resume_step(model_dir(run_directory, group), warn or _stderr)) is not None:
            steps[group] = step
    return steps


def resume_update(config, run_directory, warn=None):
    """What `resume (from update ...)` says of a translation run: None for a fresh run, else the
    update its models resume from ("8"), or each model's where they differ ("8, 12 (models 0, 1)")."""
    steps = resume_steps(config, run_directory, warn)
    if not steps:
        return None
    if len(set(steps.values())) == 1:
        return str(next(iter(steps.values())))
    return f"{', '.join(str(step) for step in steps.values())} (models {', '.join(str(group) for group in steps)})"


def _stderr(text):
    print(text, file=sys.stderr, flush=True)


def _train_rank(config, run_directory, data_bin, group, rank_in_group, local_rank, init_method, cuda):
    gpu = gpu_of(local_rank) if cuda else None
    if rank_in_group == 0:
        repair_torn_checkpoint(model_dir(run_directory, group))
    argv = train_arguments(config, run_directory, data_bin, group, rank_in_group, gpu or 0, init_method, cuda)
    log_path = model_dir(run_directory, group) / f"train-rank{rank_in_group}.log"
    return start_fairseq("train", argv, log_path, config["launcher"]["threads_per_rank"], gpu), log_path


def mark_trained(run_directory, group):
    path = model_dir(run_directory, group) / "trained.json"
    runlog.atomic_write_bytes(path, lambda handle: handle.write(b'{"trained": true}\n'))


def run_local(config, run_directory, data_bin):
    """Every rank of every unfinished model group, started from this process."""
    n, k = shape(config)
    cuda = trains_on_gpus(config)
    processes = {}
    with local_rendezvous() as rendezvous:
        for group in range(n):
            if has_trained(config, run_directory, group):
                continue
            init_method = rendezvous(f"model{group}") if k > 1 else None
            for rank_in_group in range(k):
                processes[group, rank_in_group] = _train_rank(config, run_directory, data_bin, group, rank_in_group,
                                                              group * k + rank_in_group, init_method, cuda)
        groups = sorted({group for group, _ in processes})
        wait_all(processes, run_directory)
    for group in groups:
        mark_trained(run_directory, group)


def group_leader_address(group, k):
    """Host of rank group*k in a Slurm/submitit job (Slurm places tasks on nodes in blocks)."""
    import submitit

    environment = submitit.JobEnvironment()
    tasks_per_node = environment.num_tasks // environment.num_nodes
    return environment.hostnames[(group * k) // tasks_per_node]


def run_task(config, run_directory, data_bin, rank, local_rank):
    """One rank of a job where every rank is its own task (Slurm, submitit, torchrun)."""
    n, k = shape(config)
    group, rank_in_group = divmod(rank, k)
    failed = model_dir(run_directory, group) / f"failed-rank{rank_in_group}.json"
    failed.unlink(missing_ok=True)
    if not has_trained(config, run_directory, group):
        init_method = None
        if k > 1:
            host = (group_leader_address(group, k) if "SLURM_JOB_ID" in os.environ or "SUBMITIT_EXECUTOR" in os.environ
                    else os.environ["MASTER_ADDR"])
            init_method = f"tcp://{host}:{int(os.environ['MASTER_PORT']) + 1 + group}"
        process, log_path = _train_rank(config, run_directory, data_bin, group, rank_in_group, local_rank,
                                        init_method, trains_on_gpus(config))
        try:
            wait_all({(group, rank_in_group): (process, log_path)}, run_directory)
        except FairseqFailed as error:
            what = {"error": str(error)}
            if isinstance(error, FairseqDiverged):
                what["diverged"] = {"rank": error.rank, "log": str(error.log_path)}
            runlog.atomic_write_bytes(failed, lambda handle: handle.write(json.dumps(what).encode()))
            raise
        if rank_in_group == 0:
            mark_trained(run_directory, group)
    if rank == 0:
        wait_for_groups(run_directory, n, k)
        finish(config, run_directory, data_bin)


def wait_for_groups(run_directory, n, k, poll_s=5.0):
    started = time.monotonic()
    while not all(trained(run_directory, group) for group in range(n)):
        for group in range(n):
            for failed in model_dir(run_directory, group).glob("failed-rank*.json"):
                what = json.loads(failed.read_text())
                if "diverged" in what:
                    raise FairseqDiverged(group, what["diverged"]["rank"], what["diverged"]["log"])
                raise FairseqFailed(f"model {group} failed ({failed}): {what['error']}")
        if time.monotonic() - started > 60:
            print(f"waiting for models {[g for g in range(n) if not trained(run_directory, g)]} to finish", flush=True)
            started = time.monotonic()
        time.sleep(poll_s)


def launch_translation(config, run_directory, task=None):
    """task: (rank, local_rank) when this process is one task of a multi-task job, else None."""
    run_directory = Path(run_directory)
    run_directory.mkdir(parents=True, exist_ok=True)
    import_fairseq()
    data_bin = data_bin_of(config)
    if task is None or task[0] == 0:
        start_log(config, run_directory)
    try:
        if task is not None:
            rank, local_rank = task
            n, k = shape(config)
            check_world_size(n * k)
            run_task(config, run_directory, data_bin, rank, local_rank)
            return rank
        run_local(config, run_directory, data_bin)
    except FairseqDiverged as diverged:
        if task is not None and task[0] != 0:
            raise   # this rank's model diverged; rank 0 writes the run's failed end record
        fail(config, run_directory, diverged)   # src/run.py reads it and exits non-zero
        return 0
    finish(config, run_directory, data_bin)
    return 0
