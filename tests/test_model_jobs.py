"""Independent model jobs (method.transport=files): each model its own world of real gloo processes,
checkpoints through files. Lock-step mode must train exactly what the collective checkpoint
exchange trains; asynchronous mode must log the teachers it used; a model killed mid-run must not
stop the others, and must rejoin and finish when rerun."""
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import SHORT, compose_job
from forked_script import run_script, start_script

from benchmarks import soak_resume
from codistill.snapshots import PeerReader, SnapshotStore
from codistill_experiments import run_state, runlog
from codistill_experiments.model_jobs import down_records, model_directory, run_log_records
from codistill_experiments.runlog import METRICS_FILE, read_records, run_dir

ROOT = Path(__file__).resolve().parents[1]
FILES = ["method=codistill", "method.exchange=checkpoints", "method.transport=files"]
# Keys a model job cannot log as one world does: it sees no peer's outputs at evaluation (ensemble,
# churn), it logs when and with which teachers, and the wall time is the machine's.
NOT_COMPARED = {"wall_time", "ensemble_top1", "churn", "ensemble_val_loss", "teacher_ages", "time",
                "val_top1_mean_over_models"}


def evals(directory):
    return [{key: value for key, value in record.items() if key not in NOT_COMPARED}
            for record in read_records(directory / METRICS_FILE) if record["kind"] == "eval"]


def traces(directory, n, model_dirs=False):
    where = (lambda m: model_directory(directory, m)) if model_dirs else (lambda m: directory)
    return [[json.loads(line) for line in open(where(m) / f"trace-model{m}.jsonl")] for m in range(n)]


def held(entry):
    """The steps of the teachers' snapshots at a trace entry, one per peer."""
    steps = entry["teachers_from_step"]
    return steps if isinstance(steps, list) else [steps] * len(entry["teachers"])


@pytest.mark.slow
@pytest.mark.parametrize("models", [
    "[{hidden:[64]},{hidden:[256,256]}]",
    "[{hidden:[64]},{hidden:[128]},{hidden:[32,32]}]",
], ids=["n2", "n3-mixed"])
def test_lockstep_model_jobs_train_what_the_collective_checkpoint_exchange_trains(run_job, tmp_path, models):
    n = models.count("hidden")
    common = ["method=codistill", "method.exchange=checkpoints", f"method.n={n}", "method.period=5",
              f"workload.models={models}", "trace=true", *SHORT]
    one_world, _ = run_job(common)
    model_jobs, config = run_job([*common, "method.transport=files", "method.snapshot_mode=lockstep"])
    assert one_world != model_jobs   # two runs: the transport is part of a files run's identity
    bits = {}
    for model in range(n):   # a model job reads each peer's own parameters, not the padded wire of one world
        bits[model] = [r.pop("comm_bits_inter_node") for r in evals(model_jobs) if r["model"] == model]
    assert [{k: v for k, v in r.items() if k != "comm_bits_inter_node"} for r in evals(model_jobs)] == \
           [{k: v for k, v in r.items() if k != "comm_bits_inter_node"} for r in evals(one_world)]
    sizes = [sum(t.numel() * 32 for t in torch.load(model_jobs / f"model{m}.pt", weights_only=True).values()
                 if t.is_floating_point()) for m in range(n)]
    steps = [r["step"] for r in evals(model_jobs) if r["model"] == 0]
    for model in range(n):
        exchanges = [-(-step // 5) for step in steps]   # snapshots of updates 0, 5, 10, ... before `step`
        assert bits[model] == [count * (sum(sizes) - sizes[model]) for count in exchanges]
    # The same teachers at the same updates, and the same parameters before each update.
    collective, files = traces(one_world, n), traces(model_jobs, n, model_dirs=True)
    for mine, theirs in zip(files, collective):
        assert [(e["step"], e["own"], e.get("teachers"), held(e) if "teachers" in e else None) for e in mine] == \
               [(e["step"], e["own"], e.get("teachers"), held(e) if "teachers" in e else None) for e in theirs]
    for model in range(n):
        finished = [torch.load(directory / f"model{model}.pt", weights_only=True) for directory in (one_world, model_jobs)]
        assert all(torch.equal(finished[0][name], finished[1][name]) for name in finished[0])
    run_log = read_records(model_jobs / METRICS_FILE)
    assert run_log[0]["kind"] == "header" and run_log[-1]["kind"] == "end"
    assert not [r for r in run_log if r["kind"] == "down"]
    assert not (model_jobs / "exchange").exists()   # snapshots are removed once the run has ended
    # The mean over models is filled in when the run's log is assembled: the one-world run's own mean.
    means = {(r["step"], r["model"]): r["val_top1_mean_over_models"]
             for r in read_records(one_world / METRICS_FILE) if r["kind"] == "eval"}
    assert all(r["val_top1_mean_over_models"] == pytest.approx(means[r["step"], r["model"]])
               for r in run_log if r["kind"] == "eval")


@pytest.mark.slow
def test_async_model_jobs_log_the_age_of_the_snapshot_each_update_read(run_job):
    directory, config = run_job([*FILES, "method.snapshot_mode=async", "method.period=3", "trace=true", *SHORT])
    mine, theirs = traces(directory, 2, model_dirs=True)
    reads = []
    for trace, peer in ((mine, theirs), (theirs, mine)):
        peer_params = {entry["step"]: entry["own"] for entry in peer}   # the peer before update s = its snapshot of s
        read = 0
        absent = [entry["teacher_ages"] == [None] for entry in trace]
        assert absent == sorted(absent, reverse=True)   # absent only until the peer's first snapshot is read
        for entry in trace:
            ages = entry["teacher_ages"]
            if ages == [None]:   # the peer had published nothing yet: no teacher
                assert "teachers" not in entry or entry["teachers_from_step"] is None
                continue
            read += 1
            source = entry["step"] - ages[0]
            assert source % 3 == 0   # a snapshot of an exchange point (a peer ahead gives a negative age)
            assert entry["teachers"] == [peer_params[source]]
        reads.append(read)
    # However the two processes' speeds compare, the later of them finds the other's snapshots.
    assert max(reads) > 0
    # Each evaluation record logs the ages of the last update before it, as the trace saw them.
    ages_at = {(model, entry["step"]): entry["teacher_ages"] for model, trace in enumerate((mine, theirs))
               for entry in trace}
    records = [r for r in read_records(directory / METRICS_FILE) if r["kind"] == "eval"]
    assert len(records) == 2 * config["schedule"]["epochs"]
    assert all(r["teacher_ages"] == ages_at[r["model"], r["step"] - 1] for r in records)


def lock_pid(directory, model):
    text = (model_directory(directory, model) / "lock").read_text()
    return int(text.split(" pid ")[1].split()[0])


@pytest.mark.slow
def test_a_killed_model_job_does_not_stop_the_others_and_rejoins_when_rerun(tmp_path):
    long = ["schedule.epochs=5", "schedule.lr.warmup_epochs=1", "schedule.lr.milestones=[4]",
            "schedule.weight_decay.values=[1e-4]", "schedule.weight_decay.milestones=[]"]
    overrides = ["workload=digits_mlp", *FILES, "method.snapshot_mode=async", "method.period=2", *long,
                 f"results_root={tmp_path}"]
    config = compose_job(overrides, tmp_path)
    directory = run_dir(config)
    steps_per_epoch, epochs = 37, 5
    command = [ROOT / "src" / "run.py", *overrides]
    environment = {**os.environ, "CODISTILL_PROGRESS": "off"}
    first = start_script(command, cwd=tmp_path, env=environment)   # in a fork (forked_script.py)
    # Kill model 1 once it has committed the state of a random evaluation: somewhere in the next epoch.
    kill_after = random.Random(20261123).randint(2, 3) * steps_per_epoch
    log = model_directory(directory, 1) / METRICS_FILE
    deadline = time.time() + 300
    while time.time() < deadline and (run_state.committed_step(model_directory(directory, 1)) or 0) < kill_after:
        time.sleep(0.02)
    os.kill(lock_pid(directory, 1), signal.SIGKILL)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode != 0
    assert stderr.rstrip().splitlines()[-1].startswith("error: model 1: its rank 0 exited with code -9 (signal SIGKILL)")
    # The survivor finished with every evaluation; the killed model stopped before its end.
    survivor = read_records(model_directory(directory, 0) / METRICS_FILE)
    assert [r["step"] for r in survivor if r["kind"] == "eval"] == \
           [steps_per_epoch * e for e in range(1, epochs + 1)]
    assert survivor[-1]["kind"] == "end"
    assert not (directory / METRICS_FILE).exists()
    killed_records = read_records(log)
    assert killed_records[-1]["kind"] != "end"
    last_seen = max(r["time"] for r in killed_records if r["kind"] == "eval")
    # A model's log damaged before its last line is refused, byte for byte as it was, naming it.
    intact = log.read_bytes()
    lines = intact.split(b"\n")
    log.write_bytes(b"\n".join([*lines[:3], lines[3][:20], *lines[4:]]))
    damaged = log.read_bytes()
    refused = run_script(command, cwd=tmp_path, env=environment, timeout=300)   # in a fork (forked_script.py)
    assert refused.returncode != 0 and log.read_bytes() == damaged
    assert refused.stderr.rstrip().splitlines()[-1].startswith(f"error: {log}: line 4 of ")
    log.write_bytes(intact)
    # Rerun: model 0 has ended and is not trained again; model 1 resumes and finishes.
    second = run_script(command, cwd=tmp_path, env=environment, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    model1 = read_records(log)
    starts = [r for r in model1 if r["kind"] == "start"]
    assert [s["step"] for s in starts][0] == 0 and kill_after <= starts[1]["step"] < epochs * steps_per_epoch
    assert starts[1]["last_seen"] == pytest.approx(last_seen)
    assert [r["kind"] for r in read_records(model_directory(directory, 0) / METRICS_FILE)].count("start") == 1
    run_log = read_records(directory / METRICS_FILE)
    assert sorted((r["step"], r["model"]) for r in run_log if r["kind"] == "eval") == \
           [(steps_per_epoch * e, m) for e in range(1, epochs + 1) for m in range(2)]
    down = [r for r in run_log if r["kind"] == "down"]
    assert len(down) == 1 and down[0]["model"] == 1 and down[0]["resumed_from_step"] == starts[1]["step"]
    assert down[0]["down_s"] == pytest.approx(starts[1]["time"] - last_seen)
    assert run_log[-1]["kind"] == "end" and run_log[-1].get("status") != "failed"
    # After its restart model 1 distilled from model 0's snapshots, which had stopped at its end.
    resumed = [r for r in model1 if r["kind"] == "eval" and r["step"] > starts[1]["step"]]
    assert resumed and all(r["teacher_ages"][0] is not None for r in resumed)


def test_the_run_log_is_assembled_from_the_models_logs_with_their_downtime():
    header = {"kind": "header"}
    model0 = [header, {"kind": "start", "model": 0, "step": 0, "time": 100.0, "last_seen": None},
              {"kind": "eval", "step": 10, "model": 0, "val_top1": 80.0, "time": 110.0},
              {"kind": "eval", "step": 20, "model": 0, "val_top1": 90.0, "time": 120.0},
              {"kind": "end", "steps": 20, "wall_time": 21.0}]
    model1 = [header, {"kind": "start", "model": 1, "step": 0, "time": 100.5, "last_seen": None},
              {"kind": "eval", "step": 10, "model": 1, "val_top1": 70.0, "time": 111.0},
              {"kind": "start", "model": 1, "step": 10, "time": 130.0, "last_seen": 111.0},
              {"kind": "eval", "step": 20, "model": 1, "val_top1": 60.0, "time": 140.0},
              {"kind": "end", "steps": 20, "wall_time": 35.0}]
    config = {"seed": 0, "scale": {"name": "mini", "note": "MINI"}, "method": {"name": "codistill", "n": 2}}
    records = run_log_records(config, [model0, model1])
    assert records[0]["kind"] == "header" and records[0]["config"]["method"]["n"] == 2
    assert [(r["step"], r["model"], r["val_top1_mean_over_models"]) for r in records if r["kind"] == "eval"] == \
           [(10, 0, 75.0), (10, 1, 75.0), (20, 0, 75.0), (20, 1, 75.0)]
    assert [r for r in records if r["kind"] == "down"] == list(down_records(model1)) == [
        {"kind": "down", "model": 1, "from_time": 111.0, "to_time": 130.0, "down_s": 19.0, "resumed_from_step": 10}]
    assert records[-1] == {"kind": "end", "steps": 20, "wall_time": 35.0, "model_wall_times": [21.0, 35.0]}


def snapshot(store, model, step, value):
    store.publish(model, step, {"w": torch.full((3,), float(value))})


def test_async_reader_absent_peer_is_no_teacher_and_a_stopped_peer_stays_its_last_snapshot(tmp_path):
    store = SnapshotStore(tmp_path)
    reader = PeerReader(store, [1, 2], period=2, mode="async", timeout_s=0.1)
    assert list(reader.refresh(0)) == [] and reader.steps == [None, None]   # nobody published: no wait, no teacher
    snapshot(store, 1, 0, 1.0)
    assert list(reader.refresh(1)) == []   # between exchange points nothing is read
    [(slot, step, tensors, counted)] = list(reader.refresh(2))
    assert (slot, step, counted, tensors["w"].tolist()) == (0, 0, True, [1.0] * 3) and reader.steps == [0, None]
    snapshot(store, 1, 4, 2.0)
    snapshot(store, 2, 2, 3.0)
    assert [(slot, step) for slot, step, _, _ in reader.refresh(6)] == [(0, 4), (1, 2)]
    # Peer 1 stops publishing: it is kept, and its age grows.
    assert list(reader.refresh(10)) == [] and reader.steps == [4, 2]


def test_a_damaged_snapshot_is_skipped_with_a_warning_naming_it(tmp_path):
    store, said = SnapshotStore(tmp_path), []
    snapshot(store, 1, 0, 1.0)
    reader = PeerReader(store, [1], period=2, mode="async", timeout_s=0.1, warn=said.append)
    assert [step for _, step, _, _ in reader.refresh(0)] == [0]
    snapshot(store, 1, 2, 2.0)
    store.path(1, 2).write_bytes(store.path(1, 2).read_bytes()[:40])   # torn on disk after its rename
    assert list(reader.refresh(2)) == [] and reader.steps == [0]
    assert len(said) == 1 and str(store.path(1, 2)) in said[0] and "snapshot of update 0 stands in" in said[0]
    assert list(reader.refresh(4)) == [] and len(said) == 1   # known damaged: not read, nor said, again
    snapshot(store, 1, 4, 4.0)
    [(_, step, tensors, _)] = list(reader.refresh(4))
    assert step == 4 and tensors["w"][0].item() == 4.0
    # Lock-step: the snapshot of floor(s/T)*T is damaged: the teacher held stays, with a warning.
    lockstep = PeerReader(store, [1], period=2, mode="lockstep", timeout_s=0.1, warn=said.append)
    assert [step for _, step, _, _ in lockstep.refresh(1)] == [0]
    assert list(lockstep.refresh(2)) == [] and lockstep.steps == [0] and str(store.path(1, 2)) in said[-1]


def test_a_half_written_snapshot_is_never_listed(tmp_path):
    store = SnapshotStore(tmp_path)
    snapshot(store, 0, 0, 1.0)
    (store.folder(0) / "step2.pt.tmp").write_bytes(b"partial")   # a writer killed before its rename
    assert store.steps(0) == [0] and store.newest(0)[0] == 0


@pytest.mark.slow
def test_lockstep_stops_with_a_message_naming_a_missing_peer_that_never_started(tmp_path):
    # Model 0's job alone (model_job=0): its peer never runs, so its snapshot of update 0 never comes.
    overrides = ["workload=digits_mlp", *FILES, "method.snapshot_timeout_s=1", "method.peer_start_timeout_s=2",
                 "model_job=0", *SHORT, f"results_root={tmp_path}"]
    started = time.monotonic()
    done = run_script([ROOT / "src" / "run.py", *overrides], cwd=tmp_path, timeout=120,
                      env={**os.environ, "CODISTILL_PROGRESS": "off"})   # in a fork (forked_script.py)
    assert done.returncode != 0 and time.monotonic() - started < 60
    last = done.stderr.rstrip().splitlines()[-1]
    assert last.startswith("error: model 0: its rank 0 failed: ") and "model 0: model 1 has not started: no " \
        "attempt marked in " in last and "waiting for model 1's snapshot of update 0" in last, done.stderr[-2000:]


@pytest.mark.slow
def test_lockstep_a_model_whose_peer_job_starts_late_waits_for_it_and_the_run_finishes(tmp_path):
    # Separate jobs of a queue: model 1's job starts well after model 0's has begun waiting for its
    # snapshot of update 0, later than method.snapshot_timeout_s; the wait counts from its start.
    overrides = ["workload=digits_mlp", *FILES, "method.snapshot_mode=lockstep", "method.snapshot_timeout_s=5",
                 *SHORT, f"results_root={tmp_path}"]
    directory = run_dir(compose_job(overrides, tmp_path))
    environment = {**os.environ, "CODISTILL_PROGRESS": "off"}
    command = [ROOT / "src" / "run.py", *overrides]
    first = start_script([*command, "model_job=0"], cwd=tmp_path, env=environment)   # in a fork
    deadline = time.monotonic() + 120
    while not (directory / "exchange" / "model0" / "step0.pt").exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()[1][-2000:]
        time.sleep(0.05)
    time.sleep(8)   # model 0 waits for model 1's update 0 meanwhile: 5 s from the wait's start would end it
    assert first.poll() is None, first.communicate()[1][-2000:]
    second = run_script([*command, "model_job=1"], cwd=tmp_path, env=environment, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert runlog.is_finished(directory)
    starts = [r for m in range(2) for r in read_records(model_directory(directory, m) / METRICS_FILE)
              if r["kind"] == "start"]
    assert [r["model"] for r in starts] == [0, 1] and starts[1]["time"] - starts[0]["time"] > 8


@pytest.mark.slow
def test_lockstep_a_killed_model_restarted_alone_rejoins_and_the_run_equals_an_uninterrupted_one(run_job, tmp_path):
    long = ["schedule.epochs=4", "schedule.lr.warmup_epochs=1", "schedule.lr.milestones=[3]",
            "schedule.weight_decay.values=[1e-4]", "schedule.weight_decay.milestones=[]"]
    job = [*FILES, "method.snapshot_mode=lockstep", "method.period=4", "method.snapshot_timeout_s=120", *long]
    reference, _ = run_job(job)
    root = tmp_path / "killed"
    overrides = ["workload=digits_mlp", *job, f"results_root={root}"]
    directory = run_dir(compose_job(overrides, root))
    environment = {**os.environ, "CODISTILL_PROGRESS": "off"}
    command = [ROOT / "src" / "run.py", *overrides]
    everything = start_script(command, cwd=tmp_path, env=environment)   # in a fork (forked_script.py)
    kill_after = random.Random(7).randint(1, 2) * 37
    deadline = time.time() + 300
    while time.time() < deadline and (run_state.committed_step(model_directory(directory, 1)) or 0) < kill_after:
        time.sleep(0.02)
    os.kill(lock_pid(directory, 1), signal.SIGKILL)
    time.sleep(1.0)   # model 0 trains on until it needs model 1's next snapshot, then waits for it
    alone = run_script([*command, "model_job=1"], cwd=tmp_path, env=environment, timeout=300)   # in a fork
    assert alone.returncode == 0, alone.stderr[-3000:]
    _, stderr = everything.communicate(timeout=300)
    assert everything.returncode != 0 and "model 1: its rank 0 exited with code -9" in stderr
    starts = [r for r in read_records(model_directory(directory, 1) / METRICS_FILE) if r["kind"] == "start"]
    assert len(starts) == 2 and kill_after <= starts[1]["step"]
    # Lock-step resumes exactly: every record but the clock's equals the uninterrupted run's.
    assert evals(directory) == evals(reference)
    for model in range(2):
        finished = [torch.load(where / f"model{model}.pt", weights_only=True) for where in (reference, directory)]
        assert all(torch.equal(finished[0][name], finished[1][name]) for name in finished[0])
    assert [r["model"] for r in read_records(directory / METRICS_FILE) if r["kind"] == "down"] == [1]


@pytest.mark.slow
def test_each_model_job_runs_alone_and_the_last_assembles_the_run_log(tmp_path):
    job = [*soak_resume.RUN, *soak_resume.job(4), "method.transport=files", "method.snapshot_mode=async",
           f"results_root={tmp_path}"]
    for model in (0, 1):   # model 0 alone (its peer absent: no teacher), then model 1 (model 0's last snapshot)
        done = run_script([*job[1:], f"model_job={model}"])   # in a fork (forked_script.py)
        assert done.returncode == 0, done.stderr[-2000:]
    [directory] = (tmp_path / "runs").iterdir()
    assert runlog.is_finished(directory)
    evals = [r for r in read_records(directory / METRICS_FILE) if r["kind"] == "eval"]
    assert sorted({r["model"] for r in evals}) == [0, 1]
    # model 1 trained after model 0 had finished: its teacher was model 0's newest snapshot
    assert all(r["teacher_ages"] == [None] for r in evals if r["model"] == 0)
    assert any(r["teacher_ages"] not in ([None], None) for r in evals if r["model"] == 1)
