"""The Slurm path against a real Slurm: the single-node cluster of slurm/local_cluster.sh (with
accounting), reached through Hydra's submitit launcher as on a cluster, and the plain sbatch
script. Each run's log is compared with the same job run locally, record for record."""
import os
import shutil
import subprocess
import sys
import time

import pytest
from conftest import QUICK_WORKLOAD, ROOT, SHORT, compose_job
from forked_script import start_script
from test_sweeps import eval_records

from codistill_experiments.launch import launch
from codistill_experiments.run_state import committed_step
from codistill_experiments.runlog import read_records, run_dir, run_id

CLUSTER = ROOT / "slurm" / "local_cluster.sh"
# The runs the tests interrupt must still be training when the interruption lands (37 updates per
# epoch, a commit at each epoch). A requeued or cancelled task ignores SIGTERM (submitit's) and
# trains on until slurmd's SIGKILL, at least 5 s later whatever KillWait says (slurmd waits
# max(KillWait, 5) s). Sized in epochs, such a run ended before the kill on a fast machine and took
# a minute of two cores on a slow one; so the interrupted runs pause after each update
# (update_pause_s, which changes nothing they compute or their run id): LONG_EPOCHS epochs last
# about LONG_S on any machine, several times the kill's delay, while the CPU they leave idle runs the
# other tests. The local run they must end as trains without the pause.
LONG_S, LONG_EPOCHS, UPDATES_PER_EPOCH = 25, 10, 37


def long_recipe(epochs):
    """A codistillation run of `epochs` epochs: warm-up, then decays at half and three quarters."""
    return [f"schedule.epochs={epochs}", "schedule.lr.warmup_epochs=1",
            f"schedule.lr.milestones=[{epochs // 2},{3 * epochs // 4}]",
            "schedule.weight_decay.values=[1e-4]", "schedule.weight_decay.milestones=[]"]


LONG = long_recipe(LONG_EPOCHS)
PAUSED = [f"update_pause_s={LONG_S / (LONG_EPOCHS * UPDATES_PER_EPOCH):.3f}"]   # what the interrupted runs add


# The job that is requeued, and the one cancelled (each test in its own results root): one job, so
# that one local run is the reference of both (long_reference).
LONG_SEED = 3


def _cluster_env():
    listed = subprocess.run([str(CLUSTER), "env"], capture_output=True, text=True, check=True).stdout
    return dict(item.split("=", 1) for item in listed.replace("export ", "").split())


def this_checkout(env):
    """`env` with this checkout's code first on the import path, as absolute paths: the sweep and
    its Slurm jobs start in other directories, where a relative PYTHONPATH (src:.) names nothing
    and the jobs would import whatever checkout the environment's editable install points at."""
    paths = [str(ROOT / "src"), str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


@pytest.fixture(scope="module")
def slurm():
    """Environment for Slurm clients; brings the local cluster up if it is not (root only) and
    takes down what it started. CI starts it beforehand (.ci/run) and sets CODISTILL_REQUIRE_SLURM=1,
    which turns "cannot start a Slurm here" into a failure instead of a skip."""
    env = this_checkout({**os.environ, **_cluster_env()})
    running = subprocess.run([str(CLUSTER), "status"], env=env, capture_output=True).returncode == 0
    started = False
    if not running:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            if os.environ.get("CODISTILL_REQUIRE_SLURM") == "1":
                pytest.fail("no Slurm is running and this machine cannot start one (needs root and apt-get)")
            pytest.skip("no local Slurm: run `sudo slurm/local_cluster.sh up` to test the Slurm path")
        subprocess.run([str(CLUSTER), "up"], env=env, check=True, timeout=600)
        started = True
    yield env
    if started:
        subprocess.run([str(CLUSTER), "down"], env=env, check=False)


def slurm_cli(env, *args, cwd, preexec_fn=None):
    """`python src/run.py <args>` with env, in a fork of this process (tests/forked_script.py: the
    sweep's own process without a fresh interpreter's imports; its Slurm jobs start their own)."""
    process = start_script([ROOT / "src" / "run.py", *args], cwd=cwd, env=env, preexec_fn=preexec_fn)
    try:
        stdout, stderr = process.communicate(timeout=600)
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def short_references(tmp_path_factory):
    """The local runs that the mini sweep's two jobs and the plain sbatch script's job are compared
    with ({name: (run dir, job)}), run once for both tests: the sbatch script runs the sweep's
    codistillation job (its config, its seed)."""
    root = tmp_path_factory.mktemp("short")
    return {name: local_run([*overrides, *SHORT], root) for name, overrides in SWEEP_JOBS.items()}


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    """The uninterrupted local run of the job that the requeued and the cancelled Slurm runs (each
    in its own results root) must end as, (run dir, job): run once for both."""
    return local_run(["method=codistill", f"seed={LONG_SEED}", *LONG], tmp_path_factory.mktemp("long"))


def local_run(overrides, results_root):
    """(run dir, job) of `overrides` run locally with real gloo processes, as conftest's run_job."""
    container = compose_job(overrides, results_root)
    directory = run_dir(container)
    launch(container, directory)
    return directory, container


# Two jobs of different shapes in one sweep: all_reduce on one rank, 2-way codistillation on two
# (each sized from its own config, not from the sweep's first job).
SWEEP_JOBS = {"allreduce": ["method=allreduce", "method.nodes_per_model=1"], "codistill": ["method=codistill"]}


@pytest.mark.slow
def test_a_mini_sweep_on_slurm_writes_the_logs_of_a_local_run(tmp_path, slurm, short_references):
    root = tmp_path / "slurm"
    done = slurm_cli(slurm, "-m", "launcher=slurm_local", QUICK_WORKLOAD, "method=allreduce,codistill",
                     "method.nodes_per_model=1",
                     f"results_root={root}", *SHORT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    for name, (directory, _) in short_references.items():
        slurm_dir = root / "runs" / directory.name
        assert eval_records(slurm_dir) == eval_records(directory), name
        assert read_records(slurm_dir / "metrics.jsonl")[0]["slurm_job_id"] is not None
    # The codistillation job really ran as two Slurm tasks of one job.
    logs = [p.read_text() for p in (root / "hydra" / "adhoc" / ".submitit").glob("*/*_log.out")]
    assert sum("global_rank=1(2)" in text for text in logs) == 1


def _wait_for_commit(sweep, directory, step=37):
    """Waits until the run state in `directory` (a run's, or a model job's) has committed `step`
    or later (37: the first epoch); returns the step committed then."""
    deadline = time.time() + 300
    while time.time() < deadline:
        committed = committed_step(directory)
        if committed is not None and committed >= step:
            return committed
        assert sweep.poll() is None, sweep.communicate()[1][-3000:]
        time.sleep(0.05)
    pytest.fail(f"the Slurm job never committed a step in {directory}")


def _interrupt_once_committed(env, sweep, directory, action):
    """Waits until the run has committed its first epoch, then applies
    action(job id) to its Slurm job."""
    step = _wait_for_commit(sweep, directory)
    submitted = submitted_jobs(directory.parents[1])
    assert len(submitted) == 1, submitted   # this sweep's one Slurm job (other jobs may be queued)
    action(submitted[0])
    return step


def requeue(env, job_id):
    """What a preemption does: the job is killed and queued again. Slurm holds a requeued job for
    two minutes once its old allocation is released (BeginTime); it is released then."""
    subprocess.run(["scontrol", "requeue", job_id], env=env, check=True)
    deadline = time.time() + 120
    while time.time() < deadline and job_state(env, job_id) != "PENDING":
        time.sleep(0.2)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=env, check=True)


def job_state(env, job_id):
    return subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], env=env, capture_output=True,
                          text=True).stdout.strip()


def submitted_jobs(root):
    """The Slurm job ids that the sweep writing to results_root=root has submitted (submitit
    queues a sweep's jobs as one array: its id names them all)."""
    folder = root / "hydra" / "adhoc" / ".submitit"
    return sorted(path.name for path in folder.iterdir() if path.name.isdigit()) if folder.is_dir() else []


def array_task_training(root, identifier, model):
    """The Slurm id (<array>_<index>) of the array task whose job trains model `model` of run
    `identifier`: the one whose output names it (src/run.py prints what each job trains)."""
    said = f"{identifier} model {model} ("
    tasks = [path.name for path in (root / "hydra" / "adhoc" / ".submitit").glob("*_*") if path.is_dir()
             and any(said in log.read_text() for log in path.glob("*_log.out"))]
    assert len(tasks) == 1, tasks
    return tasks[0]


def final_states(env, job_id, timeout_s=60):
    """{task id: state} of a Slurm job (or of each task of an array) from accounting, each task's
    last attempt, once none is queued or running: submitit reads a job's result from disk moments
    before Slurm has ended the job. A job that accounting does not list yet (just submitted) is
    waited for too."""
    deadline = time.time() + timeout_s
    while True:
        listed = subprocess.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "JobID,State"], env=env,
                                capture_output=True, text=True, check=True).stdout
        states = dict(line.split("|", 1) for line in listed.splitlines() if line)
        if time.time() > deadline or states and not set(states.values()) & {"PENDING", "RUNNING", "COMPLETING",
                                                                               "REQUEUED"}:
            return states
        time.sleep(0.2)


@pytest.fixture
def start_on_slurm(slurm, tmp_path):
    """Starts a one-run codistillation sweep in the background, `overrides` added to its
    arguments: (its process, its arguments). Whatever it leaves queued or running when the test
    ends is cancelled, so that a failing test does not hold the node for the next one."""
    roots, started = [], []

    def start(seed, root, overrides=(), preexec_fn=None):
        roots.append(root)
        args = ["-m", "launcher=slurm_local", QUICK_WORKLOAD, "method=codistill", f"seed={seed}",
                f"results_root={root}", *LONG, *PAUSED, *overrides]
        sweep = start_script([ROOT / "src" / "run.py", *args], cwd=tmp_path, env=slurm, preexec_fn=preexec_fn)
        started.append(sweep)
        return sweep, args

    yield start
    for sweep in started:   # a sweep left waiting by a failed test (a no-op once it has ended)
        sweep.kill()
    leftovers = [job for root in roots for job in submitted_jobs(root)]
    if leftovers:
        subprocess.run(["scancel", *leftovers], env=slurm, check=False)


@pytest.mark.slow
def test_a_requeued_job_resumes_and_ends_as_an_uninterrupted_run(tmp_path, slurm, long_reference, start_on_slurm):
    reference, container = long_reference
    root = tmp_path / "slurm"
    sweep, _ = start_on_slurm(LONG_SEED, root)
    directory = root / "runs" / reference.name
    interrupted_at = _interrupt_once_committed(slurm, sweep, directory, lambda job_id: requeue(slurm, job_id))
    _, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err[-3000:]
    task_log = next((root / "hydra" / "adhoc" / ".submitit").glob("*/*_0_log.out")).read_text()
    resumed_from = int(task_log.split("resume (from update ")[1].split(")")[0])
    total = container["schedule"]["epochs"] * 37
    assert interrupted_at <= resumed_from < total
    assert eval_records(directory) == eval_records(reference)


def results_seen_at_once():
    """In a sweep's process: submitit waits up to 15 s for the result file of a job that Slurm
    says has ended, for a shared filesystem that shows files late; a cancelled job never writes
    one, and this node's disk shows a file at once. And it learns that a job has ended without a
    result from accounting, asked at 2, 4, 8, 16, 32 ... s after the job was queued (sparing a
    cluster's sacct); this node's is asked every 2 s. Pure waiting, each cut to seconds."""
    from submitit.core.core import Job
    from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

    Job._results_timeout_s = 1
    SlurmJob.watcher = SlurmInfoWatcher(delay_s=2)


@pytest.mark.slow
def test_a_cancelled_job_resumes_when_the_sweep_is_run_again(tmp_path, slurm, long_reference, start_on_slurm):
    reference, _ = long_reference
    root = tmp_path / "slurm"
    sweep, args = start_on_slurm(LONG_SEED, root, preexec_fn=results_seen_at_once)
    directory = root / "runs" / reference.name
    _interrupt_once_committed(slurm, sweep, directory,
                              lambda job_id: subprocess.run(["scancel", job_id], env=slurm, check=True))
    _, err = sweep.communicate(timeout=600)
    assert sweep.returncode != 0   # the sweep reports the cancelled job
    # Run again without the pause, which only kept the first attempt training until the cancel
    # (the same job and run id: update_pause_s changes neither)
    unpaused = [arg for arg in args if arg not in PAUSED]
    again = slurm_cli(slurm, *unpaused, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert eval_records(directory) == eval_records(reference)
    # And a third time there is nothing left to do: nothing is queued.
    third = slurm_cli(slurm, *unpaused, cwd=tmp_path)
    assert third.returncode == 0 and "skip " in third.stdout and "Submitit" not in third.stderr + third.stdout


# Each model its own job, reading its peer's newest checkpoint from the shared run directory once
# an epoch (37 updates; a resume still starts at an exchange point). An exchange writes a snapshot
# to disk and reads the peer's: at the default of every update they took most of the run's time
# (2.7 times as long in all). Once an epoch, a model job, paused after each update as the collective
# run is, lasts about as long and outlasts the kill after its first commit as many times over.
MODEL_JOBS = ["method.exchange=checkpoints", "method.transport=files", "method.snapshot_mode=async", "method.period=37"]


@pytest.mark.slow
def test_a_requeued_model_job_resumes_alone_and_the_run_log_has_both_models(tmp_path, slurm, start_on_slurm):
    """method.transport=files on Slurm: the run is two jobs (tasks of one array), one per model.
    Model 1's job preempted (requeued) resumes from its own committed state while model 0 trains
    on untouched; the run's log, assembled by the last model to end, has every evaluation of both
    and says when model 1 was down."""
    root = tmp_path / "slurm"
    container = compose_job(["method=codistill", "seed=7", *LONG, *PAUSED, *MODEL_JOBS], root)
    identifier, directory = run_id(container), run_dir(container)
    sweep, _ = start_on_slurm(7, root, MODEL_JOBS)
    interrupted_at = _wait_for_commit(sweep, directory / "model1")
    tasks = [array_task_training(root, identifier, model) for model in (0, 1)]
    requeue(slurm, tasks[1])
    _, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err[-3000:]
    assert final_states(slurm, tasks[0].split("_")[0]) == {task: "COMPLETED" for task in tasks}

    steps_per_epoch = 37
    steps = [steps_per_epoch * epoch for epoch in range(1, container["schedule"]["epochs"] + 1)]
    records = read_records(directory / "metrics.jsonl")
    evals = [record for record in records if record["kind"] == "eval"]
    assert [(record["step"], record["model"]) for record in evals] == [(step, model) for step in steps
                                                                       for model in (0, 1)]
    assert records[0]["kind"] == "header" and records[-1]["kind"] == "end"
    assert records[-1]["steps"] == steps[-1] and "status" not in records[-1]
    assert not (directory / "exchange").exists()

    starts = [[record for record in read_records(directory / f"model{model}" / "metrics.jsonl")
               if record["kind"] == "start"] for model in (0, 1)]
    assert [(start["step"], start["last_seen"]) for start in starts[0]] == [(0, None)]   # never restarted
    first, resumed = starts[1]
    assert (first["step"], first["last_seen"]) == (0, None)
    assert interrupted_at <= resumed["step"] < steps[-1] and resumed["step"] % steps_per_epoch == 0
    assert first["time"] < resumed["last_seen"] < resumed["time"]
    task_log = next((root / "hydra" / "adhoc" / ".submitit" / tasks[1]).glob("*_0_log.out")).read_text()
    assert f"resume (from update {resumed['step']}) {identifier} model 1 (" in task_log
    # Model 1's evaluations up to its resumed step are the first attempt's, the later ones the second's.
    assert all((record["time"] > resumed["time"]) == (record["step"] > resumed["step"])
               for record in evals if record["model"] == 1)
    downs = [record for record in records if record["kind"] == "down"]
    assert downs == [{"kind": "down", "model": 1, "from_time": resumed["last_seen"], "to_time": resumed["time"],
                      "down_s": resumed["time"] - resumed["last_seen"], "resumed_from_step": resumed["step"]}]


@pytest.mark.slow
def test_the_plain_sbatch_script_runs_a_job_as_the_launcher_does(tmp_path, slurm, short_references):
    reference, _ = short_references["codistill"]   # the mini sweep's codistillation job, seed included
    root = tmp_path / "sbatch"
    # The script's V100 defaults, overridden for this CPU node on the sbatch command line. Its end
    # is polled for in accounting, not waited for with sbatch --wait, which looks 2, 10 and 42 s
    # after submitting, then every 32 s: a job of 20 s was reported ended at 42 s.
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--constraint=",
         "--cpus-per-task=1", "--mem=2G", "--time=10", f"--output={tmp_path}/job.out",
         str(ROOT / "slurm" / "codistill.sbatch"), QUICK_WORKLOAD, "method=codistill",
         f"results_root={root}", *SHORT],
        cwd=ROOT, env={**slurm, "CODISTILL_PYTHON": sys.executable}, capture_output=True, text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip().split(";")[0]
    try:
        states = final_states(slurm, job_id, timeout_s=300)
    finally:   # nothing left queued or running for the next test when this one fails (a no-op once ended)
        subprocess.run(["scancel", job_id], env=slurm, capture_output=True)
    job_out = tmp_path / "job.out"
    assert states == {job_id: "COMPLETED"}, (states, job_out.read_text()[-3000:] if job_out.exists() else None)
    assert eval_records(root / "runs" / reference.name) == eval_records(reference)


def slurm_request(overrides, site=None):
    """A paper-scale job composed for launcher=slurm_v100 with its hydra config. site=None leaves
    out the site file (a checkout's own src/conf/site/local.yaml would change what is asked for);
    site="example" composes with src/conf/site/example.yaml in its place."""
    from conftest import CONF
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("codistill", overrides=["scale=paper", "launcher=slurm_v100", "~site" if site is None
                                               else f"site={site}", *overrides], return_hydra_config=True)


def sbatch_file(overrides, tmp_path, monkeypatch, site=None, whole=False):
    """The sbatch file that hydra-submitit-launcher and submitit write for the job's first task,
    through their own code (the launcher as the sweeper builds it), submitted nowhere: its #SBATCH
    lines, or with whole=True all its lines."""
    import submitit
    from hydra.utils import instantiate
    from submitit.slurm.slurm import SlurmExecutor

    written = []
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))   # no srun here
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", lambda executor, *jobs: written.append(
        executor._executor._make_submission_file_text("python src/run.py", "uid")) or [])
    cfg = slurm_request([*overrides, f"hydra.sweep.dir={tmp_path}"], site=site)
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    assert launcher.launch([["seed=0"]], initial_job_idx=0) == []
    return [line for line in written[0].splitlines() if whole or line.startswith("#SBATCH")]


@pytest.mark.slow
def test_paper_scale_slurm_requests_match_the_paper(tmp_path, monkeypatch):
    """Fig. 2's codistillation job: 2 nodes x 8 GPUs of 16 GB (V100s), 32 images per GPU; Fig. 4's
    (the WMT'16 transformer big): the same 2 x 8 GPUs, of 32 GB. The GB are the workload's; the
    Slurm feature that gives them is the site's: none by default, the example site file's on
    FAIR's cluster."""
    monkeypatch.setenv("CODISTILL_SLURM_PARTITION", "v100")
    vision = ["sweep=fig2", "method=codistill", "schedule=codistill_tuned"]
    cfg = slurm_request(vision)
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 8, 8)
    assert cfg.workload.gpu_memory_gb == 16 and cfg.scale.batch_per_rank == 32
    assert launcher.constraint is None
    assert launcher.max_num_timeout >= 1   # requeued on a time limit, not lost
    assert slurm_request(vision, site="example").hydra.launcher.constraint == "volta16gb"
    assert slurm_request([*vision, "launcher.constraint=gpu16"]).hydra.launcher.constraint == "gpu16"
    job = compose_job(["scale=paper", "method=codistill", "launcher=slurm_v100"], tmp_path)
    assert job["world_size"] == 16
    translation = ["sweep=fig4", "workload=wmt16_transformer_big", "method=codistill",
                   "schedule=ott2018_codistill", "method.exchange=checkpoints"]
    cfg = slurm_request(translation)
    assert cfg.workload.gpu_memory_gb == 32 and cfg.hydra.launcher.constraint is None
    assert (cfg.hydra.launcher.nodes, cfg.hydra.launcher.tasks_per_node, cfg.hydra.launcher.gpus_per_node) == (2, 8, 8)
    assert slurm_request(translation, site="example").hydra.launcher.constraint == "volta32gb"
    # A CPU workload asks for no GPU feature, even where the site maps the GPU ones.
    assert slurm_request(["workload=clusters_resnet"], site="example").hydra.launcher.constraint is None


@pytest.mark.slow
def test_slurm_jobs_ask_for_their_own_gpus_share_of_memory_and_whole_gpus(monkeypatch):
    """24 GB per rank by default (192 GB of an 8-GPU node); with 50 GB per rank (the example site
    file's: 400 GB over a server's 8 GPUs), a 1-GPU IWSLT job asks for 50 GB, not the node's 400;
    Fig. 2(c)'s b = 128 per model is 4 GPUs per model, the integer 4, not 4.0."""
    monkeypatch.setenv("CODISTILL_SLURM_PARTITION", "v100")
    default = slurm_request(["method=codistill"]).hydra.launcher
    assert (default.tasks_per_node, default.mem_gb) == (8, 8 * 24)
    full = slurm_request(["method=codistill"], site="example").hydra.launcher
    assert (full.tasks_per_node, full.mem_gb) == (8, 8 * 50)
    one_gpu = slurm_request(["workload=iwslt14_transformer", "method=allreduce", "schedule=iwslt_transformer",
                             "scale.ranks_per_model=1", "launcher.mem_gb_per_rank=50"]).hydra.launcher
    assert (one_gpu.nodes, one_gpu.tasks_per_node, one_gpu.gpus_per_node, one_gpu.mem_gb) == (1, 1, 1, 50)
    half = slurm_request(["method=codistill", "schedule=codistill_tuned", "batch_scale=0.5",
                          "launcher.mem_gb_per_rank=37"])
    assert half.scale.ranks_per_model == 4 and isinstance(half.scale.ranks_per_model, int)
    assert (half.hydra.launcher.tasks_per_node, half.hydra.launcher.mem_gb) == (8, 8 * 37)


@pytest.mark.slow
def test_the_committed_slurm_launcher_asks_what_common_sites_accept_and_a_site_file_changes_it(
        tmp_path, monkeypatch):
    """Feature names are each cluster's own (sbatch refuses a feature no node has): the committed
    launcher writes no --constraint. Time, CPUs and memory per task are what common GPU sites accept
    (24 h, 5 CPUs and 24 GB per GPU: 40 CPUs and 192 GB of an 8-GPU node; a partition's default
    memory is often too little for ImageNet's loaders), and the site file (or the command line)
    changes them. One task that exits with an error ends the job step (srun --kill-on-bad-exit,
    through SLURM_KILL_BAD_EXIT, exported before srun)."""
    monkeypatch.setenv("CODISTILL_SLURM_PARTITION", "v100")
    neutral = sbatch_file(["method=codistill"], tmp_path / "neutral", monkeypatch)
    assert "#SBATCH --partition=v100" in neutral and "#SBATCH --nodes=2" in neutral
    assert not [line for line in neutral if line.startswith("#SBATCH --constraint")], neutral
    assert {"#SBATCH --mem=192GB", "#SBATCH --cpus-per-task=5", "#SBATCH --time=1440",
            "#SBATCH --ntasks-per-node=8"} <= set(neutral), neutral
    whole = sbatch_file(["method=codistill"], tmp_path / "whole", monkeypatch, whole=True)
    srun = next(index for index, line in enumerate(whole) if line.startswith("srun "))
    assert "export SLURM_KILL_BAD_EXIT=1" in whole[:srun], whole
    site = sbatch_file(["method=codistill"], tmp_path / "site", monkeypatch, site="example")
    assert {"#SBATCH --constraint=volta16gb", "#SBATCH --mem=400GB", "#SBATCH --partition=my_partition",
            "#SBATCH --account=my_account"} <= set(site), site
    overridden = sbatch_file(["method=codistill", "launcher.constraint=gpu16", "launcher.mem_gb_per_rank=20"],
                             tmp_path / "overridden", monkeypatch, site="example")
    assert {"#SBATCH --constraint=gpu16", "#SBATCH --mem=160GB"} <= set(overridden), overridden


@pytest.mark.slow
def test_a_paper_scale_dry_run_lists_a_files_run_as_one_slurm_job_per_model(tmp_path):
    """method.transport=files at paper scale: the sweep lists the run as its two models' jobs, each
    of one model's 8 ranks (one 8-GPU server, as in the paper), and queues nothing."""
    overrides = ["method=codistill", "method.exchange=checkpoints", "method.transport=files"]
    done = slurm_cli(this_checkout(os.environ), "-m", "scale=paper", "launcher=slurm_v100", "launcher.partition=x", *overrides,
                     "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 jobs at scale paper, 0 already finished (dry run: nothing launched)" in done.stdout
    listed = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("model_job=")]
    assert listed == [f"model_job={model}: its own job of 8 rank(s) on launcher slurm" for model in (0, 1)]
    assert not (tmp_path / "hydra").exists() and not (tmp_path / "runs").exists()
    # What each of those jobs asks Slurm for: one node of 8 tasks and 8 GPUs, not the run's 2 nodes.
    job = slurm_request(["launcher.partition=x", *overrides, "model_job=1"])
    assert job.job_ranks == 8 and job.world_size == 16
    assert (job.hydra.launcher.nodes, job.hydra.launcher.tasks_per_node, job.hydra.launcher.gpus_per_node) == (1, 8, 8)
