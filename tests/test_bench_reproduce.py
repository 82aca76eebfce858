"""The expected `make reproduce-all` time (benchmarks/bench_reproduce.py): jobs of a sweep on the
cores as launcher=local_parallel schedules them, checked against schedules worked out by hand."""
from benchmarks import bench_reproduce
from benchmarks.bench_reproduce import makespan, sweep_seconds


def test_a_free_worker_takes_the_next_job():
    # 2 workers: 5 -> A, 3 -> B (free at 3), 4 -> B (free at 7), 1 -> A (free at 6): done at 7
    assert makespan([5, 3, 4, 1], 2) == 7
    assert makespan([5, 3, 4, 1], 1) == 13
    assert makespan([5, 3, 4, 1], 8) == 5


def test_a_sweep_runs_its_widths_one_after_another_each_at_cores_over_ranks():
    runs = [("a", 2, 10.0), ("b", 2, 10.0), ("c", 4, 30.0), ("d", 2, 10.0), ("e", 2, 10.0)]
    # 2 cores: 2-rank jobs one at a time (40 s); the 4-rank job did 30 x 2 core-seconds here, over 2 cores: 30 s
    assert sweep_seconds(runs, 2) == 40 + 30
    # 8 cores: four 2-rank jobs at once (10 s); the 4-rank job's 60 core-seconds over 4 cores: 15 s
    assert sweep_seconds(runs, 8) == 10 + 15
    # a 1-rank job logged on this machine used one core: as long anywhere
    assert sweep_seconds([("x", 1, 7.0)], 16) == 7
    # launcher.jobs_at_once=1: one after another whatever the cores
    assert sweep_seconds(runs, 2, jobs_at_once=1) == 40 + 30


def test_each_run_counts_once_in_the_first_sweep_that_lists_it(tmp_path, monkeypatch):
    import gzip
    import json

    def log(run_id, ranks, seconds):
        folder = tmp_path / "runs" / run_id
        folder.mkdir(parents=True)
        lines = [{"kind": "header", "run_id": run_id, "config": {"world_size": ranks}},
                 {"kind": "end", "steps": 10, "wall_time": seconds}]
        (folder / "metrics.jsonl.gz").write_bytes(gzip.compress("\n".join(map(json.dumps, lines)).encode()))

    def manifest(sweep, run_ids):
        path = tmp_path / "sweeps" / sweep / "mini.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps([{"run_id": run_id, "overrides": []} for run_id in run_ids]))

    log("r1", 2, 10.0), log("r2", 2, 20.0), log("r3", 4, 40.0)
    manifest("first", ["r1", "r2"]), manifest("second", ["r2", "r3", "gone"])
    monkeypatch.setattr(bench_reproduce, "sweeps_at", lambda scale: (["first", "second"], []))
    sweeps, missing = bench_reproduce.sweep_runs(tmp_path)
    assert sweeps == [("first", [("r1", 2, 10.0), ("r2", 2, 20.0)]), ("second", [("r3", 4, 40.0)])] and missing == 1
    result = bench_reproduce.estimate((2, 8), tmp_path)
    assert result["logged_seconds"] == 70 and result["runs_by_ranks"] == {"2": 2, "4": 1}
    assert result["by_cores"] == {"2": 30 + 40, "8": 20 + 20}
    assert bench_reproduce.committed_seconds("second", tmp_path) == 20 + 40   # a sweep alone: its shared run too


def test_each_rank_splits_its_time_into_phases_that_add_up_to_the_logged_wall_time(tmp_path, run_job, monkeypatch):
    """With CODISTILL_TIME_SPLIT set, each rank writes its phases; the loop's phases (training,
    evaluation, logging, checkpoints) cover the time the end record logs, which the engine measures
    with its own clock from the first update, and the end phase what follows it."""
    import json

    from conftest import SHORT

    from codistill_experiments.runlog import read_records
    from codistill_experiments.time_split import VARIABLE

    monkeypatch.setenv(VARIABLE, str(tmp_path / "split"))
    directory, _ = run_job(["method=codistill", *SHORT])
    end = read_records(directory / "metrics.jsonl")[-1]
    files = sorted((tmp_path / "split").glob("*.json"))
    assert [path.name for path in files] == [f"{directory.name}-rank{rank}.json" for rank in (0, 1)]
    splits = [json.loads(path.read_text()) for path in files]
    for split in splits:
        assert set(split["wall"]) == {"setup", "training", "evaluation", "logging", "checkpoint", "end"}
        assert all(0 <= split["cpu"][phase] for phase in split["cpu"]) and split["wall"]["training"] > 0
    # The end record is rank 0's clock. Rank 1 may leave its set-up first and charge its wait for
    # rank 0 in the first collective to training (0.08 s more than rank 0's loop on a loaded machine).
    loop = sum(splits[0]["wall"][phase] for phase in ("training", "evaluation", "logging", "checkpoint"))
    assert loop <= end["wall_time"] + 0.05 and end["wall_time"] <= loop + splits[0]["wall"]["end"] + 0.05
