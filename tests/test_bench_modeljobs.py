"""The model-jobs benchmark (benchmarks/bench_modeljobs.py, part "modeljobs"): its arithmetic (lost
time, mean ± std over seeds, what it reads from a finished log) on hand-made inputs, and the section
that results.md and the reproduction report render from a hand-written results dict."""
import json
import math

import pytest

from benchmarks import bench_modeljobs
from figures import kill_rejoin
from figures.report import write_markdown


def test_mean_std_is_the_sample_standard_deviation():
    assert kill_rejoin.mean_std([10, 12, 14]) == (12.0, 2.0)
    mean, std = kill_rejoin.mean_std([1.0, 2.0, 4.0])
    deviations = (-4 / 3, -1 / 3, 5 / 3)
    assert mean == pytest.approx(7 / 3) and std == pytest.approx(math.sqrt(sum(d * d for d in deviations) / 2))
    assert kill_rejoin.mean_std([5.0]) == (5.0, 0.0)


def run(top1, bits, wall_time, command_s, finish_s=None, updates=3003, **more):
    out = {"top1": top1, "bits": bits, "wall_time": wall_time, "command_s": command_s, "updates": updates, **more}
    return out if finish_s is None else {**out, "finish_s": finish_s}


def seed(number, survivor_lost, killed_lost, allreduce_lost, top1_killed):
    """One seed's measurements whose lost times are the given ones: survivor 40 s uninterrupted,
    model 1 finishing 45 s after the launch, all_reduce's command 50 s."""
    return {"seed": number,
            "files": run([80.0, 79.0], [30e6, 32e6], [40.0, 41.0], 46.0, finish_s=[44.0, 45.0]),
            "files_killed": run([80.2, top1_killed], [20e6, 22e6], [40.0 + survivor_lost, 39.0], 60.0,
                                finish_s=[44.0, 45.0 + killed_lost], exit_codes=[1, 0], kill_step_estimate=1501.5,
                                down_s=12.0, resumed_from_step=1287,
                                survivor_s_per_update={"both": 0.02, "alone": 0.01 + number / 1000},
                                overlap_s=4.0 + number),
            "allreduce": run([81.0], [1e9], [45.0], 50.0, updates=1498),
            "allreduce_killed": run([81.0], [1e9], [45.5], 50.0 + allreduce_lost, updates=1498,
                                    kill_step_estimate=749.0, resumed_from_step=642),
            "collectives": run([80.1, 79.5], [40e6, 40e6], [43.0], 47.0)}


PART = {"seeds": [seed(0, 2.0, 16.0, 30.0, 78.0), seed(1, 2.5, 18.0, 33.0, 78.5), seed(2, 3.0, 20.0, 36.0, 79.0)],
        "period": 214, "delay_s": 10.0, "epochs": 7, "schedule": ["schedule.epochs=35"],
        "files": list(bench_modeljobs.FILES)}
for number, measured in enumerate(PART["seeds"]):   # the load average at each run's start: 0.5 to 2.5
    for index, name in enumerate(("files", "files_killed", "allreduce", "allreduce_killed", "collectives")):
        measured[name]["load_before"] = 0.5 + (number + index) / 3
MACHINE = {"cpu": "AMD EPYC", "cores": 2, "date": "2026-11-24 10:00", "git_commit": "abc1234"}
RESULTS = {"machine": {**MACHINE, "git_commit": "0000000"}, "parts": {"modeljobs": PART, "bytes": {}},
           "remeasured": [{"parts": ["loop"], "machine": {}}, {"parts": ["modeljobs"], "machine": MACHINE}]}


def test_lost_times_are_killed_less_uninterrupted():
    assert kill_rejoin.lost_times(PART["seeds"][1]) == pytest.approx(
        {"survivor": 2.5, "killed_model": 18.0, "allreduce": 33.0})


def test_the_section_renders_the_measured_numbers(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    text = "\n".join(kill_rejoin.report_section(path))
    assert text.startswith(f"## {kill_rejoin.TITLE}") and "(mini)" in text and "not the paper's numbers" in text
    # lost seconds: survivor 2, 2.5, 3 -> 2.5 ± 0.5; killed model 16, 18, 20 -> 18 ± 2; all_reduce 30, 33, 36
    assert "| model jobs: model 0 (survivor), its wall time | 40.0 ± 0.0 | 42.5 ± 0.5 | +2.5 ± 0.5 |" in text
    assert ("| model jobs: model 1 (killed), launch to its last evaluation | 45.0 ± 0.0 | 63.0 ± 2.0 | +18.0 ± 2.0 |"
            in text)
    assert "| 50.0 ± 0.0 | 83.0 ± 3.0 | +33.0 ± 3.0 |" in text
    # top-1 of the killed model: 78, 78.5, 79 against 79 uninterrupted
    assert "| model 1 (killed) | 79.00 ± 0.00 | 78.50 ± 0.50 | -0.50 ± 0.50 |" in text
    # bits per model: files (30 + 32) / 2 = 31 Mbit over 3003 updates, all_reduce 1000 Mbit
    assert f"| 31.0 ± 0.0 | {31e6 / 3003:.4g} ± 0 | {31e6 / 1e9:.3g}x |" in text
    assert "| 40.0 ± 0.0 |" in text and "| 1000.0 ± 0.0 |" in text
    # the kill at 1501.5 of 3003 updates, the down record's 12 s, the delay
    assert "SIGKILL at 50 ± 0 % of its updates (mid-epoch, estimated from its pace; it resumed from update 1287)" \
        in text
    assert "(resumed from update 642)" in text and "12.0 ± 0.0 s down" in text and "10 s later" in text
    assert "survivor lost less time than all_reduce" in text and "seeds 0, 1, 2" in text
    # model 0's pace: 0.02 s per update both training, 0.010, 0.011, 0.012 with model 1 down; 429 updates an epoch
    alone = kill_rejoin.mean_std([(0.01 + s / 1000) * 429 for s in range(3)])
    assert (f"model 0 took {0.02 * 429:.2f} ± 0.00 s per epoch while both models trained and "
            f"{alone[0]:.2f} ± {alone[1]:.2f} s while model 1 was down") in text and "more CPU" in text
    assert "restarted 5.0 ± 1.0 s before model 0's last evaluation" in text
    assert "a shortened schedule (`schedule.epochs=35`): 7 mini epochs, 3003 updates" in text
    assert "Load average (1 min) at the start of the 15 runs: 0.5 to 2.5" in text
    assert "on AMD EPYC (2 cores, no GPU) on 2026-11-24 10:00 at commit abc1234" in text


def test_the_reading_follows_the_numbers():
    def with_killed(key, values):
        return {**PART, "seeds": [{**s, "files_killed": {**s["files_killed"], key: value}}
                                  for s, value in zip(PART["seeds"], values)]}

    # alone 0.018, 0.0199, 0.022 s per update: its mean below both's 0.02, but not beyond its deviation
    same_pace = kill_rejoin.reading(with_killed("survivor_s_per_update",
                                                [{"both": 0.02, "alone": a} for a in (0.018, 0.0199, 0.022)]))
    assert "while model 1 was down." in same_pace and "more CPU" not in same_pace
    assert "restarted 3.0 ± 1.0 s after model 0's last evaluation (its peer had finished)" in kill_rejoin.setup_line(
        with_killed("overlap_s", [-2.0, -3.0, -4.0]))
    assert "about when model 0 finished (+0.3 ± 1.5 s before its last evaluation)" in kill_rejoin.setup_line(
        with_killed("overlap_s", [-1.0, 0.0, 2.0]))
    slower = {**PART, "seeds": [seed(s, 40.0 + s, 16.0, 30.0, 78.0) for s in range(3)]}
    assert "the survivor lost more time than all_reduce" in kill_rejoin.reading(slower)
    close = {**PART, "seeds": [seed(s, 29.0 + 2 * s, 16.0, 30.0 + s, 78.0) for s in range(3)]}
    assert "the survivor lost about as much (within a standard deviation) time" in kill_rejoin.reading(close)


def test_results_md_and_the_report_show_the_same_tables(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"parts": {"modeljobs": PART}}))
    results_md = "\n".join(bench_modeljobs.section(PART, []))
    report = "\n".join(kill_rejoin.report_section(path))
    assert "\n".join(kill_rejoin.tables(PART)) in results_md and "\n".join(kill_rejoin.tables(PART)) in report


def test_the_report_has_the_section_or_says_it_was_not_measured(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"parts": {"bytes": {}}}))
    md = tmp_path / "report.md"
    write_markdown([], {}, {}, {}, "logs", md, bench=path)
    assert f"## {kill_rejoin.TITLE}\n\nNot measured" in md.read_text()
    path.write_text(json.dumps({"parts": {"modeljobs": PART}}))
    write_markdown([], {}, {}, {}, "logs", md, bench=path)
    assert "| +18.0 ± 2.0 |" in md.read_text()


def test_measures_reads_each_models_last_evaluation(tmp_path):
    records = [{"kind": "header", "run_id": "r", "config": {}},
               *[{"kind": "eval", "step": s, "model": m, "val_top1": 70 + s / 100 + m, "comm_bits_inter_node": s * 10,
                  "time": 1000.0 + s / 10 + m} for s in (100, 200) for m in (0, 1)],
               {"kind": "down", "model": 1, "down_s": 3.0},
               {"kind": "end", "steps": 200, "wall_time": 30.0, "model_wall_times": [29.0, 30.0]}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert bench_modeljobs.measures(tmp_path, launched=990.0) == {
        "top1": [72.0, 73.0], "bits": [2000, 2000], "wall_time": [29.0, 30.0], "updates": 200,
        "finish_s": [30.0, 31.0]}
    records[-1] = {"kind": "end", "steps": 200, "wall_time": 30.0, "status": "failed",
                   "reason": "diverged"}
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(RuntimeError):
        bench_modeljobs.measures(tmp_path, launched=990.0)
