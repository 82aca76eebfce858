"""Collect on hand-made log trees: missing seeds, unfinished runs, torn last lines, damaged logs,
runs shared from another sweep, the committed gzipped form, and means / standard errors over
seeds checked against hand-computed values."""
import copy
import gzip
import json
import math

import pandas as pd
import pytest

from figures import pack, registry
from figures.claims.groups import group_stats
from figures.drawing.seed_means import aggregate, last_step, per_run
from figures.logs import collect
from figures.logs.run_logs import read_log

BASE_CONFIG = {
    "workload": {"name": "digits_mlp", "arch": "resnet50", "models": None},
    "method": {"name": "codistill", "n": 2, "exchange": "predictions", "period": 1, "alpha": 1.0,
               "alpha_schedule": "constant", "alpha_gamma": 1.1},
    "schedule": {"name": "codistill_tuned", "lr": {"base": 0.1}},
    "scale": {"name": "mini", "note": "MINI scale (test fixture)"},
    "batch_scale": 1, "data": {"fraction": 1.0}, "seed": 0,
}


def config(seed, **changes):
    """BASE_CONFIG with dotted-key changes, e.g. config(0, **{"method.name": "allreduce"})."""
    result = copy.deepcopy(BASE_CONFIG)
    result["seed"] = seed
    for dotted, value in changes.items():
        node = result
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return result


def eval_record(step, model, **metrics):
    record = {"kind": "eval", "step": step, "epoch": step / 10, "model": model, "train_loss": 1.0,
              "val_loss": 0.5, "val_top1": 90.0, "batch_per_model": 32, "comm_bits_inter_node": 0,
              "param_distance_from_init": 1.0}
    record.update(metrics)
    record.setdefault("val_top1_mean_over_models", record["val_top1"])
    return record


def write_run(root, run_id, cfg, records, sweep_id="figx", end=True, torn=False, gz=False, lines=None):
    """A run directory as the engine writes it: header, records, end record; `torn` appends half
    a JSON line (a crash mid-write); `lines` replaces everything with raw text lines."""
    header = {"kind": "header", "run_id": run_id, "sweep_id": sweep_id, "seed": cfg["seed"],
              "scale": cfg["scale"]["name"], "scale_note": cfg["scale"]["note"], "config": cfg,
              "git_commit": "abc", "git_dirty": False, "slurm_job_id": None}
    if lines is None:
        lines = [json.dumps(r) for r in [header, *records, *([{"kind": "end", "steps": 20}] if end else [])]]
        if torn:
            lines.append(json.dumps(eval_record(30, 0))[:25])
    text = "\n".join(lines) + ("" if torn else "\n")
    directory = root / "runs" / run_id
    directory.mkdir(parents=True, exist_ok=True)
    if gz:
        (directory / "metrics.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (directory / "metrics.jsonl").write_text(text)
    return header


def write_manifest(root, sweep_id, entries, scale="mini"):
    """entries: (run_id, overrides) pairs, as the sweeper writes them."""
    path = root / "sweeps" / sweep_id / f"{scale}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([{"run_id": r, "overrides": o} for r, o in entries]))


def two_model_run(root, run_id, cfg, finals, sweep_id="figx", **options):
    """Two models evaluated at steps 10 and 20; `finals` are (val_top1, train_loss) of each model at
    step 20 (step 10 holds 50.0 and 2.0 for every model)."""
    records = [eval_record(10, m, val_top1=50.0, train_loss=2.0) for m in (0, 1)]
    records += [eval_record(20, m, val_top1=top1, train_loss=loss) for m, (top1, loss) in enumerate(finals)]
    return write_run(root, run_id, cfg, records, sweep_id, **options)


@pytest.fixture
def tree(tmp_path):
    """Sweep figx at mini: setting A (codistill) seeds 0-2 all finished, seed 2 run first by sweep
    figy; setting B (all_reduce) seed 0 finished, seed 1 unfinished with a torn last line, seed 2
    missing; setting C one run whose log is damaged in the middle."""
    root = tmp_path / "logs"
    a_finals = {0: [(90.0, 0.30), (92.0, 0.50)], 1: [(93.0, 0.20), (91.0, 0.40)], 2: [(97.0, 0.10), (97.0, 0.30)]}
    entries = []
    for seed, finals in a_finals.items():
        two_model_run(root, f"a{seed}", config(seed), finals, sweep_id="figy" if seed == 2 else "figx")
        entries.append((f"a{seed}", ["method=codistill", f"seed={seed}", "results_root=/x"]))
    allreduce = {"method.name": "allreduce", "method.n": 1, "schedule.name": "goyal_step"}
    write_run(root, "b0", config(0, **allreduce), [eval_record(10, 0), eval_record(20, 0, val_top1=95.0)])
    write_run(root, "b1", config(1, **allreduce), [eval_record(10, 0)], end=False, torn=True)
    entries += [(f"b{seed}", ["method=allreduce", f"seed={seed}"]) for seed in (0, 1, 2)]
    header = json.dumps({"kind": "header", "run_id": "c0", "seed": 0, "config": config(0), "git_commit": "abc",
                         "git_dirty": False})
    write_run(root, "c0", config(0), [], lines=[header, '{"kind": "eval", "st', json.dumps(eval_record(10, 0))])
    entries.append(("c0", ["method=independent", "seed=0"]))
    write_manifest(root, "figx", entries)
    return root


def test_each_run_is_reported_as_what_it_is(tree):
    records, status = collect.collect(tree, "figx", "mini")
    state = status.set_index("run_id")
    assert state["state"].to_dict() == {"a0": "finished", "a1": "finished", "a2": "finished", "b0": "finished",
                                        "b1": "unfinished", "b2": "missing", "c0": "unreadable"}
    assert state.loc["a2", "shared_from"] == "figy" and state["shared_from"].drop("a2").isna().all()
    assert "torn last line dropped" in state.loc["b1", "notes"]
    assert state.loc["c0", "notes"] == "damaged line 2 of 3"
    assert state.loc["b2", "seed"] == 2   # read from the manifest's overrides: the run has no log
    # only finished runs are in the table, with their config flattened into cfg.* columns
    assert sorted(records["run_id"].unique()) == ["a0", "a1", "a2", "b0"]
    assert set(records.loc[records["run_id"] == "b0", "cfg.method.name"]) == {"allreduce"}


def test_collecting_again_gives_the_callers_own_tables_and_a_changed_log_is_read_again(tree, monkeypatch):
    built = []
    monkeypatch.setattr(collect, "_tables", lambda *args, tables=collect._tables: built.append(1) or tables(*args))
    records, status = collect.collect(tree, "figx", "mini")
    records["val_top1"], status["state"] = -1.0, "changed by the caller"
    again, again_status = collect.collect(tree, "figx", "mini")
    assert -1.0 not in set(again["val_top1"]) and "changed by the caller" not in set(again_status["state"])
    assert again.loc[again["run_id"] == "a0", "val_top1"].tolist() == [50.0, 50.0, 90.0, 92.0]
    assert len(built) == 1   # the same logs: the tables built the first time
    # run a0 evaluated once more, and b1 (unfinished) finished: both are read as they are now
    two_model_run(tree, "a0", config(0), [(11.0, 0.30), (12.0, 0.50)])
    write_run(tree, "b1", config(1, **{"method.name": "allreduce", "method.n": 1}), [eval_record(10, 0)])
    changed, changed_status = collect.collect(tree, "figx", "mini")
    assert changed.loc[changed["run_id"] == "a0", "val_top1"].tolist() == [50.0, 50.0, 11.0, 12.0]
    assert changed_status.set_index("run_id").loc["b1", "state"] == "finished"
    assert "b1" in set(changed["run_id"]) and len(built) == 2


def test_seeds_per_setting_and_the_printed_status(tree):
    _, status = collect.collect(tree, "figx", "mini")
    seeds = collect.seed_table(status).set_index("setting")
    assert seeds.loc["method=allreduce", "finished"] == [0]
    assert seeds.loc["method=allreduce", "unfinished"] == [1]
    assert seeds.loc["method=allreduce", "missing"] == [2]
    assert seeds.loc["method=codistill", "finished"] == [0, 1, 2]   # results_root is not part of a setting
    text = "\n".join(collect.status_lines(status, "figx"))
    assert "figx: 4 finished, 1 unfinished, 1 missing, 1 unreadable (1 shared from other sweeps)" in text
    assert "shared from sweep figy: 1 run(s)" in text
    assert "fewer than 3 seeds finished for [method=allreduce]: seeds [0]" in text


def test_means_and_standard_errors_over_seeds_equal_hand_computed_values(tree):
    records, _ = collect.collect(tree, "figx", "mini")
    finals = last_step(per_run(records[records["cfg.method.name"] == "codistill"], ["val_top1", "train_loss"]))
    # per-seed means over the two models: top-1 91, 92, 97; loss 0.4, 0.3, 0.2
    top1 = aggregate(finals.assign(g="A"), ["g"], "val_top1")
    assert top1["mean"].item() == pytest.approx(280 / 3)
    deviations = [91 - 280 / 3, 92 - 280 / 3, 97 - 280 / 3]
    assert top1["se"].item() == pytest.approx(math.sqrt(sum(d * d for d in deviations) / 2) / math.sqrt(3))
    assert top1["seeds"].item() == 3
    loss = aggregate(finals.assign(g="A"), ["g"], "train_loss")
    assert loss["mean"].item() == pytest.approx(0.3) and loss["se"].item() == pytest.approx(0.1 / math.sqrt(3))
    # the claims' path computes the same numbers from the same table
    data = registry.FigureData(registry.SPECS["fig2"], "mini", tree, registry._derived_columns(records),
                               pd.DataFrame())
    stats = group_stats(data.records, {"method.name": "codistill"}, "val_top1")[None]
    assert stats[0] == pytest.approx(280 / 3) and stats[1] == pytest.approx(top1["se"].item()) and stats[2] == 3


def test_a_label_that_merges_two_settings_is_refused(tree):
    records, _ = collect.collect(tree, "figx", "mini")
    curves = per_run(records, ["val_top1"]).assign(label="everything")
    with pytest.raises(ValueError, match="merges different settings"):
        aggregate(curves[curves["step"] == 20], ["label"], "val_top1")


def test_the_committed_gzipped_form_collects_to_the_same_table(tree, tmp_path):
    committed = tmp_path / "committed"
    sweeps, written, missing, removed = pack.pack(tree, committed, "mini")
    assert (sweeps, written, missing) == (1, 6, ["b2"])
    assert not list(committed.rglob("metrics.jsonl")) and len(list(committed.rglob("metrics.jsonl.gz"))) == 6
    plain_records, plain_status = collect.collect(tree, "figx", "mini")
    packed_records, packed_status = collect.collect(committed, "figx", "mini")
    pd.testing.assert_frame_equal(plain_records, packed_records)
    pd.testing.assert_frame_equal(plain_status, packed_status)
    # packing again changes no byte; a run no manifest names any more is removed
    before = {p: p.read_bytes() for p in committed.rglob("*.gz")}
    assert pack.pack(tree, committed, "mini")[1] == 0
    assert before == {p: p.read_bytes() for p in committed.rglob("*.gz")}
    # a run stopped midway in the results never replaces its finished packed log
    finished_log = (committed / "runs" / "a0" / "metrics.jsonl.gz").read_bytes()
    plain = tree / "runs" / "a0" / "metrics.jsonl"
    plain.write_text("".join(plain.read_text().splitlines(keepends=True)[:-1]))
    assert pack.pack(tree, committed, "mini")[1] == 0
    assert (committed / "runs" / "a0" / "metrics.jsonl.gz").read_bytes() == finished_log
    # nor does a rerun that failed (diverged): its end record has no result
    plain.write_text(plain.read_text() + json.dumps({"kind": "end", "status": "failed", "reason": "nan", "steps": 20})
                     + "\n")
    assert pack.pack(tree, committed, "mini")[1] == 0
    assert (committed / "runs" / "a0" / "metrics.jsonl.gz").read_bytes() == finished_log
    write_manifest(tree, "figx", [("a0", ["seed=0"])])
    assert pack.pack(tree, committed, "mini", replace=True)[3] == 5


def test_packing_refuses_a_new_log_whose_code_cannot_be_recovered_and_writes_nothing(tree, tmp_path):
    committed = tmp_path / "committed"
    pack.pack(tree, committed, "mini")
    before = {p: p.read_bytes() for p in committed.rglob("*") if p.is_file()}
    log = tree / "runs" / "a1" / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    for dirty, why in ((True, "made from abc with uncommitted changes"), (None, "made from abc with uncommitted "
                                                                                "changes")):
        log.write_text(json.dumps({**header, "git_dirty": dirty}) + "\n" + "".join(lines[1:]))
        with pytest.raises(SystemExit, match=rf"1 run\(s\) whose code cannot be recovered: a1 \({why}\)"):
            pack.pack(tree, committed, "mini")
        assert {p: p.read_bytes() for p in committed.rglob("*") if p.is_file()} == before
    log.write_text(json.dumps({**header, "git_commit": None}) + "\n" + "".join(lines[1:]))
    with pytest.raises(SystemExit, match=r"a1 \(made outside git\)"):
        pack.pack(tree, committed, "mini")
    # a log already committed byte for byte is not new: packing it again is allowed whatever its header
    log.write_text("".join(lines))
    assert pack.pack(tree, committed, "mini")[1] == 0


def test_a_damaged_gzip_file_is_unreadable_not_a_crash(tmp_path):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "metrics.jsonl.gz").write_bytes(gzip.compress(b'{"kind": "header"}\n' * 50)[:30])
    assert read_log(run).state == "unreadable"


def test_a_sweep_that_was_not_run_says_how_to_run_it(tmp_path):
    data = registry.load(registry.SPECS["fig2"], tmp_path, "mini")
    assert data.records.empty and "python src/run.py -m sweep=fig2 scale=mini" in data.problem


def test_a_failed_run_is_reported_as_failed_and_never_among_the_results(tmp_path):
    root = tmp_path / "logs"
    two_model_run(root, "ok", config(0), [(90.0, 0.3), (91.0, 0.4)])
    failed = {"kind": "end", "status": "failed", "reason": "diverged: the training loss of model 1 ...", "steps": 10}
    write_run(root, "nan", config(1), [eval_record(10, m) for m in (0, 1)] + [failed], end=False)
    write_manifest(root, "figx", [("ok", ["seed=0"]), ("nan", ["seed=1"])])
    records, status = collect.collect(root, "figx", "mini")
    state = status.set_index("run_id")
    assert state["state"].to_dict() == {"ok": "finished", "nan": "failed"}
    assert state.loc["nan", "notes"] == failed["reason"]
    assert sorted(records["run_id"].unique()) == ["ok"]
    assert collect.seed_table(status).iloc[0]["failed"] == [1]
    assert "figx: 1 finished, 1 failed" in "\n".join(collect.status_lines(status, "figx"))


def test_a_run_of_model_jobs_in_progress_shows_how_far_each_model_is(tmp_path):
    """method.transport=files: the run's log is assembled when its last model ends; until then
    status reads each model's own log (model<i>/metrics.jsonl). Three models, evaluated every 10
    updates (an epoch): model 0 has ended at update 30, model 1 was resumed from update 10 and has
    reached update 20, model 2 has not started."""
    root = tmp_path / "logs"
    cfg = config(5, **{"method.n": 3, "method.exchange": "checkpoints", "method.transport": "files"})
    header = {"kind": "header", "run_id": "m", "sweep_id": "figx", "seed": 5, "scale": "mini",
              "scale_note": cfg["scale"]["note"], "config": cfg, "git_commit": "abc", "git_dirty": False,
              "slurm_job_id": None}
    run = root / "runs" / "m"

    def model_log(model, records):
        (run / f"model{model}").mkdir(parents=True, exist_ok=True)
        (run / f"model{model}" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [header, *records]))

    def start(model, step, last_seen=None):
        return {"kind": "start", "model": model, "step": step, "time": 1000.0 + step, "last_seen": last_seen}

    def model_end(steps):
        return {"kind": "end", "steps": steps, "wall_time": 3.0}

    model_log(0, [start(0, 0), *(eval_record(step, 0) for step in (10, 20, 30)), model_end(30)])
    model_log(1, [start(1, 0), eval_record(10, 1), start(1, 10, last_seen=1005.0), eval_record(20, 1)])
    write_manifest(root, "figx", [("m", ["method=codistill", "method.transport=files"])])

    def state():
        records, status = collect.collect(root, "figx", "mini")
        return records, status.set_index("run_id").loc["m"], collect.status_lines(status, "figx")

    records, run_state, lines = state()
    assert records.empty and (run_state["state"], run_state["seed"]) == ("unfinished", 5)
    progress = ("model 0: epoch 3, update 30, ended; model 1: epoch 2, update 20, not ended, resumed 1x; "
                "model 2: not started")
    assert run_state["notes"] == "the run's log is assembled once every model has ended; " + progress
    assert lines == ["figx: 1 unfinished", f"  unfinished: m seed 5 ({run_state['notes']})"]

    # Every model has ended (model 2 diverged), but the run's log is not written yet: the last
    # job stopped before assembling it.
    model_log(1, [start(1, 0), eval_record(10, 1), start(1, 10, last_seen=1005.0), eval_record(20, 1),
                  eval_record(30, 1), model_end(30)])
    model_log(2, [start(2, 0), eval_record(10, 2), eval_record(20, 2), {**model_end(20), "status": "failed",
                                                                          "reason": "diverged"}])
    progress = ("model 0: epoch 3, update 30, ended; model 1: epoch 3, update 30, ended, resumed 1x; "
                "model 2: epoch 2, update 20, failed (diverged)")
    assert state()[1]["notes"] == "every model has ended: rerunning the sweep assembles the run's log; " + progress

    # The run's log written up to its end record: still unfinished, still each model's progress.
    evals = [eval_record(step, model) for step in (10, 20, 30) for model in (0, 1, 2) if (step, model) != (30, 2)]
    write_run(root, "m", cfg, evals, end=False)
    assert state()[1]["notes"] == "no end record (last step 30); " + progress
    # Once it has its end record the run is what its own log says, finished; the models' logs are not read.
    write_run(root, "m", cfg, evals)
    records, run_state, lines = state()
    assert (run_state["state"], run_state["notes"]) == ("finished", "")
    assert sorted(set(zip(records["step"], records["model"]))) == sorted((e["step"], e["model"]) for e in evals)
