"""A reproduce-all carried across sessions through the repository: the ended runs of one machine
and commit come back byte for byte, a run cut midway and another machine's runs do not."""
import json

import numpy as np
import pytest

from codistill_experiments import runlog
from figures.carry import restore, save, segments

COMMIT = "a" * 40
ZEN3 = {"cpu": "AMD EPYC", "cores": 2, "cpu_signature": "family 25 model 1 stepping 1; AVX2"}
ZEN4 = {"cpu": "AMD EPYC", "cores": 2, "cpu_signature": "family 25 model 17 stepping 1; AVX512"}


def write_run(results, run_id, environment, ended=True, dirty=False, predictions=None):
    folder = results / "runs" / run_id
    folder.mkdir(parents=True)
    records = [{"kind": "header", "run_id": run_id, "config": {}, "git_commit": COMMIT, "git_dirty": dirty,
                "environment": environment},
               {"kind": "eval", "model": 0, "step": 10, "accuracy": 0.5 + len(run_id) / 100}]
    if ended:
        records.append({"kind": "end", "steps": 10})
    (folder / runlog.METRICS_FILE).write_text("".join(json.dumps(record) + "\n" for record in records))
    for model, array in enumerate(predictions or []):
        np.save(folder / f"predictions-model{model}.npy", array)
    return folder


def test_ended_runs_come_back_byte_for_byte_and_a_cut_run_does_not(tmp_path):
    results, carried, fresh = tmp_path / "results", tmp_path / "carried", tmp_path / "fresh"
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), -np.ones((2, 3), dtype=np.float32)]
    finished = write_run(results, "run-a", ZEN3, predictions=arrays)
    write_run(results, "run-b", ZEN3, ended=False)
    save(results, carried, started="2026-11-26 19:40:00")

    restored, others = restore(fresh, COMMIT, carried, environment=ZEN3)
    assert (restored, others) == (1, [])
    back = fresh / "runs" / "run-a"
    assert (back / runlog.METRICS_FILE).read_bytes() == (finished / runlog.METRICS_FILE).read_bytes()
    assert runlog.end_state(back / runlog.METRICS_FILE)[0] == runlog.FINISHED
    for model, array in enumerate(arrays):
        assert np.array_equal(np.load(back / f"predictions-model{model}.npy"), array)
    assert not (fresh / "runs" / "run-b").exists()
    [segment] = segments(next(carried.iterdir()))
    assert segment["started"] == "2026-11-26 19:40:00" and segment["ended_runs"] == 1

    write_run(results, "run-c", ZEN3)   # a later save of the same segment replaces its line
    save(results, carried, started="2026-11-26 19:40:00")
    save(results, carried, started="2026-11-27 08:00:00")
    assert [(s["started"], s["ended_runs"]) for s in segments(next(carried.iterdir()))] == [
        ("2026-11-26 19:40:00", 2), ("2026-11-27 08:00:00", 2)]


def test_another_machines_runs_are_kept_apart_and_not_restored(tmp_path):
    results, carried = tmp_path / "results", tmp_path / "carried"
    write_run(results, "run-a", ZEN4)
    save(results, carried)
    restored, others = restore(tmp_path / "fresh", COMMIT, carried, environment=ZEN3)
    assert restored == 0 and len(others) == 1
    assert json.loads((others[0] / "machine.json").read_text())["cpu_signature"] == ZEN4["cpu_signature"]
    assert restore(tmp_path / "again", COMMIT, carried, environment=ZEN4)[0] == 1
    assert restore(tmp_path / "other-commit", "b" * 40, carried, environment=ZEN4)[0] == 0


def test_a_run_already_in_the_results_is_left_as_it_is(tmp_path):
    results, carried, fresh = tmp_path / "results", tmp_path / "carried", tmp_path / "fresh"
    write_run(results, "run-a", ZEN3)
    save(results, carried)
    cut = write_run(fresh, "run-a", ZEN3, ended=False)
    before = (cut / runlog.METRICS_FILE).read_bytes()
    assert restore(fresh, COMMIT, carried, environment=ZEN3)[0] == 0
    assert (cut / runlog.METRICS_FILE).read_bytes() == before


def test_a_run_from_a_dirty_tree_is_refused_and_nothing_is_saved(tmp_path):
    results, carried = tmp_path / "results", tmp_path / "carried"
    write_run(results, "run-a", ZEN3)
    write_run(results, "run-b", ZEN3, dirty=True)
    with pytest.raises(SystemExit, match="run-b"):
        save(results, carried)
    assert not carried.exists()
