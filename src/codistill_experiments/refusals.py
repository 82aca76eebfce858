"""A job of several tasks (Slurm, submitit, torchrun: one task per rank) whose leading task
refuses to train (its run is being trained by another job, its state cannot be read) ends at
once: the leader writes a refusal of this attempt in the run directory, and each other task,
which would otherwise wait for it in the rendezvous or a collective for
launcher.collective_timeout_s, watches for it and exits. Nothing here imports torch."""
import contextlib
import hashlib
import os
import sys
import threading
import time
from pathlib import Path

# The variables that name one attempt of a multi-task job (every task of it sees the same values;
# a requeued or restarted attempt sees others): Slurm's job and its restarts, torchrun's run and
# its restarts, submitit's local job, and the rendezvous itself.
ATTEMPT_VARIABLES = ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "SLURM_STEP_ID", "TORCHELASTIC_RUN_ID",
                     "TORCHELASTIC_RESTART_COUNT", "SUBMITIT_LOCAL_JOB_ID", "MASTER_ADDR", "MASTER_PORT")
REFUSAL_PREFIX = "refused-"
# A refusal left by an attempt that ended this long ago is removed by the next leader that starts
# (its peers saw it within REFUSAL_POLL_S).
REFUSAL_KEPT_S = 60.0
REFUSAL_POLL_S = 0.5


def job_attempt(environ=None):
    """A name of this attempt of the multi-task job this process is one task of, the same in all
    its tasks; None when no job launcher started it (it starts its ranks itself)."""
    environ = os.environ if environ is None else environ
    if not any(key in environ for key in ("RANK", "SLURM_PROCID", "SUBMITIT_LOCAL_GLOBALID")):
        return None
    named = [f"{key}={environ[key]}" for key in ATTEMPT_VARIABLES if key in environ]
    if not named:
        return None
    return hashlib.sha1(";".join(named).encode()).hexdigest()[:16]


def refusal_path(directory, attempt):
    return Path(directory) / f"{REFUSAL_PREFIX}{attempt}"


def announce_refusal(directory, attempt, message):
    """Written by a job's leading task that refuses to train (the run is being trained elsewhere,
    its state cannot be read): its peers, which would otherwise wait in the rendezvous or a
    collective for launcher.collective_timeout_s, see it and exit (watch_for_refusal)."""
    if attempt is None:
        return
    with contextlib.suppress(OSError):
        Path(directory).mkdir(parents=True, exist_ok=True)
        temporary = refusal_path(directory, attempt).with_suffix(".tmp")
        temporary.write_text(message + "\n")
        os.replace(temporary, refusal_path(directory, attempt))


def clear_old_refusals(directory, kept_s=REFUSAL_KEPT_S):
    """Removes the refusals of attempts that ended over kept_s ago (their peers have exited)."""
    for path in Path(directory).glob(f"{REFUSAL_PREFIX}*"):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > kept_s:
                path.unlink()


def watch_for_refusal(directory, attempt, poll_s=REFUSAL_POLL_S, exit_now=None):
    """In a task that is not the job's leader: a daemon thread that ends this process (exit
    status 1, the leader's reason on stderr) once the leader has announced a refusal of this
    attempt, wherever this task then waits (the rendezvous, a collective). None without a job."""
    if attempt is None:
        return None
    path = refusal_path(directory, attempt)

    def exit_with(reason):
        print(f"error: the job's leading task refused to train, so this task stops too: {reason}",
              file=sys.stderr, flush=True)
        os._exit(1)

    exit_now = exit_now or exit_with

    def watch():
        while True:
            try:
                reason = path.read_text().strip()
            except OSError:
                time.sleep(poll_s)
                continue
            exit_now(reason)
            return

    thread = threading.Thread(target=watch, name="refusal watch", daemon=True)
    thread.start()
    return thread
