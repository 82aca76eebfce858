"""Independent model jobs (method.transport=files) started one model at a time on this machine, as
a requeued model job is: `model_job=<i>` trains model i beside whatever its peers are doing."""
import subprocess

from benchmarks import soak_resume
from codistill_experiments.runlog import METRICS_FILE, is_finished, read_records

FILES = ["method.transport=files", "method.snapshot_mode=async"]


def test_each_model_job_runs_alone_and_the_last_assembles_the_run_log(tmp_path):
    job = [*soak_resume.RUN, *soak_resume.job(4), *FILES, f"results_root={tmp_path}"]
    for model in (0, 1):   # model 0 alone (its peer absent: no teacher), then model 1 (model 0's last snapshot)
        done = subprocess.run([*job, f"model_job={model}"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
    [directory] = (tmp_path / "runs").iterdir()
    assert is_finished(directory)
    evals = [r for r in read_records(directory / METRICS_FILE) if r["kind"] == "eval"]
    assert sorted({r["model"] for r in evals}) == [0, 1]
    # model 1 trained after model 0 had finished: its teacher was model 0's newest snapshot
    assert all(r["teacher_ages"] == [None] for r in evals if r["model"] == 0)
    assert any(r["teacher_ages"] not in ([None], None) for r in evals if r["model"] == 1)
