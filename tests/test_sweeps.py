"""Sweeps through real Hydra multirun: every figure's sweep validates and lists its jobs at both
scales, figures that show the same runs share them, the committed logs match the sweeps, and
Figure 2 runs end to end.

Every test that reads the sweeps' listings is in this file: the listings are composed once per
process, and `make test` (pytest-xdist, --dist loadfile) runs a test file whole in one worker."""
import contextlib
import gc
import io
import json
import multiprocessing
import os
import re
import runpy
import sys
import threading
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT
from forked_script import forkable
from hydra.core.global_hydra import GlobalHydra
from test_config import run_cli

from codistill_experiments.runlog import read_records
from figures.paths import COMMITTED

# Every id of the experiment map -> its jobs at (mini, paper) scale.
# The counts include the seeds: 3 per setting, at mini scale as many as the figures' records declare.
SWEEP_JOBS = {
    # figs. 1-4 and 8 (and those that reuse them) with the alpha = 0 control of each codistillation recipe
    "fig1": (30, 30), "fig2": (73, 33), "fig3": (45, 18), "fig5": (6, 6), "fig6": (53, 45),
    "fig7": (27, 9), "fig8": (33, 18), "fig9": (33, 18), "fig10": (45, 18), "fig11": (32, 15),
    "fig13": (32, 12), "fig14": (6, 6), "fig15": (6, 6), "fig16": (36, 36), "fig17": (9, 9),
    "table1": (32, 15), "exchange_frequency": (20, 12), "lr_robustness": (12, 12),
    "alpha_schedule_vision": (6, 6), "multiview": (53, 45),
    # Fig. 1's 30 runs + PowerSGD, local SGD, DiLoCo (3, 5, 5 settings x 3 seeds), Streaming DiLoCo (2 x 3),
    # codistillation's extended periods (4 x 3), each method's tuned setting (4 x 3 fresh seeds), tuned all_reduce
    # and the tuned control (2 x 3 fresh seeds), compressed predictions (4 x 3)
    "frontier": (117, 117),
    "frontier_tuning": (37, 0),   # the frontier's tuning budget on held-out data, all_reduce's and the control's too; mini only
    "baseline_tuning": (16, 0),   # 4 base LRs for all_reduce, codistillation x 2 exchanges, the control; mini only
    "tuned_baselines": (24, 0),   # fig13's 4 arms at the recipe (12) and at their tuned base LRs (4 x 3 fresh seeds)
    "fig2_regimes": (60, 0),      # Fig. 2's five arms in four regimes of the stand-in; mini scale only
    "wrn_pretrain": (0, 1),   # the network Fig. 6 starts from; paper scale only
    "regime": (30, 0),        # the mini stand-ins' regime check (make regime); mini scale only
    # the frontier's regime (make regime): all_reduce over 8 servers and the 0-bit control of 8 groups (3 + 3), the
    # 6 tuning runs of each (mini only) and each at its tuned base LR (3 fresh seeds each)
    "frontier_regime": (24, 12),
    "translation_regime": (6, 0),   # the grammar translation stand-in's baselines (make regime); mini scale only
    # the frontier at 8 servers: frontier_regime's 24 mini runs, 6 base LRs x 7 methods on held-out data, and at the tuned
    # base LRs 22 settings x 3 fresh seeds (local SGD, DiLoCo, SparseLoCo, PowerSGD 3 each, MuLoCo 2, codistillation 7)
    "frontier8": (132, 0),
    # the same on the transformer language model (mini only): all_reduce's and the control's 6 tuning runs each,
    # then each at its best with 3 seeds
    "frontier_regime_lm": (18, 0),
    # its frontier: frontier_regime_lm's 18 runs, 6 base LRs x 7 methods on held-out data, and at the tuned base LRs
    # 8 settings x 3 fresh seeds (local SGD, DiLoCo, SparseLoCo, MuLoCo, PowerSGD, codistillation's predictions and
    # its checkpoints in 32 and 4 bits)
    "frontier8_lm": (84, 0),
    # translation (fairseq): tests/test_translation_config.py checks what they share
    # (iwslt_overfit and table2_matched add all_reduce, and the one model, at codistillation's label smoothing)
    "fig4": (15, 15), "fig12": (15, 15), "table2": (20, 12), "table2_matched": (25, 15), "iwslt_overfit": (12, 12),
    "nmt_exchange_frequency": (9, 9), "alpha_gamma": (18, 27),
    # Anil et al. 2018: Fig. 2a (baseline and ensemble, two label smoothings, codistillation), Fig. 2b (+ disjoint
    # codistillation and control), Fig. 4 (+ T = 100, 250), two-phase (+ its students), Table 1 (3 methods x 6
    # seeds), Fig. 4 on the LSTM language model (baseline + 3 periods)
    "anil_fig2a": (12, 12), "anil_fig2b": (12, 12), "anil_fig4": (12, 12), "anil_two_phase": (9, 9),
    "anil_table1": (18, 18), "anil_fig4_lm": (12, 12),
}
# Figures drawn from the same runs: their sweeps list the same run ids (or a subset).
SAME_RUNS = [("fig3", "fig10"), ("fig8", "fig9"), ("fig11", "table1"), ("fig6", "multiview"), ("fig4", "fig12")]
# (fig13 adds to fig1's arms the seeds its claim's power analysis declares.)
# (exchange_frequency adds to fig1's checkpoint periods the seeds its claim's power analysis declares.)
SUBSET_RUNS = [("fig7", "fig2"), ("fig11", "fig2"), ("fig1", "frontier"), ("table2", "table2_matched")]


def sweep_in_process(*overrides):
    """What the entry point prints for `run.py -m <overrides>`, run in this process (composing
    hundreds of jobs in one interpreter instead of paying an import per sweep)."""
    GlobalHydra.instance().clear()
    argv, sys.argv = sys.argv, [str(ROOT / "src" / "run.py"), "-m", *overrides]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()
    return out.getvalue()


def dry_run_sweep(sweep, scale, results_root):
    return sweep_in_process(f"sweep={sweep}", f"scale={scale}", "dry_run=true", f"results_root={results_root}")


def listing(sweep, scale, results_root):
    """(the job count the dry run announces, the run ids it lists, whether it wrote a run, each
    listed job as (run id, its overrides))."""
    stdout = dry_run_sweep(sweep, scale, results_root)
    header = re.search(rf"sweep {sweep}: (\d+) jobs at scale {scale}", stdout)
    jobs = re.findall(rf"\] ({scale}-\S+) +(.*)", stdout)  # "  [index] run-id  overrides"
    return (int(header.group(1)) if header else None, [run_id for run_id, _ in jobs],
            (Path(results_root) / "runs").exists(), jobs)


LISTED = {}      # (sweep, scale) -> its listing, once per session
WANTED = set()   # the (sweep, scale) pairs the selected tests list: filled after collection (conftest.py)


def listed(sweep, scale, results_root):
    """The listing of a sweep at a scale. The first call lists every sweep the session's tests
    want: composing ~2,000 jobs is most of what these tests cost. Under pytest-xdist (make test)
    the other workers keep every core busy, so this process lists them itself, one after another:
    forks of it would compete with those workers for the same cores and pay for the pages they copy
    (on 2 cores the listings took 315 CPU-seconds in forks beside another worker, about 145 in this
    process). Run alone (pytest tests/test_sweeps.py), it lists them in processes on every core.
    Those are forks of this one, which has imported Hydra, torch and the sweeper already (a spawned
    process imports them again), unless a fork could not run them (forked_script.forkable: CUDA or
    a process group up here)."""
    if (sweep, scale) not in LISTED:
        pending = sorted((WANTED - set(LISTED)) | {(sweep, scale)},
                         key=lambda pair: -SWEEP_JOBS.get(pair[0], (0, 0))[pair[1] == "paper"])
        roots = [Path(results_root) / "listings" / f"{name}-{at}" for name, at in pending]
        if os.environ.get("PYTEST_XDIST_WORKER"):
            LISTED.update(zip(pending, map(listing, *zip(*pending), roots)))
        else:
            context = multiprocessing.get_context("fork" if forkable() else "spawn")
            # The forks inherit this process's objects out of the garbage collector's reach: each of
            # their full collections would otherwise walk everything pytest and torch hold, copying
            # the pages it touches (a third of the listings' CPU; gc's documentation for fork)
            gc.collect()
            gc.freeze()
            try:
                with ProcessPoolExecutor(len(os.sched_getaffinity(0)), mp_context=context) as pool:
                    LISTED.update(zip(pending, pool.map(listing, *zip(*pending), roots)))
            finally:
                gc.unfreeze()
    return LISTED[sweep, scale]


def listed_run_ids(sweep, scale, results_root):
    return listed(sweep, scale, results_root)[:2]


def listings_wanted_by(items):
    """The (sweep, scale) pairs that the collected tests will list."""
    pairs = set()
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.originalname == "test_every_sweep_validates_and_lists_its_jobs":
            pairs.add((params["sweep"], params["scale"]))
        elif item.originalname == "test_the_current_configs_resolve_to_the_committed_run_ids":
            pairs.add((params["manifest"].parent.name, "mini"))
        elif item.originalname == "test_figures_that_show_the_same_runs_share_them":
            pairs |= {(sweep, params["scale"]) for pair in SAME_RUNS + SUBSET_RUNS for sweep in pair}
    return pairs


def test_no_other_test_file_reads_the_listings():
    # make test runs each file whole in one worker: a second file reading the listings would
    # compose every sweep again in its own worker (about 7 minutes of CPU)
    readers = [path.name for path in Path(__file__).parent.glob("*.py")
               if re.search(r"from test_sweeps import [^\n]*\blisted", path.read_text())]
    assert readers == []


def test_every_figure_of_the_experiment_map_has_a_sweep_file():
    files = {path.stem for path in (ROOT / "sweeps").glob("*.yaml")}
    assert set(SWEEP_JOBS) <= files
    assert files - set(SWEEP_JOBS) == set(), "a sweep without an expected job count in SWEEP_JOBS"


def slow_unless_fig2(values, names):
    """Parameters of a test that lists sweeps: Figure 2's listing stays in `make test-fast` (its 33
    jobs compose in seconds); every other sweep's is marked slow (all of them together compose
    about 1,700 jobs, minutes on 2 cores)."""
    return [pytest.param(value, id=name, marks=() if name == "fig2" else pytest.mark.slow)
            for value, name in zip(values, names)]


# `make test-fast` lists Figure 2 at mini scale here (its committed manifest is checked against that
# listing) and at paper scale through the command line (test_fig2_dry_run_lists_every_job_and_runs_nothing):
# the same assertions, each scale composed once in the fast tier.
FAST_LISTING, FAST_DRY_RUN = ("fig2", "mini"), ("fig2", "paper")


@pytest.mark.parametrize("sweep, scale", [
    pytest.param(sweep, scale, id=f"{sweep}-{scale}", marks=() if (sweep, scale) == FAST_LISTING else pytest.mark.slow)
    for sweep in SWEEP_JOBS for scale in ("mini", "paper")])
def test_every_sweep_validates_and_lists_its_jobs(tmp_path, sweep, scale):
    count, ids, wrote_a_run, _ = listed(sweep, scale, tmp_path)
    expected = SWEEP_JOBS[sweep][scale == "paper"]
    assert count == len(ids) == len(set(ids)) == expected
    assert not wrote_a_run


@pytest.mark.slow
def test_a_sweep_listed_again_in_the_same_process_lists_the_same_jobs(tmp_path):
    # the sweeper keeps the configs it has read across compositions: a composition that changed
    # what the next one reads would list other jobs (fig2's batch-size panel lost 3 of its 33)
    first, again = (re.findall(r"\] (mini-\S+)", dry_run_sweep("fig2", "mini", tmp_path)) for _ in range(2))
    assert again == first and len(first) == SWEEP_JOBS["fig2"][0]


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["mini", "paper"])
def test_figures_that_show_the_same_runs_share_them(tmp_path, scale):
    ids = lambda sweep: set(listed_run_ids(sweep, scale, tmp_path)[1])  # noqa: E731
    for first, second in SAME_RUNS:
        assert ids(first) == ids(second), (first, second)
    for part, whole in SUBSET_RUNS:
        assert ids(part) <= ids(whole), (part, whole)


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["mini", "paper"])
def test_the_ablations_reuse_fig4s_codistillation_runs(tmp_path, scale):
    fig4 = set(listed_run_ids("fig4", scale, tmp_path)[1])
    codistill = {run for run in fig4 if "-codistill-" in run}
    # Fig. 4 runs both label-smoothing variants; the ablations use the removed one (A.3), 3 seeds.
    removed = {run for run, overrides in fig4_jobs(scale, tmp_path)
               if run in codistill and "_ls_decayed" not in overrides}
    assert len(codistill) == 6 and len(removed) == 3
    for ablation in ("nmt_exchange_frequency", "alpha_gamma"):   # their 1x / gamma = 1.1 runs are Fig. 4's
        assert set(listed_run_ids(ablation, scale, tmp_path)[1]) & fig4 == removed


def fig4_jobs(scale, results_root):
    """(run id, the job's overrides) of each job that Fig. 4's dry run lists."""
    return listed("fig4", scale, results_root)[3]


# The committed logs match the sweeps: for every sweep with a committed mini manifest
# (paper/logs/sweeps/<id>/mini.json), the run ids that the current configs resolve to at mini scale
# are exactly the manifest's. A config change that changes a run id would otherwise silently orphan
# the logs the figures and the report are drawn from; when this fails, rerun the sweep
# (`make reproduce-all`) or undo the change.
MANIFESTS = sorted(COMMITTED.glob("sweeps/*/mini.json"))


def test_there_are_committed_manifests():
    assert len(MANIFESTS) >= 20, f"expected a mini manifest per sweep under {COMMITTED}/sweeps"


@pytest.mark.parametrize("manifest", slow_unless_fig2(MANIFESTS, [path.parent.name for path in MANIFESTS]))
def test_the_current_configs_resolve_to_the_committed_run_ids(manifest, tmp_path):
    sweep = manifest.parent.name
    committed = Counter(entry["run_id"] for entry in json.loads(manifest.read_text()))
    count, listed = listed_run_ids(sweep, "mini", tmp_path)
    assert count == len(listed), f"sweep {sweep}: the dry run announced {count} jobs and listed {len(listed)}"
    resolved = Counter(listed)
    assert resolved == committed, (
        f"sweep {sweep}: the configs resolve to run ids the committed logs do not have "
        f"{sorted(resolved - committed)}, and the logs have runs no job resolves to {sorted(committed - resolved)}")


FIG2_JOBS = 3 + 9 + 9 + 12   # all_reduce, three codistillation recipes, their controls, batch sizes; x 3 seeds
# At mini scale, the seeds the figures' records declare beyond the three: all_reduce and two recipes 9
# more each, the tuned recipe's control 5, the four other batch sizes 2 each.
FIG2_MINI_JOBS = FIG2_JOBS + 3 * 9 + 5 + 4 * 2


@pytest.mark.parametrize("scale", [pytest.param(scale, marks=() if ("fig2", scale) == FAST_DRY_RUN else pytest.mark.slow)
                                   for scale in ("mini", "paper")])
def test_fig2_dry_run_lists_every_job_and_runs_nothing(tmp_path, scale):
    done = run_cli("-m", "sweep=fig2", f"scale={scale}", "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    jobs = FIG2_MINI_JOBS if scale == "mini" else FIG2_JOBS
    assert f"sweep fig2: {jobs} jobs at scale {scale}, 0 already finished (dry run" in done.stdout
    ids = re.findall(rf"\] ({scale}-\S+)", done.stdout)
    assert len(ids) == len(set(ids)) == jobs
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_an_invalid_override_stops_the_sweep_before_any_job_runs(tmp_path):
    done = run_cli("-m", "sweep=fig2", "batch_scale=0.3", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0
    assert "scale.batch_per_rank=76.8" in done.stderr and "not launched" in done.stderr
    assert not (tmp_path / "runs").exists()


# On digits (seconds per run): the mechanics of sweeps, not the figures' stand-in.
SHORT_ALL = ["workload=digits_mlp", "schedule.epochs=4", "schedule.lr.warmup_epochs=1",
             "schedule.lr.milestones=[2,3]",
             "schedule.weight_decay.milestones=[2,3]", "schedule.weight_decay.values=[1e-4,1e-5,0]"]


@pytest.mark.slow
def test_fig2_end_to_end_and_a_rerun_only_redraws(tmp_path):
    args = ["-m", "sweep=fig2", "seed=0", f"results_root={tmp_path}", *SHORT_ALL]
    first = run_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    manifest = json.loads((tmp_path / "sweeps" / "fig2" / "mini.json").read_text())
    assert len(manifest) == 11   # FIG2_JOBS / 3 seeds
    for entry in manifest:
        records = read_records(tmp_path / "runs" / entry["run_id"] / "metrics.jsonl")
        assert records[0]["scale"] == "mini" and records[-1]["kind"] == "end"
        assert records[0]["sweep_id"] == "fig2"
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("skip ") == 11

    from figures import registry
    out = tmp_path / "out"
    registry.main(["fig2", "--results", str(tmp_path), "--out", str(out)])
    assert (out / "fig2.png").stat().st_size > 0 and (out / "fig2.pdf").stat().st_size > 0


@pytest.mark.slow
def test_a_sweep_shares_the_finished_runs_of_another_and_a_rerun_launches_nothing(tmp_path):
    short = ["seed=0", f"results_root={tmp_path}", "workload=digits_mlp", "schedule.epochs=2",
             "schedule.lr.warmup_epochs=1", "schedule.weight_decay.values=[1e-4,0]", "schedule.weight_decay.milestones=[1]"]
    manifest = lambda sweep: {e["run_id"] for e in json.loads(  # noqa: E731
        (tmp_path / "sweeps" / sweep / "mini.json").read_text())}
    # all_reduce, codistillation and its alpha = 0 control x 2 architectures
    first = run_cli("-m", "sweep=fig10", *short, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(manifest("fig10")) == 6
    # Figure 3 shows the same runs: found finished, credited to fig10, nothing launched.
    fig3 = run_cli("-m", "sweep=fig3", *short, cwd=tmp_path)
    assert fig3.returncode == 0, fig3.stderr[-3000:]
    assert "6 jobs at scale mini, 6 already finished" in fig3.stdout
    assert fig3.stdout.count("(of sweep fig10)") == 6 and "Launching" not in fig3.stdout + fig3.stderr
    assert manifest("fig3") == manifest("fig10")
    again = run_cli("-m", "sweep=fig10", *short, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout.count("skip ") == 6
    assert "Launching" not in again.stdout + again.stderr


def test_figure_curves_are_means_over_models_and_flag_missing_seeds():
    from figures.drawing import fig2
    from figures.drawing.seed_means import SeedNotes

    rows = [{"cfg.method.name": "codistill", "cfg.schedule.name": "codistill_tuned", "run_id": "r",
             "seed": 0, "cfg.batch_scale": 1, "batch_per_model": 32, "step": 10, "model": m,
             "train_loss": loss, "val_top1": top1} for m, loss, top1 in ((0, 1.0, 90.0), (1, 3.0, 80.0))]
    curves = fig2.per_run_means(pd.DataFrame(rows))
    assert curves["train_loss"].tolist() == [2.0] and curves["val_top1"].tolist() == [85.0]
    notes = SeedNotes()
    notes.record(curves, "recipe")
    assert "FEWER THAN 3 SEEDS" in notes.text()


def eval_records(directory):
    return [{k: v for k, v in r.items() if k != "wall_time"}
            for r in read_records(directory / "metrics.jsonl") if r["kind"] == "eval"]


@pytest.mark.slow
def test_submitit_local_launcher_runs_one_task_per_rank_and_logs_what_a_local_run_logs(tmp_path, run_job):
    from conftest import QUICK_WORKLOAD, SHORT

    local_dir, container = run_job(["method=codistill", "seed=5", *SHORT])
    submitit_root = tmp_path / "submitit"
    done = run_cli("-m", "launcher=submitit_local", QUICK_WORKLOAD, "method=codistill", "seed=5",
                   f"results_root={submitit_root}", *SHORT, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    submitit_dir = submitit_root / "runs" / local_dir.name
    task_logs = sorted((submitit_root / "hydra" / "adhoc" / ".submitit").glob("*/*_log.out"))
    assert [re.search(r"global_rank=(\d)\(2\)", p.read_text()).group(1) for p in task_logs] == ["0", "1"]
    assert eval_records(submitit_dir) == eval_records(local_dir)


@pytest.mark.slow
def test_a_paper_sweep_without_imagenet_on_disk_fails_before_launching(tmp_path):
    done = run_cli("-m", "sweep=fig2", "scale=paper", f"workload.data_root={tmp_path / 'nowhere'}",
                   f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0
    assert "not launched" in done.stderr and "train/<class>/<image>.JPEG" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_sweep_queued_without_checking_data_here_leaves_the_check_to_each_job(tmp_path):
    # Where the data is mounted on the compute nodes only, a sweep is queued from a login node that
    # lacks it: launcher.check_data_on_submit=false turns the sweeper's refusal into a warning, and
    # each job checks again as it starts. launcher=local runs the job in this process, so the job's
    # own check is what stops it, after the sweeper's queue step (it wrote the manifest). The job's
    # ranks would train on this machine's CPU (scale.gpus_per_rank=0): only its data is missing.
    nowhere = tmp_path / "nowhere"
    job = ["-m", "scale=paper", "scale.gpus_per_rank=0", "method=allreduce", f"workload.data_root={nowhere}",
           "launcher=local", f"results_root={tmp_path}"]
    expected = f"workload.data_root='{nowhere}': expected {nowhere}/train/<class>/<image>.JPEG"
    refused = run_cli(*job, cwd=tmp_path)
    assert refused.returncode != 0 and "the sweep was not launched" in refused.stderr and expected in refused.stderr
    assert "launcher.check_data_on_submit=false" in refused.stderr   # the way out is named
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "hydra").exists()

    queued = run_cli(*job, "launcher.check_data_on_submit=false", cwd=tmp_path)
    assert queued.returncode != 0 and "not launched" not in queued.stderr
    warned = queued.stderr.index("warning: not found here, queued anyway (launcher.check_data_on_submit=false): ")
    failed = queued.stderr.index(f"error: {expected}")   # the job's own check, as it started
    assert warned < failed and expected in queued.stderr[warned:failed]
    assert "each job checks its data again when it starts on its node" in queued.stderr
    assert "Launching 1 jobs locally" in queued.stdout + queued.stderr
    manifest = json.loads((tmp_path / "sweeps" / "adhoc" / "paper.json").read_text())
    assert [entry["run_id"] for entry in manifest] == [re.search(r"\[0\] (\S+)", queued.stdout).group(1)]
    assert not (tmp_path / "runs").exists()   # the job stopped before it made its run directory


@pytest.mark.slow
def test_the_wide_resnet_pretraining_sweep_resolves_zagoruykos_recipe(tmp_path):
    done = run_cli("-m", "sweep=wrn_pretrain", "scale=paper", "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sweep wrn_pretrain: 1 jobs" in done.stdout
    from conftest import compose_job

    job = compose_job(["sweep=wrn_pretrain", "scale=paper", "workload=cifar10_wrn", "workload.scenario=full",
                       "method=allreduce", "method.nodes_per_model=1", "schedule=wrn_cifar",
                       "scale.batch_per_rank=16"], tmp_path)
    assert job["scale"]["ranks_per_model"] * job["scale"]["batch_per_rank"] == 128
    assert (job["workload"]["depth"], job["workload"]["widen"]) == (28, 10)
    assert job["schedule"]["epochs"] == 200 and job["schedule"]["lr"]["milestones"] == [60, 120, 160]


def test_a_job_whose_config_changed_since_its_sweep_was_validated_stops(tmp_path):
    # The sweeper hands each job the run id it validated; a job composed from edited configs
    # (a queued Slurm job starting after a `git pull`) resolves to another run and must not run.
    done = run_cli("method=codistill", "expected_run_id=mini-codistill-000000000000", f"results_root={tmp_path}",
                   cwd=tmp_path)
    assert done.returncode != 0 and "validated as run mini-codistill-000000000000" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_launchers_are_built_before_any_job_is_queued(tmp_path, monkeypatch):
    # Jobs needing other resources (1 rank, 2 ranks) go to launchers of their own, launched from
    # threads. Building a launcher deep-copies the sweep config, which detaches its nodes for a
    # moment: done in a thread while another launches, it broke that launch in CI. So every
    # launcher is built in the sweep's own thread first, then each group is launched once.
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobReturn, JobStatus

    Plugins.instance()  # its first call imports the plugin modules again: patch the class it keeps
    sweeper_class = Plugins.instance().class_name_to_class[
        "hydra_plugins.codistill_sweeper.grid_union_sweeper.GridUnionSweeper"]

    launched, built_in = [], []

    class RecordingLauncher:
        def __init__(self, resources):
            self.resources = resources

        def launch(self, job_overrides, initial_job_idx):
            launched.append((self.resources["tasks_per_node"], initial_job_idx, [list(job) for job in job_overrides]))
            return [JobReturn(status=JobStatus.COMPLETED) for _ in job_overrides]

    def build(self, resources):
        built_in.append(threading.current_thread())
        return RecordingLauncher(resources)

    monkeypatch.setattr(sweeper_class, "launcher_for", build)
    sweep_in_process("launcher=submitit_local", "method=allreduce,codistill", "method.nodes_per_model=1",
                     "seed=1,2", f"results_root={tmp_path}")
    assert built_in == [threading.main_thread()] * 2
    by_tasks = {tasks: (start, [[o for o in job if o.split("=")[0] in ("method", "seed")] for job in jobs])
                for tasks, start, jobs in launched}
    assert by_tasks == {1: (0, [["method=allreduce", "seed=1"], ["method=allreduce", "seed=2"]]),
                        2: (2, [["method=codistill", "seed=1"], ["method=codistill", "seed=2"]])}


@pytest.mark.slow
def test_a_paper_scale_multiview_dry_run_warns_that_the_pretrained_weights_are_missing(tmp_path):
    """Fig. 6's pretrained_* scenarios need wrn_pretrain's network: a dry run lists the jobs and
    warns, naming the key and the sweep that produces the weights; it does not fail (it may be
    preparing a cluster's jobs elsewhere)."""
    done = run_cli("-m", "sweep=multiview", "scale=paper", "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert any("workload.pretrained=None" in line and "sweep=wrn_pretrain" in line for line in warnings), done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sweep, jobs", [
    # seeds, and on Slurm each job's resources
    (["sweep=fig2", "scale=paper", "launcher=slurm_v100", "launcher.partition=x"], FIG2_JOBS),
    # alphas, outer learning rates and momenta, warm-ups, base LRs and periods over six methods
    (["sweep=frontier_tuning", "scale=mini"], SWEEP_JOBS["frontier_tuning"][0]),
    # translation: alpha and its schedule's gamma, through fairseq's config
    (["sweep=alpha_gamma", "scale=paper"], SWEEP_JOBS["alpha_gamma"][1]),
])
def test_a_job_composed_from_its_twin_equals_its_full_composition(tmp_path, monkeypatch, sweep, jobs):
    """The sweeper composes a job that differs from an earlier one only in the values of the same
    plain keys by setting those values on that job's config: the resolved jobs, run ids and Slurm
    resources must be those of a full composition of each job."""
    from hydra.core.plugins import Plugins

    Plugins.instance()  # its first call imports the plugin modules again: patch the class it keeps
    sweeper_class = Plugins.instance().class_name_to_class[
        "hydra_plugins.codistill_sweeper.grid_union_sweeper.GridUnionSweeper"]
    validated, compose_and_validate = [], sweeper_class.compose_and_validate
    composed_whole = []

    def recorded(self, jobs):
        unique = compose_and_validate(self, jobs)
        validated.append(json.dumps(unique, sort_keys=True, default=str))
        return unique

    def whole(self, loader, job, twins):
        composed_whole.append(job)
        return loader.load_sweep_config(self.config, job)

    monkeypatch.setattr(sweeper_class, "compose_and_validate", recorded)
    sweep = [*sweep, "dry_run=true", f"results_root={tmp_path}"]
    sweep_in_process(*sweep)
    monkeypatch.setattr(sweeper_class, "composed", whole)
    sweep_in_process(*sweep)
    assert len(validated) == 2 and validated[0] == validated[1]
    assert len(json.loads(validated[0])) == jobs == len(composed_whole)
