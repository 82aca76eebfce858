"""scripts/one_gpu_check.py's jobs (what it ran on an H200, docs/gpu-cluster.md) stay valid jobs:
each composes, on one GPU, as a job of one rank on NCCL or, where its ranks share the GPU, one the
launcher starts only with the shared-GPU backend set (without it, it refuses, as NCCL would)."""
import importlib.util
import tempfile
import time
from pathlib import Path

import pytest

from codistill_experiments import jobs, preflight
from codistill_experiments.config import placement_problem

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "one_gpu_check.py"
spec = importlib.util.spec_from_file_location("one_gpu_check", SCRIPT)
one_gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(one_gpu_check)


@pytest.mark.parametrize("name, workload, replaced, kill, share", one_gpu_check.CHECKS, ids=lambda v: str(v)[:40])
def test_each_check_is_a_job_one_gpu_can_start(name, workload, replaced, kill, share, monkeypatch):
    paper_workload = preflight.BY_NAME[workload]
    overrides = one_gpu_check.job(paper_workload, replaced, gpus=1, data=("workload.data_root=/nonexistent",)
                                  if paper_workload.data_key == "data_root" else ())
    monkeypatch.delenv(jobs.SHARED_GPU_BACKEND, raising=False)
    job = preflight.compose(overrides)
    if share:   # src/run.py refuses it before it starts, unless the ranks share the GPU
        assert "Duplicate GPU detected" in placement_problem(job, gpus=1)
        monkeypatch.setenv(jobs.SHARED_GPU_BACKEND, "cuda:gloo")
    assert placement_problem(job, gpus=1) is None
    assert job["job_ranks"] == (2 if share else 1) and job["scale"]["gpus_per_rank"] == 1
    assert job["method"]["name"] == ("codistill" if "method=codistill" in replaced else "allreduce")


def test_a_judged_check_keeps_its_logs_and_deletes_its_checkpoints(tmp_path, monkeypatch):
    """WMT'16's transformer big writes 2 GB per checkpoint file: a check's saved models go once it
    is judged (also when it raised), its logs and metrics stay."""
    def writes_a_run(overrides, kill, root, env):
        model = root / "reference" / "runs" / "r" / "model0"
        model.mkdir(parents=True)
        for name in ("checkpoint_last.pt", "train-rank0.log", "metrics.jsonl"):
            (model / name).write_text("x")
        (root / "reference" / "runs" / "r" / "state").mkdir()
        (root / "reference" / "runs" / "r" / "state" / "model0-step2.pt").write_text("x")
        if kill:
            raise RuntimeError("the run broke")
        return {"trains": "pass"}, None

    monkeypatch.setattr(one_gpu_check, "check", writes_a_run)
    assert one_gpu_check.checked([], False, tmp_path / "a", {}) == ({"trains": "pass"}, None)
    with pytest.raises(RuntimeError):
        one_gpu_check.checked([], True, tmp_path / "b", {})
    for root in (tmp_path / "a", tmp_path / "b"):
        assert sorted(p.name for p in root.rglob("*") if p.is_file()) == ["metrics.jsonl", "train-rank0.log"]


def _scheduled(monkeypatch, free_gb):
    """main() on one GPU with `free_gb` free, each check's run replaced by one that records when it
    ran: [(check index, start, end)]."""
    ran = []

    def records(overrides, kill, root, env):
        started = time.monotonic()
        time.sleep(0.3)
        ran.append((int(Path(root).name[len("check"):]), started, time.monotonic()))
        return {"trains": "pass"}, None

    monkeypatch.setattr(one_gpu_check, "visible_gpus", lambda: 1)
    monkeypatch.setattr(one_gpu_check, "free_gpu_gb", lambda: free_gb)
    monkeypatch.setattr(one_gpu_check, "fairseq_installed", lambda: True)
    monkeypatch.setattr(one_gpu_check, "prepared", lambda workload, replaced, root, gpus: [])
    monkeypatch.setattr(one_gpu_check, "checked", records)
    with tempfile.TemporaryDirectory() as root:
        assert one_gpu_check.main([root]) == 0
    return ran


def _most_in_use(ran):
    """The largest sum of the paper memory given to checks running at one time, and how many ran then."""
    need = {index: one_gpu_check.gpu_need_gb(workload, share)
            for index, (_, workload, _, _, share) in enumerate(one_gpu_check.CHECKS)}
    peaks = []
    for _, started, _ in ran:
        running = [index for index, begun, ended in ran if begun <= started < ended]
        peaks.append((sum(need[index] for index in running), len(running)))
    return max(peaks)


def test_a_16_gb_card_runs_the_checks_one_at_a_time_and_an_h200_several_within_its_memory(monkeypatch):
    # Each check is given the paper's V100 memory per process on the GPU: 16 GB vision, 32 GB translation.
    assert [one_gpu_check.gpu_need_gb(workload, share) for _, workload, _, _, share in one_gpu_check.CHECKS] == \
        [16, 16, 16, 16, 16, 32, 32, 32, 64, 64, 64]
    small = _scheduled(monkeypatch, 16.5)
    assert sorted(index for index, _, _ in small) == list(range(11))
    assert _most_in_use(small)[1] == 1                 # one at a time (the 32 and 64 GB ones alone)
    large = _scheduled(monkeypatch, 150.0)
    assert sorted(index for index, _, _ in large) == list(range(11))
    used, count = _most_in_use(large)
    assert used <= 150 and count == 7                  # the five 16 GB checks and two of 32 GB at once
