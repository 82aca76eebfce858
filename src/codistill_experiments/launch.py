"""Starting the n*k ranks of one run, with the same worker code everywhere:
- under Slurm/submitit (one task per rank): the job environment from submitit's helpers;
- under torchrun (or anything that sets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): that rank;
- otherwise: this process spawns the ranks itself (a FileStore rendezvous, jobs.local_rendezvous).
With method.transport=files every model is its own job of k ranks (model_jobs.py): on Slurm the
sweeper queues one job per model (`model_job=<i>`); locally this process starts the n models'
process groups together, each its own world, and one that dies does not stop the others.
"""
import contextlib
import datetime
import os
import signal

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from codistill import Layout, SnapshotTimeout

from .config import typed_job
from .jobs import (
    check_world_size,
    gpu_of,
    job_rank,
    local_rendezvous,
    process_group_backend,
    trains_on_gpus,
    visible_gpus,
)
from .model_jobs import assemble_run_log, model_directory, model_ended, uses_files
from .run_state import run_lock
from .training import two_phase
from .training.engine import train_rank
from .translation.checks import is_fairseq


def layout_of(config, rank=0):
    scale = config["scale"]
    return Layout(n_groups=config["method"]["n"], ranks_per_group=int(scale["ranks_per_model"]),
                  ranks_per_node=int(scale["ranks_per_node"]), rank=rank)


def _device(local_rank, config):
    """This rank's device: its own GPU (jobs.gpu_of) when the job trains on GPUs, else the CPU."""
    return torch.device("cuda", gpu_of(local_rank)) if trains_on_gpus(config) else torch.device("cpu")


def rank_start_method(config):
    """How this process starts a run's ranks: launcher.start_method, except on a machine with
    GPUs, where a forked rank could not use CUDA once this process has queried it (a sweep's
    earlier job may have): its ranks are spawned."""
    method = config["launcher"]["start_method"]
    return "spawn" if method == "fork" and visible_gpus() > 0 else method


# How gloo reports a peer that died (connection reset/closed) or hangs (timeout), as an exception
# run_rank turns into RankLost. NCCL does not raise: its watchdog aborts the rank's process once a
# collective outlives the group's timeout (or a peer's communicator failed), and wait_for_ranks (or
# Slurm, which ends the job step) reports a rank killed by SIGABRT.
PEER_LOST = ("timed out", "timeout", "connection reset", "connection closed", "broken pipe")
NCCL_ABORT = ("SIGABRT: on GPUs NCCL aborts a rank whose collective outlived launcher.collective_timeout_s "
              "or whose peer was lost; the rank that failed first, if any, is named above")


class RankLost(RuntimeError):
    """A rank of the run died, failed or lost a peer. Its message says which and what to do;
    src/run.py prints it last, alone, after the traceback of its cause."""


def train_typed(config, layout, run_directory, device):
    """The engine (engine.train_rank) on the typed config of `config`, a validated job's resolved
    dict, as submitit pickles it for each rank."""
    return train_rank(typed_job(config), layout, run_directory, device)


def run_rank(rank, config, run_directory, local_rank=None, init_method="env://"):
    """One rank: join the process group (env:// when a job launcher started it, else the
    rendezvous of the process that forked it), train, leave. `rank` is its place in the run's
    layout; with method.transport=files its world is its model group, where it is rank_in_group."""
    layout = layout_of(config, rank)
    files = uses_files(config)
    world_rank, world_size = (layout.rank_in_group, layout.ranks_per_group) if files else (rank, layout.world_size)
    device = _device(rank if local_rank is None else local_rank, config)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(config["launcher"]["threads_per_rank"])
    set_determinism(config["deterministic"], device)
    timeout_s = config["launcher"]["collective_timeout_s"]
    backend, bound = process_group_backend(device)
    dist.init_process_group(backend, init_method=init_method, rank=world_rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout_s), **bound)
    try:
        if config["method"]["name"] == "two_phase":   # the teacher run first, then this run's students
            two_phase.train(config, layout, run_directory, device, train_typed)
        else:
            train_typed(config, layout, run_directory, device)
    except SnapshotTimeout as error:   # a peer job's snapshot never came: say so, not "a collective failed"
        raise RankLost(f"model {layout.group_index}: {error}") from error
    except (dist.DistError, RuntimeError) as error:
        if not any(sign in str(error).lower() for sign in PEER_LOST):
            raise
        raise RankLost(f"rank {rank} (model {layout.group_index}) lost a peer: a collective failed or did "
                       f"not complete within launcher.collective_timeout_s={timeout_s} s ({one_line(error)}). "
                       "Rerun the same command to resume from the last committed state in "
                       f"{run_directory}") from error
    finally:
        dist.destroy_process_group()


def set_determinism(deterministic, device):
    """CPU runs are bit-reproducible either way. On GPU, `deterministic=true` selects deterministic
    kernels (cuDNN, cuBLAS) where they exist; NCCL's reduction order can still differ between runs.
    Where none exists (on CUDA: the backward of ResNet's adaptive average pooling, NLLLoss) torch
    warns and runs the nondeterministic kernel: raising would stop every vision run at its first
    update."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


# The process that starts a run's ranks (and holds its lock): each rank ends when it dies.
LEADER_PID = "CODISTILL_LEADER_PID"


def die_with_leader():
    """Makes the kernel SIGKILL this rank when the process that started it dies (Linux's
    PR_SET_PDEATHSIG), so that killing the leading process alone (kill -9 of its pid) stops the
    run's ranks instead of leaving them training; a forked rank also holds the run's lock (its file
    is inherited), which is then released. A rank whose leader died before it got here exits now.
    Elsewhere a no-op."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    leader = os.environ.get(LEADER_PID)
    if leader is not None and os.getppid() != int(leader):
        os._exit(1)


def _spawned(index, config, run_directory, init_method):
    die_with_leader()
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index))
    run_rank(index, config, run_directory, init_method=init_method)


def warm_imports(config):
    """Forked ranks inherit this process's modules: importing here once (seconds for sklearn and
    for torch._dynamo, which the first optimizer imports) saves it in every rank of every run of
    a sweep that the local launcher runs in this process."""
    import importlib

    from .workloads import IMPORTS

    for module in ["torch._dynamo", *IMPORTS[config["workload"]["name"]]]:
        importlib.import_module(module)


def launch(config, run_directory):
    world_size = layout_of(config).world_size
    run_directory.mkdir(parents=True, exist_ok=True)
    task = job_rank()
    if is_fairseq(config):  # fairseq trains each model: translation/launcher.py
        from .translation.launcher import launch_translation

        return launch_translation(config, run_directory, task)
    if uses_files(config):
        return launch_model_jobs(config, run_directory, task)
    if task is not None:
        rank, local_rank = task
        check_world_size(world_size)
        run_rank(rank, config, run_directory, local_rank)
        return rank
    start_method = rank_start_method(config)
    if start_method == "fork":
        warm_imports(config)
    with local_rendezvous() as init_method:
        ranks = start_ranks(_spawned, (config, run_directory, init_method("run")), world_size, start_method)
        return wait_for_ranks(ranks, config, run_directory)


def start_ranks(function, args, nprocs, start_method):
    """Starts function(index, *args) in nprocs processes, unjoined. They start with Ctrl-C ignored
    (inherited, and kept by a spawned interpreter): this process alone handles it, stopping them,
    so that an interrupted run prints one line, not a traceback per rank."""
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ[LEADER_PID] = str(os.getpid())
    try:
        return mp.start_processes(function, args=args, nprocs=nprocs, join=False, start_method=start_method)
    finally:
        signal.signal(signal.SIGINT, handler)


def wait_for_ranks(ranks, config, run_directory):
    """Waits for a run's ranks; a lost one is raised as RankLost, Ctrl-C stops them all."""
    try:
        while not ranks.join():
            pass
    except KeyboardInterrupt:
        stop(ranks)
        raise
    except mp.ProcessExitedException as lost:
        # torch has already stopped every other rank; say which one was lost and what to do.
        group = layout_of(config, lost.error_index).group_index
        signal_name = NCCL_ABORT if lost.signal_name == "SIGABRT" else lost.signal_name
        raise RankLost(f"rank {lost.error_index} (model {group}) exited with code {lost.exit_code}"
                       f"{' (signal ' + signal_name + ')' if signal_name else ''}; the other "
                       "ranks were stopped. Rerun the same command to resume from the last "
                       f"committed state in {run_directory}") from lost
    except mp.ProcessRaisedException as failed:
        group = layout_of(config, failed.error_index).group_index
        raise RankLost(f"rank {failed.error_index} (model {group}) failed: {last_line(failed)}; the other "
                       "ranks were stopped (its traceback is above). Once the cause is fixed, rerunning the same "
                       f"command resumes from the last committed state in {run_directory}") from failed
    return 0


def launch_model_jobs(config, run_directory, task):
    """method.transport=files. In a job that trains one model (`model_job`, e.g. one Slurm job of
    the run's n): this task's rank of it. Otherwise every unfinished model's k ranks, started here
    together, each model its own world; when one model's processes die the others train on, and
    once they have finished this raises RankLost naming the lost models (a rerun resumes them)."""
    k, model_job = layout_of(config).ranks_per_group, config["model_job"]
    if task is not None:
        if model_job is None:
            raise RuntimeError("method.transport=files: a job started by a job launcher trains one model; set "
                               "model_job=<i> (the sweeper does for each job it queues)")
        rank_in_job, local_rank = task
        check_world_size(k)
        run_rank(model_job * k + rank_in_job, config, run_directory, local_rank)
        return rank_in_job
    models = [model_job] if model_job is not None else range(config["method"]["n"])
    models = [model for model in models if not model_ended(run_directory, model)]
    start_method = rank_start_method(config)
    if start_method == "fork":
        warm_imports(config)
    with local_rendezvous() as init_method:
        started = {model: start_ranks(_spawned_model, (model, config, run_directory, init_method(f"model{model}")), k,
                                      start_method)
                   for model in models}
        lost = wait_for_models(started)
    assemble_run_log(config, run_directory)
    if lost:
        said = "; ".join(f"model {model}: {what_happened(error)}" for model, error in sorted(lost.items()))
        raise RankLost(f"{said}. The other models trained on. Rerun the same command: each lost model resumes from "
                       f"its last committed state in {run_directory}/model<i> and rejoins from its peers' snapshots") \
            from next(iter(lost.values()))
    return 0


def wait_for_models(started):
    """Waits for every model's ranks ({model: ranks}); returns {model: the error} of those lost."""
    lost = {}
    try:
        while started:
            for model, ranks in list(started.items()):
                try:
                    if ranks.join(timeout=0.2):
                        del started[model]
                except (mp.ProcessExitedException, mp.ProcessRaisedException) as error:
                    lost[model] = error
                    del started[model]
    except KeyboardInterrupt:
        for ranks in started.values():
            stop(ranks)
        raise
    return lost


def _spawned_model(index, model, config, run_directory, init_method):
    """Rank `index` of model `model`'s job; its first rank holds the model's lock (run_state.run_lock:
    its file names the process, which is what to stop to stop this model), unless the command
    trains this model alone (model_job), whose process holds it already."""
    die_with_leader()
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index))
    k = layout_of(config).ranks_per_group
    locked = run_lock(model_directory(run_directory, model)) if config["model_job"] is None \
        else contextlib.nullcontext()
    with locked:
        run_rank(model * k + index, config, run_directory, local_rank=model * k + index, init_method=init_method)


def what_happened(error):
    if isinstance(error, mp.ProcessExitedException):
        return (f"its rank {error.error_index} exited with code {error.exit_code}"
                f"{' (signal ' + error.signal_name + ')' if error.signal_name else ''}")
    return f"its rank {error.error_index} failed: {last_line(error)}"


def stop(ranks):
    """Terminates the ranks still running and waits for them (their state on disk is what the
    last commit left: a rerun resumes from it)."""
    for process in ranks.processes:
        if process.is_alive():
            process.terminate()
    for process in ranks.processes:
        process.join()


def last_line(error):
    """The last line of an error's text: a child's traceback ends with its exception."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def one_line(error, limit=300):
    """An error's text on one line (the message of a lost rank must stay the last line)."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[:limit] + " ..."
