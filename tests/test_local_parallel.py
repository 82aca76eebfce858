"""launcher=local_parallel: up to launcher.jobs_at_once jobs of a sweep at once on this machine
(Hydra's joblib launcher), by default cores // ranks per job; its keys leave run ids unchanged."""
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import CONF, QUICK_WORKLOAD, ROOT, SHORT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from test_sweeps import sweep_in_process
from translation_helpers import SMALL

from codistill_experiments.config import validate
from codistill_experiments.runlog import read_records, run_id

CORES = len(os.sched_getaffinity(0))


def run_cli(*args, cwd):
    """`python src/run.py <args>` in a fresh interpreter: the joblib launcher hands its workers
    this process's Hydra state, which in a fork of the test process would hold whatever earlier
    tests registered (fairseq's configs once it is imported)."""
    return subprocess.run([sys.executable, str(ROOT / "src" / "run.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def composed(overrides, tmp_path):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("codistill", overrides=[QUICK_WORKLOAD, *overrides, f"results_root={tmp_path}"],
                       return_hydra_config=True)


@pytest.mark.slow
def test_by_default_as_many_jobs_as_fill_the_cores_and_run_ids_as_with_the_local_launcher(tmp_path):
    for method, ranks in (("method=allreduce method.nodes_per_model=1", 1), ("method=codistill", 2),
                          ("method=codistill method.n=4", 4)):
        overrides = method.split()
        cfg = composed(["launcher=local_parallel", *overrides], tmp_path)
        assert cfg.job_ranks == ranks
        assert cfg.launcher.jobs_at_once == cfg.hydra.launcher.n_jobs == max(1, CORES // ranks)
        assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
        local = composed(["launcher=local", *overrides], tmp_path)
        assert run_id(validate(cfg)) == run_id(validate(local))
    capped = composed(["launcher=local_parallel", "launcher.jobs_at_once=3", "method=codistill"], tmp_path)
    local = composed(["launcher=local", "method=codistill"], tmp_path)
    assert capped.hydra.launcher.n_jobs == 3 and run_id(validate(capped)) == run_id(validate(local))


@pytest.mark.slow
def test_groups_of_other_widths_run_one_after_another_each_at_its_own_cap(tmp_path, monkeypatch):
    # 1-rank and 2-rank jobs need joblib launchers of their own (n_jobs differs); launched at once
    # they would together run more jobs than the cores hold.
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobReturn, JobStatus

    Plugins.instance()
    sweeper_class = Plugins.instance().class_name_to_class[
        "hydra_plugins.codistill_sweeper.grid_union_sweeper.GridUnionSweeper"]
    launched, running, most = [], [0], [0]
    lock = threading.Lock()

    class RecordingLauncher:
        def __init__(self, resources):
            self.resources = resources

        def launch(self, job_overrides, initial_job_idx):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.3)
            launched.append((self.resources["n_jobs"], [[o for o in job if o.startswith("method=")][0]
                                                        for job in job_overrides]))
            with lock:
                running[0] -= 1
            return [JobReturn(status=JobStatus.COMPLETED) for _ in job_overrides]

    monkeypatch.setattr(sweeper_class, "launcher_for", lambda self, resources: RecordingLauncher(resources))
    sweep_in_process("launcher=local_parallel", QUICK_WORKLOAD, "method=allreduce,codistill", "method.nodes_per_model=1",
                     "seed=1,2", f"results_root={tmp_path}")
    assert most[0] == 1
    assert sorted(launched) == sorted([(max(1, CORES // 1), ["method=allreduce"] * 2),
                                       (max(1, CORES // 2), ["method=codistill"] * 2)])


def intervals(root):
    """(start, end) of each run: its log's last write, less the wall time its end record gives."""
    spans = []
    for log in sorted((root / "runs").glob("*/metrics.jsonl")):
        end = read_records(log)[-1]
        assert end["kind"] == "end"
        spans.append((log.stat().st_mtime - end["wall_time"], log.stat().st_mtime))
    return spans


def most_at_once(spans, slack_s=0.05):
    """The most spans open at one moment (each shortened by slack_s at both ends: clocks' rounding)."""
    events = sorted([(start + slack_s, 1) for start, _ in spans] + [(end - slack_s, -1) for _, end in spans])
    open_now = most = 0
    for _, change in events:
        open_now += change
        most = max(most, open_now)
    return most


# Long enough (about 2 s of training on an idle 2-core machine) that two jobs started together
# train at the same time whatever their start-up; the third starts only when one has ended.
TRAINING = ["schedule.epochs=20", "schedule.lr.warmup_epochs=1", "schedule.lr.milestones=[10]", *SHORT[3:]]


@pytest.mark.slow
def test_three_two_rank_jobs_run_two_at_a_time_and_all_finish(tmp_path):
    done = run_cli("-m", "launcher=local_parallel", "launcher.jobs_at_once=2", QUICK_WORKLOAD, "method=codistill",
                   "seed=1,2,3", *TRAINING, f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    spans = intervals(tmp_path)
    assert len(spans) == 3
    assert most_at_once(spans) == 2


@pytest.mark.slow
def test_every_translation_job_trains_also_in_a_joblib_worker_that_ran_one_before(tmp_path):
    """Hydra's joblib launcher hands each job a copy of the launcher's Hydra state, ConfigStore
    included, while fairseq registers its configs there only when first imported. Three one-rank
    translation jobs, two at a time: the third runs in a worker that already ran one, and fairseq
    must still find its configs there (it stopped with "Could not find 'lr_scheduler/fixed'")."""
    done = run_cli("-m", "launcher=local_parallel", "launcher.jobs_at_once=2", *SMALL, "schedule.max_update=8",
                   "method=independent", "method.n=1", "seed=1,2,3", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 3
    for directory in runs:
        end = read_records(directory / "metrics.jsonl")[-1]
        assert end["kind"] == "end" and end.get("status") != "failed" and end["steps"] == 8, (directory, end)
