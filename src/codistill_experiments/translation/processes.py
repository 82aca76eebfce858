"""fairseq in child processes of this one: a CPU child is forked (fairseq and torch are imported
once for a whole sweep, and forked ranks inherit them), a GPU child starts a fresh interpreter
(start_method says why). fairseq runs in its own process, so the unsafe checkpoint loading it needs
on torch >= 2.6 (FAIRSEQ_ENV) and its Hydra set-up stay out of this one; a child dies with its
parent, and a failed one stops the others with an error naming its log."""
import copy
import multiprocessing
import os
import signal
import sys
import traceback
from pathlib import Path

# fairseq's checkpoints pickle argparse.Namespace; torch >= 2.6 refuses them unless told otherwise.
FAIRSEQ_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
# The exit status of a fairseq process whose training diverged (non-finite gradients): a failure
# that a rerun would repeat, told apart from a crash that a rerun resumes.
DIVERGED_EXIT = 3


def _fairseq_entry(tool):
    if tool == "train":
        from fairseq_cli.train import cli_main
    elif tool == "generate":
        from fairseq_cli.generate import cli_main
    elif tool == "preprocess":
        from fairseq_cli.preprocess import cli_main
    else:
        raise ValueError(tool)
    return cli_main


# What Hydra's ConfigStore held once this process had imported fairseq (None before): the configs
# fairseq composes its own from, which it stores there only on its first import.
_fairseq_configs = None


def import_fairseq():
    """Import fairseq (seconds) once in this process: forked (CPU) ranks inherit it. The plugin is
    not imported here: each fairseq process loads it from --user-dir.

    Every call also puts fairseq's configs back into Hydra's ConfigStore. Hydra's joblib launcher
    (launcher=local_parallel) gives each job a copy of the launcher's Hydra state, whose ConfigStore
    lacks them, and a worker process that ran a job before has fairseq imported already: without
    them its fairseq could not compose ("Could not find 'lr_scheduler/fixed'")."""
    global _fairseq_configs
    from hydra.core.config_store import ConfigStore

    if _fairseq_configs is None:
        import fairseq_cli.generate  # noqa: F401
        import fairseq_cli.preprocess  # noqa: F401
        import fairseq_cli.train  # noqa: F401
        import torch._dynamo  # noqa: F401  (fairseq's first optimizer imports it: seconds, once here)
        _fairseq_configs = copy.deepcopy(ConfigStore.instance().repo)
    _add_missing(ConfigStore.instance().repo, _fairseq_configs)


def _add_missing(repo, saved):
    """Adds to the ConfigStore tree `repo` (groups are dicts) every entry of `saved` it lacks."""
    for name, entry in saved.items():
        if name not in repo:
            repo[name] = copy.deepcopy(entry)
        elif isinstance(entry, dict) and isinstance(repo[name], dict):
            _add_missing(repo[name], entry)


def _die_with_parent(parent):
    """A fairseq process must not outlive the process that started it (a killed launcher would
    leave ranks writing into a run directory that a rerun resumes): Linux's parent-death signal."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _child(tool, argv, log_path, threads, parent, gpu):
    """Body of a fairseq process: its own log file, environment, GPU and Hydra version base."""
    import logging

    import torch
    from hydra import version

    _die_with_parent(parent)
    os.environ.update(FAIRSEQ_ENV)
    os.environ["CODISTILL_PROGRESS_FD"] = str(os.dup(1))
    log = open(log_path, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log  # also when the parent had replaced them (pytest's capture)
    logging.root.handlers = []
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO,
                        stream=sys.stdout, force=True)
    # After the log is in place: a GPU that cannot be used is then named in the log that
    # FairseqFailed quotes. fairseq selects a device only for distributed ranks; a single-rank model
    # needs it too.
    if gpu is not None:
        torch.cuda.set_device(gpu)
    torch.set_num_threads(threads)
    version.setbase("1.1")  # fairseq composes its own config through hydra.experimental (Hydra 1.1 API)
    sys.argv = [f"fairseq-{tool}", *argv]
    import_fairseq()
    try:
        _fairseq_entry(tool)()
    except BaseException as error:
        if floating_point_error(error) is None:
            raise
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(DIVERGED_EXIT)
    sys.stdout.flush()


def floating_point_error(error):
    """fairseq's sign that training diverged, a FloatingPointError ("gradients are Nan/Inf",
    "Minimum loss scale reached"), found in `error` or what it was raised while handling: fairseq
    re-raises it after running its NanDetector, which can itself fail (fairseq 0.12.3.1 on torch
    2.14: StopIteration) and hide it as the context of another error. None when absent."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, FloatingPointError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def start_method(gpu):
    """How a child that uses GPU `gpu` (None: the CPU only) is started. By the time a child starts,
    this process has queried CUDA (jobs.trains_on_gpus, jobs.gpu_of, and importing fairseq, which calls
    torch.cuda.device_count), and torch refuses CUDA in a child forked after that ("Cannot
    re-initialize CUDA in forked subprocess"). So a GPU child is spawned, a fresh interpreter where
    CUDA works; importing torch and fairseq again costs it seconds, nothing beside a GPU run. A CPU
    child never touches CUDA, so it is forked and inherits the imported fairseq: mini runs and the
    tests start their fairseq processes at once."""
    return "fork" if gpu is None else "spawn"


def start_process(target, args, gpu=None, name=None):
    """Starts target(*args) in a child process by start_method(gpu). Under spawn the target and args
    are pickled, and the child gets this process's environment and sys.path."""
    sys.stdout.flush()
    sys.stderr.flush()
    process = multiprocessing.get_context(start_method(gpu)).Process(target=target, args=args, name=name)
    process.start()
    return process


def start_fairseq(tool, argv, log_path, threads=1, gpu=None):
    """Starts a process running `fairseq-<tool> argv` (on GPU `gpu`), its output appended to log_path."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"\n$ fairseq-{tool} {' '.join(argv)}\n")
    return start_process(_child, (tool, argv, str(log_path), threads, os.getpid(), gpu), gpu,
                         name=f"fairseq-{tool}")


def log_tail(log_path, lines=15):
    try:
        return "".join(Path(log_path).read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except FileNotFoundError:
        return ""


class FairseqFailed(RuntimeError):
    pass


class FairseqDiverged(FairseqFailed):
    """Model `group`'s training diverged (rank `rank` of its group): the run cannot give a result,
    and a rerun would diverge again."""

    def __init__(self, group, rank, log_path):
        self.group, self.rank, self.log_path = group, rank, log_path
        super().__init__(f"model {group} (rank {rank} of its group) diverged: fairseq found non-finite gradients; "
                         f"its log {log_path} ends with:\n{log_tail(log_path)}")


def wait_all(processes, run_directory):
    """processes: {(group, rank): (process, log path)}. Waits for all; when one fails, stops the
    others and raises an error naming the model, the rank and its log: FairseqDiverged when its
    training diverged, else FairseqFailed, which a rerun resumes."""
    try:
        while processes:
            for key, (process, log_path) in list(processes.items()):
                process.join(timeout=0.05)
                if process.exitcode is None:
                    continue
                del processes[key]
                group, rank = key
                if process.exitcode == DIVERGED_EXIT:
                    raise FairseqDiverged(group, rank, log_path)
                if process.exitcode != 0:
                    raise FairseqFailed(
                        f"model {group} (rank {rank} of its group) exited with code {process.exitcode}; the other "
                        f"models were stopped. Its log {log_path} ends with:\n{log_tail(log_path)}\nRerun the same "
                        f"command to resume every model from its last checkpoint in {run_directory}")
    finally:
        for process, _ in processes.values():
            if process.is_alive():
                process.terminate()
        for process, _ in processes.values():
            process.join(timeout=10)
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
                process.join()


def run_fairseq(tool, argv, log_path, threads=1, gpu=None):
    """Runs `fairseq-<tool> argv` (on GPU `gpu`) to its end; FairseqFailed with its log's tail when it fails."""
    process = start_fairseq(tool, argv, log_path, threads, gpu)
    process.join()
    if process.exitcode != 0:
        raise FairseqFailed(f"fairseq-{tool} exited with code {process.exitcode}; {log_path} ends with:\n"
                            f"{log_tail(log_path)}")
