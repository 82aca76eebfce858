"""A rerun never loses finished work: a log damaged before its last line is refused and
left byte for byte, a torn last line still resumes, a diverged run ends as a failure (never a
result), and Ctrl-C ends a run with one line saying how to resume it. Real runs through src/run.py."""
import json
import os
import shlex
import shutil
import signal
import subprocess

import pytest
from conftest import SHORT
from forked_script import run_script, start_script
from test_frontier_methods import run_to_the_end

from benchmarks import soak_resume
from codistill_experiments.runlog import DAMAGED, METRICS_FILE, DamagedLog, end_state, parse_log, read_records
from figures.logs.run_logs import read_log

EPOCHS = 12   # long enough for Ctrl-C to reach a run still training, even on a fast machine
DIGITS_TRAIN, BATCH = 1200, 32   # workloads/digits_mlp.yaml train_size; scale mini's batch per rank


def run(results_root, job=None):
    """`python src/run.py <job>`, in a fork of this process (tests/forked_script.py)."""
    return run_script([*soak_resume.RUN[1:], *(job or soak_resume.job(EPOCHS)), f"results_root={results_root}"],
                      timeout=300)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """(results root of a finished run, its log without wall times). It is launched as src/run.py
    launches it, from this process (the reruns are src/run.py's: tests/test_reliability.py checks
    that both write the same log)."""
    root = tmp_path_factory.mktemp("finished")
    run_to_the_end(soak_resume.job(EPOCHS), root)
    return root, soak_resume.log_without_wall_time(root)


def copy_of(finished, tmp_path):
    root = tmp_path / "results"
    shutil.copytree(finished[0], root)
    return root, soak_resume.run_directory(root) / METRICS_FILE


@pytest.mark.slow
def test_a_damaged_middle_line_of_a_finished_log_survives_a_rerun_byte_for_byte(finished, tmp_path):
    root, log = copy_of(finished, tmp_path)
    lines = log.read_bytes().split(b"\n")
    lines[3] = lines[3][:40] + b"\x00\x00" + lines[3][42:]   # line 4 of 26: bytes lost in the middle
    log.write_bytes(b"\n".join(lines))
    damaged = log.read_bytes()
    done = run(root)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    message = done.stderr.strip().splitlines()[-1]
    total = len(finished[1]) + 1   # header, evals, end
    assert message.startswith(f"error: {log}: line 4 of {total} is damaged"), message
    assert log.read_bytes() == damaged
    assert read_log(log.parent).state == "unreadable"
    # The command it prints sets the run aside and reruns it from scratch, to the same records.
    command = message.split("from scratch: ", 1)[1]
    aside, rerun = command.split(" && ")
    subprocess.run(shlex.split(aside), check=True)
    again = run_script(shlex.split(rerun)[1:], timeout=300)   # the script and its arguments, in this interpreter
    assert again.returncode == 0, again.stderr[-2000:]
    assert evals(read_records(log)) == evals(finished[1])
    assert (log.parent.with_name(log.parent.name + ".set-aside") / METRICS_FILE).read_bytes() == damaged


@pytest.mark.slow
def test_a_torn_end_record_is_a_crash_while_writing_and_resumes_to_the_same_log(finished, tmp_path):
    root, log = copy_of(finished, tmp_path)
    text = log.read_text()
    end = text.rstrip("\n").rsplit("\n", 1)[1]
    log.write_text(text[:len(text) - len(end) - 1] + end[:len(end) // 2])
    done = run(root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert soak_resume.log_without_wall_time(root) == finished[1]
    assert read_records(log)[-1]["kind"] == "end"


def test_the_reader_tells_a_torn_last_line_from_damage_before_it(tmp_path):
    path = tmp_path / METRICS_FILE
    records = [{"kind": "header", "run_id": "r", "config": {}}, {"kind": "eval", "step": 1, "model": 0},
               {"kind": "eval", "step": 2, "model": 0}]
    lines = [json.dumps(record) for record in records]
    path.write_text("\n".join(lines) + "\n" + lines[2][:9])
    contents = parse_log(path)
    assert contents.records == records and contents.torn
    path.write_text("\n".join([lines[0], lines[1][:9], lines[2]]) + "\n")
    with pytest.raises(DamagedLog) as damage:
        parse_log(path)
    assert (damage.value.line, damage.value.total) == (2, 3)


@pytest.mark.parametrize("line, why", [
    ('{"kind": "eval"}', "a record of kind 'eval' without model, step"),
    ('{"kind": "eval", "model": 0, "step": "7"}', "a record of kind 'eval' whose step is '7', not a whole number"),
    ('{"kind": "eval", "model": true, "step": 7}', "a record of kind 'eval' whose model is True, not a whole number"),
    ('{"kind": "evaluation", "model": 0, "step": 7}', "a record of unknown kind 'evaluation'"),
    ('[1, 2]', "a JSON list, not a record"),
    ('{"kind": "end", "status": "failed", "steps": 3}', "a failed end record without its reason"),
])
def test_a_line_that_decodes_but_is_not_a_record_of_its_kind_is_damage(tmp_path, line, why):
    """Valid JSON in the middle of a finished log that is no record (`{"kind": "eval"}`) must not
    let the run count as finished: damage, named with its line, as an undecodable line is."""
    path = tmp_path / METRICS_FILE
    header = json.dumps({"kind": "header", "run_id": "r", "config": {}})
    good = json.dumps({"kind": "eval", "step": 1, "model": 0})
    path.write_text("\n".join([header, good, line, json.dumps({"kind": "end", "steps": 1})]) + "\n")
    with pytest.raises(DamagedLog) as damage:
        parse_log(path)
    assert (damage.value.line, damage.value.total) == (3, 4) and str(damage.value).endswith(why)
    assert end_state(path)[0] == DAMAGED
    path.write_text("\n".join([header, good, line]) + "\n")   # as the last line too: no crash writes it
    with pytest.raises(DamagedLog):
        parse_log(path)


def evals(records):
    return [{k: v for k, v in record.items() if k != "wall_time"} for record in records if record["kind"] == "eval"]


@pytest.mark.slow
def test_a_diverged_run_exits_nonzero_with_a_failed_end_record_and_is_not_a_result(tmp_path):
    job = ["workload=digits_mlp", "method=codistill", "schedule.lr.base=100", *SHORT]
    done = run(tmp_path, job)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    first_evaluation = DIGITS_TRAIN // BATCH
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("error: diverged: the training loss of model 0, 1 became non-finite at an update "
                              f"between 1 and {first_evaluation}"), message
    assert "schedule.lr.base=100" in message
    [directory] = (tmp_path / "runs").iterdir()
    records = read_records(directory / METRICS_FILE)
    assert [r["kind"] for r in records] == ["header", "end"]
    assert records[-1]["status"] == "failed" and records[-1]["steps"] == first_evaluation
    assert not list(directory.glob("model*.pt"))   # no final weights of a failed run
    log = read_log(directory)
    assert log.state == "failed" and "diverged" in log.notes[-1]
    before = (directory / METRICS_FILE).read_bytes()
    again = run(tmp_path, job)   # a rerun repeats nothing and says why
    assert again.returncode != 0 and "failed: diverged" in again.stderr.strip().splitlines()[-1]
    assert (directory / METRICS_FILE).read_bytes() == before


@pytest.mark.slow
def test_ctrl_c_ends_a_run_with_one_line_and_rerunning_resumes_it_exactly(finished, tmp_path):
    root = tmp_path / "interrupted"   # the job of `finished`, its uninterrupted run
    command = [*soak_resume.RUN[1:], *soak_resume.job(EPOCHS), f"results_root={root}"]
    # A terminal's foreground job has SIGINT at its default; a test run from a background shell job
    # inherits it ignored (as every background command of a non-interactive shell does), so reset it.
    process = start_script(command, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))   # in a fork
    soak_resume.wait_for_training(root, process)
    os.killpg(process.pid, signal.SIGINT)   # what Ctrl-C in a terminal does: the whole foreground group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    assert [line for line in stderr.splitlines() if line.strip()] == [
        f"interrupted: {soak_resume.run_directory(root).name} stopped; rerun the same command to resume it from "
        "its last committed state"]
    done = run(root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert soak_resume.log_without_wall_time(root) == finished[1]
