"""scripts/one_gpu_check.py's jobs (what it ran on an H200, docs/gpu-cluster.md) stay valid jobs:
each composes, on one GPU, as a job of one rank on NCCL or, where its ranks share the GPU, one the
launcher starts only with the shared-GPU backend set (without it, it refuses, as NCCL would)."""
import importlib.util
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
