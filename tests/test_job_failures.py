"""One task of a multi-task job that cannot go on ends the job: a leading task that refuses to
train (its run is being trained by another job, its state cannot be read) makes its peers exit at
once instead of waiting for it in the rendezvous for launcher.collective_timeout_s; on Slurm, a
task that exits with an error ends the job step (srun's --kill-on-bad-exit)."""
import os
import time

import pytest
from conftest import QUICK_WORKLOAD, SHORT, compose_job
from forked_script import run_script, start_script
from test_reliability import RUN, free_port

from codistill_experiments import refusals, run_state
from codistill_experiments.runlog import run_dir


def test_a_refused_leader_makes_its_peer_exit_long_before_the_collective_timeout(tmp_path):
    timeout_s = 300
    args = [QUICK_WORKLOAD, "method=codistill", "seed=11", *SHORT, f"launcher.collective_timeout_s={timeout_s}"]
    directory = run_dir(compose_job(args, tmp_path))
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="2")
    with run_state.run_lock(directory):   # as a job of another sweep holding the same run would
        started = time.time()
        ranks = [start_script([*RUN[1:], *args, f"results_root={tmp_path}"], env=dict(env, RANK=str(rank)))
                 for rank in (0, 1)]
        try:
            outputs = [rank.communicate(timeout=90) for rank in ranks]
        finally:
            for rank in ranks:
                rank.kill()
                rank.wait()
    elapsed = time.time() - started
    assert [rank.returncode for rank in ranks] == [1, 1]
    assert "is being trained by host" in outputs[0][1]
    last = outputs[1][1].rstrip("\n").split("\n")[-1]
    assert last.startswith("error: the job's leading task refused to train"), outputs[1][1][-2000:]
    assert f"pid {os.getpid()}" in last
    assert elapsed < 60, elapsed   # not the collective timeout (300 s)


def test_a_refusal_names_this_attempt_only(tmp_path, monkeypatch):
    """A refusal left by an earlier attempt (another Slurm job, a restart) does not stop this one's
    peers; an old one is removed by the next leader that trains."""
    first = {"SLURM_PROCID": "1", "SLURM_JOB_ID": "7", "SLURM_RESTART_COUNT": "0"}
    requeued = {**first, "SLURM_RESTART_COUNT": "1"}
    assert refusals.job_attempt({"SLURM_JOB_ID": "7"}) is None   # not a task of a job
    assert refusals.job_attempt(first) == refusals.job_attempt({**first, "SLURM_PROCID": "0"})
    assert refusals.job_attempt(first) != refusals.job_attempt(requeued)
    refusals.announce_refusal(tmp_path, refusals.job_attempt(first), "run r is being trained by host h pid 1")
    seen = []
    watcher = refusals.watch_for_refusal(tmp_path, refusals.job_attempt(requeued), poll_s=0.01, exit_now=seen.append)
    time.sleep(0.2)
    assert watcher.is_alive() and seen == []
    refusals.announce_refusal(tmp_path, refusals.job_attempt(requeued), "state unreadable")
    watcher.join(timeout=5)
    assert seen == ["state unreadable"]
    old = refusals.refusal_path(tmp_path, refusals.job_attempt(first))
    os.utime(old, (time.time() - 120, time.time() - 120))
    refusals.clear_old_refusals(tmp_path)
    assert not old.exists() and refusals.refusal_path(tmp_path, refusals.job_attempt(requeued)).exists()


def test_two_phase_jobs_are_queued_once_their_teachers_of_the_same_sweep_have_finished(tmp_path, monkeypatch):
    """A sweep holding a two_phase job and its teacher run (the independent job with the same
    settings, as anil_two_phase): queued together on Slurm, the two_phase job would wait on the
    teachers' lock (launcher.lock_wait_s) and be refused. The teachers' jobs are launched first and
    the two_phase ones once those have returned; each queued job carries the values its config read
    from this environment (a site with SBATCH_EXPORT=NONE starts it without them)."""
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobReturn, JobStatus
    from test_sweeps import sweep_in_process

    monkeypatch.setenv("CODISTILL_SLURM_PARTITION", "gpu")
    Plugins.instance()
    sweeper_class = Plugins.instance().class_name_to_class[
        "hydra_plugins.codistill_sweeper.grid_union_sweeper.GridUnionSweeper"]
    launched, running, most = [], [0], [0]

    class RecordingLauncher:
        def launch(self, job_overrides, initial_job_idx):
            running[0] += 1
            most[0] = max(most[0], running[0])
            launched.append(job_overrides)
            running[0] -= 1
            return [JobReturn(status=JobStatus.COMPLETED) for _ in job_overrides]

    monkeypatch.setattr(sweeper_class, "launcher_for", lambda self, resources: RecordingLauncher())
    printed = sweep_in_process("launcher=slurm_local", QUICK_WORKLOAD, "method=two_phase,independent,codistill",
                               "seed=4", *SHORT, f"results_root={tmp_path}")
    methods = [[[o for o in job if o.startswith("method=")][0] for job in wave] for wave in launched]
    assert methods == [["method=independent", "method=codistill"], ["method=two_phase"]], printed
    assert "1 two_phase job(s) wait for their teacher runs" in printed
    for wave in launched:
        for job in wave:
            assert "launcher.partition='gpu'" in job, job


def children_of(pid):
    """The pids of the processes whose parent is `pid` (Linux's /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_rank_ends_when_the_process_that_started_it_is_killed(tmp_path):
    """launch.die_with_leader in a child of a process that is then SIGKILLed: the child goes too."""
    import signal
    import subprocess
    import sys

    script = (
        "import os, sys, time\n"
        "from codistill_experiments.launch import LEADER_PID, die_with_leader\n"
        "os.environ[LEADER_PID] = str(os.getpid())\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    die_with_leader()\n"
        "    time.sleep(120)\n"
        "    os._exit(0)\n"
        "print(child, flush=True)\n"
        "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        time.sleep(0.5)
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 5
        while alive(child) and time.time() < deadline:
            time.sleep(0.02)
        assert not alive(child)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.slow
def test_killing_only_the_leading_process_stops_its_ranks_and_a_rerun_resumes(tmp_path):
    """kill -9 of the process that started a run's ranks (the local launcher's) ends the ranks
    within seconds (they would train on, holding the run's lock: a rerun was refused, naming the
    dead leader), and a rerun then resumes from the last committed state."""
    import signal

    from codistill_experiments.run_state import committed_step

    args = [QUICK_WORKLOAD, "method=codistill", "seed=12", "schedule.epochs=30", "schedule.lr.warmup_epochs=1",
            "schedule.lr.milestones=[15]", *SHORT[3:], f"results_root={tmp_path}"]
    directory = run_dir(compose_job(args, tmp_path))
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE")}
    # src/run.py in a fork of this process (forked_script.py): the local launcher's process, which
    # forks the ranks
    leader = start_script([*RUN[1:], *args], cwd=tmp_path, env=env)
    try:
        deadline = time.time() + 120
        while (committed_step(directory) or 0) < 37 and time.time() < deadline:
            assert leader.poll() is None, leader.communicate()[1][-2000:]
            time.sleep(0.05)
        ranks = children_of(leader.pid)
        assert len(ranks) >= 2, ranks
        os.kill(leader.pid, signal.SIGKILL)   # the leader alone, not its session
        leader.wait()
        killed_at = time.time()
        while any(alive(rank) for rank in ranks) and time.time() - killed_at < 10:
            time.sleep(0.05)
        assert not any(alive(rank) for rank in ranks), "the ranks trained on after their leader was killed"
    finally:
        for rank in children_of(leader.pid):
            os.kill(rank, signal.SIGKILL)
    rerun = run_script([*RUN[1:], *args], cwd=tmp_path, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resume (from update " in rerun.stdout
