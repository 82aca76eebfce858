"""A benchmark trains the alpha of the run it stands for: the engine builds a rank from the run's
schedules (run_schedules, where workload.alpha_scale applies), with no fallback to the raw
method.alpha, so a workload whose alpha_scale is not 1 gives a benchmark's rank and the run the
same alpha."""
from conftest import compose_job, run_job  # noqa: F401  (fixture)

from benchmarks.benchlib import TimedRank, layout, spawn, twin_workload
from codistill_experiments.runlog import read_records

# clusters_resnet maps the paper's alpha onto its 100 classes with alpha_scale 0.1; a few samples
# and one epoch keep the run to a few updates.
TINY_CLUSTERS = ["workload=clusters_resnet", "workload.train_size=200", "workload.val_size=50",
                 "scale.batch_per_rank=50", "method=codistill", "method.alpha=2", "schedule.epochs=1",
                 "schedule.lr.warmup_epochs=0", "schedule.lr.milestones=[]", "schedule.weight_decay.values=[1e-4]",
                 "schedule.weight_decay.milestones=[]"]


def _benchmark_alphas(rank, world_size, container):
    """The alpha of a benchmark's rank (benchlib.TimedRank: bench_bytes, bench_sharded and the
    network benchmarks time and count through it) at its first updates."""
    timed = TimedRank(container, layout(2, 1, 1, rank), twin_workload((8, 16, 16, 100), batch=4, n_batches=1),
                      batch=4)
    return [timed.state.codistiller.alpha_at(step) for step in range(3)]


def test_a_benchmark_and_its_run_use_the_same_alpha_with_the_workloads_alpha_scale(run_job):
    directory, container = run_job(TINY_CLUSTERS)
    assert (container["method"]["alpha"], container["workload"]["alpha_scale"]) == (2, 0.1)
    logged = {record["alpha"] for record in read_records(directory / "metrics.jsonl") if record["kind"] == "eval"}
    assert logged == {2 * 0.1}   # method.alpha x alpha_scale, in every record of both models
    assert spawn(2, _benchmark_alphas, container) == [[2 * 0.1] * 3] * 2
