"""What a user sees while a vision run trains: a line per evaluation, a short line at a fixed
interval, a summary at the end; one line per run in a sweep run here."""
import io
import os
import re

import pytest
from conftest import ROOT, SHORT, compose_job
from forked_script import run_script

from codistill_experiments import progress
from codistill_experiments.runlog import METRICS_FILE, read_records, run_dir

QUICK = "workload=digits_mlp"   # seconds per run


def test_durations_and_bit_counts_are_written_for_people():
    assert [progress.duration(s) for s in (7.4, 59.6, 192, 3725, 90061)] == ["7s", "1m00s", "3m12s", "1h02m",
                                                                              "25h01m"]
    assert [progress.bits(b) for b in (0, 999, 2.5e9, 1.23456e6, 3e12)] == ["0 bit", "999 bit", "2.50 Gbit",
                                                                          "1.23 Mbit", "3.00 Tbit"]


def test_an_evaluation_line_holds_each_models_loss_and_top1_the_bits_speed_and_time_left(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.MODE_VARIABLE, raising=False)
    out = io.StringIO()
    reporter = progress.Progress("mini-codistill-x", tmp_path, total_steps=400, steps_per_epoch=100,
                                 samples_per_update=64, step=100, out=out)
    reporter.started -= 10.0        # 100 updates of this attempt in 10 s: 640 samples/s, 200 updates left
    records = [{"kind": "eval", "step": 200, "epoch": 2.0, "model": m, "train_loss": loss, "val_top1": top1,
                "ensemble_top1": 90.5, "comm_bits_inter_node": 4.2e6, "comm_bits_intra_node": 0}
               for m, loss, top1 in ((0, 0.51234, 88.0), (1, 0.49, 89.25))]
    reporter.evaluation(records)
    line = out.getvalue().strip()
    assert line.startswith("epoch 2/4 · update 200/400 · model 0 loss 0.5123 top-1 88.00% · "
                           "model 1 loss 0.4900 top-1 89.25% · ensemble 90.50% · sent 4.20 Mbit inter-node")
    rate, left = re.search(r"· ([\d,]+) samples/s · (\S+) left$", line).groups()
    assert abs(int(rate.replace(",", "")) - 640) <= 1 and left == "20s"


def run_cli(*args, env=None, cwd):
    """`python src/run.py <args>` in cwd, in a fork of this process (tests/forked_script.py)."""
    return run_script([ROOT / "src" / "run.py", *args], cwd=cwd, env=env, timeout=300)


def environment(**variables):
    env = {key: value for key, value in os.environ.items() if not key.startswith("CODISTILL_PROGRESS")}
    return {**env, **variables}


@pytest.mark.slow
def test_a_run_prints_a_line_per_evaluation_and_a_summary_matching_its_log(tmp_path):
    args = [QUICK, "method=codistill", "seed=5", *SHORT, f"results_root={tmp_path}"]
    done = run_cli(*args, env=environment(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    directory = run_dir(compose_job(args[:-1], tmp_path))
    records = read_records(directory / METRICS_FILE)
    evals = [r for r in records if r["kind"] == "eval"]
    steps = sorted({r["step"] for r in evals})
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"run {directory.name}")
    evaluation_lines = [line for line in lines if line.startswith("epoch ")]
    assert len(evaluation_lines) == len(steps) == 3
    for line, step in zip(evaluation_lines, steps):
        for r in (r for r in evals if r["step"] == step):
            assert f"model {r['model']} loss {r['train_loss']:.4f} top-1 {r['val_top1']:.2f}%" in line
        assert f"update {step}/{steps[-1]}" in line and " left" in line
    last = [r for r in evals if r["step"] == steps[-1]]
    assert lines[-1] == (f"done {directory.name} in {progress.duration(records[-1]['wall_time'])}: top-1 "
                         f"model 0 {last[0]['val_top1']:.2f}%, model 1 {last[1]['val_top1']:.2f}%, "
                         f"ensemble {last[0]['ensemble_top1']:.2f}% · log {directory / METRICS_FILE}")


@pytest.mark.slow
def test_a_short_line_comes_at_the_interval_between_evaluations(tmp_path):
    # An interval of 0 s: a short line after every update (a real run's default is 60 s).
    args = [QUICK, "method=codistill", "seed=6", *SHORT, f"results_root={tmp_path}"]
    done = run_cli(*args, env=environment(CODISTILL_PROGRESS_INTERVAL_S="0"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    total = read_records(run_dir(compose_job(args[:-1], tmp_path)) / METRICS_FILE)[-1]["steps"]
    short = [line for line in done.stdout.splitlines() if line.startswith("  epoch ")]
    assert [int(re.search(r"update (\d+)/", line).group(1)) for line in short] == list(range(1, total + 1))
    assert all(line.endswith(" left") for line in short)


@pytest.mark.slow
def test_a_sweep_run_here_prints_one_line_per_run_with_its_final_top1(tmp_path):
    args = ["-m", QUICK, "method=codistill", "seed=7,8", *SHORT, f"results_root={tmp_path}"]
    done = run_cli(*args, env=environment(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = [line for line in done.stdout.splitlines() if line.startswith("done ")]
    assert len(runs) == 2 and all(" top-1 model 0 " in line and "ensemble" in line for line in runs)
    assert not [line for line in done.stdout.splitlines() if re.match(r"\s*epoch |run |resume", line)]


@pytest.mark.parametrize("value", ["loud"])
def test_an_unknown_progress_mode_is_refused_naming_the_variable(tmp_path, value):
    done = run_cli(QUICK, "method=codistill", *SHORT, f"results_root={tmp_path}",
                   env=environment(CODISTILL_PROGRESS=value), cwd=tmp_path)
    assert done.returncode != 0 and f"CODISTILL_PROGRESS='{value}'" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()
