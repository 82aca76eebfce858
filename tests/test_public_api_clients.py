"""The experiments use the library through its public API and its one documented non-public module,
`codistill.internals`: no client reaches `codistiller.exchange` or another module of `codistill`
(the import contract in pyproject.toml checks the imports, `make test` runs it), the Codistiller's
public methods do what the clients did by hand (refresh, mark_checkpointed, teachers_from_step, state_dict), a state saved
before they did still resumes, and snapshot mode has one name without changing any run id."""
import re
import subprocess

import pytest
import torch
from conftest import ROOT, compose_job
from test_frontier_methods import RESUME_EPOCHS, killed_after_first_commit, run_to_the_end

from benchmarks import soak_resume
from benchmarks.benchlib import spawn
from codistill_experiments import run_state
from codistill_experiments.config import ConfigError
from codistill_experiments.runlog import identity, run_dir, run_id
from codistill_experiments.translation.commands import exchange_arguments

CLIENTS = ["src", "benchmarks", "figures", "scripts"]


def grep(pattern, folders):
    done = subprocess.run(["grep", "-rn", "--include=*.py", pattern, *folders], cwd=ROOT, capture_output=True,
                          text=True)
    return done.stdout.strip()


def test_no_client_reaches_into_the_codistiller_or_a_private_module():
    exchange = r"codistiller.exchange\|\.exchange\.\(state_dict\|load_state_dict\|held_steps\|store\|refresh\)"
    assert grep(exchange, CLIENTS) == ""
    reached = [line for line in grep(r"from codistill\.\|import codistill\.", CLIENTS).splitlines()
               if not re.search(r"(from|import) codistill\.internals\b", line)]
    assert reached == []


def _refreshed(rank, world_size):
    from codistill import Codistiller, Layout

    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=1, rank=rank)
    torch.manual_seed(rank)
    model = torch.nn.Linear(3, 2)
    codistiller = Codistiller(model, layout, exchange="checkpoints", period=10**9, peer_check_every=None,
                              make_teacher=lambda peer: torch.nn.Linear(3, 2))
    before = codistiller.teachers_from_step()
    codistiller.prepare(0)
    once = codistiller.counter.inter_node_bits
    codistiller.prepare(0)   # once per update: nothing travels again
    again = codistiller.counter.inter_node_bits
    with torch.no_grad():
        model.weight.add_(1.0)
    codistiller.refresh(0)   # update 0 is an exchange point: the moved parameters travel now
    predictions = Codistiller(model, layout, peer_check_every=None)
    try:
        predictions.refresh(0)
        refused = None
    except ValueError as error:
        refused = str(error)
    return {"before": before, "from": codistiller.teachers_from_step(),
            "bits": [once, again, codistiller.counter.inter_node_bits],
            "teacher": codistiller.teachers[0].weight.tolist(), "own": model.weight.tolist(), "refused": refused}


def test_refresh_exchanges_again_at_an_exchange_point_and_only_for_checkpoints():
    ranks = spawn(2, _refreshed)
    for rank, result in enumerate(ranks):
        assert result["before"] is None and result["from"] == 0
        b_model = 32 * (3 * 2 + 2)
        assert result["bits"] == [b_model, b_model, 2 * b_model]
        assert result["teacher"] == ranks[1 - rank]["own"]   # the peer's parameters after they moved
        assert "checkpoint exchanges" in result["refused"]


def test_mark_checkpointed_goes_to_the_snapshot_store_and_is_nothing_elsewhere(tmp_path):
    from codistill import Codistiller, SnapshotStore

    through_files = Codistiller.through_files(torch.nn.Linear(2, 2), tmp_path, 1, 2, period=3)
    through_files.mark_checkpointed(7)
    assert SnapshotStore(tmp_path).checkpointed(1) == 7 and SnapshotStore(tmp_path).checkpointed(0) == 0
    frozen = Codistiller.from_teachers(torch.nn.Linear(2, 2), [torch.nn.Linear(2, 2)])
    frozen.mark_checkpointed(7)   # no snapshots: nothing to mark
    assert frozen.teachers_from_step() is None and frozen.alpha_at(0) == 1.0


def test_a_saved_state_holds_the_codistillers_state_dict_and_one_saved_before_reads_the_same():
    state = {"exchange": {"source_step": 14, "vectors": []}, "inter_node_bits": 5, "intra_node_bits": 2}
    assert run_state.codistiller_state({"codistiller": state, "inter_node_bits": 5, "intra_node_bits": 2},
                                       "teachers") == state
    # the training engine's group state and the fairseq task's state file, as they were saved before
    assert run_state.codistiller_state({"teachers": state["exchange"], "inter_node_bits": 5, "intra_node_bits": 2},
                                       "teachers") == state
    assert run_state.codistiller_state({"exchange": None, "inter_node_bits": 5, "intra_node_bits": 2},
                                       "exchange")["exchange"] is None


def as_saved_before(directory):
    """Rewrites the committed states of a run as the engine saved them before (up to 43af836): the
    exchange's state under "teachers", no "codistiller"; then commits them again (new checksums)."""
    step = run_state.committed_step(directory)
    paths = sorted((directory / run_state.STATE_DIR).glob(f"model*-step{step}.pt"))
    assert paths
    for path in paths:
        saved = torch.load(path, weights_only=True)
        saved["teachers"] = saved.pop("codistiller")["exchange"]
        run_state.save_torch(saved, path)
    run_state.commit(directory, step)
    return step


@pytest.mark.slow
def test_a_run_killed_with_a_state_saved_before_resumes_to_the_uninterrupted_log(tmp_path):
    """The checkpoint teachers of a state saved in the engine's former format are restored: the
    resumed run logs what the uninterrupted one logged (teachers not restored would change it)."""
    overrides = ["workload=digits_mlp", "method=codistill", "method.exchange=checkpoints", "method.period=7",
                 *RESUME_EPOCHS]
    container = run_to_the_end(overrides, tmp_path / "reference")
    killed_after_first_commit(overrides, tmp_path / "killed")
    directory = run_dir({**container, "results_root": str(tmp_path / "killed")})
    step = as_saved_before(directory)
    assert step % 7 != 0   # mid-period: the resumed run's first updates use the restored teachers
    run_to_the_end(overrides, tmp_path / "killed")
    assert soak_resume.log_without_wall_time(tmp_path / "killed") == \
        soak_resume.log_without_wall_time(tmp_path / "reference")


@pytest.mark.slow
def test_snapshot_mode_is_one_name_and_translation_run_ids_hash_it_where_they_did(tmp_path):
    """method.snapshot_mode is the fairseq jobs' mode too (formerly workload.exchange_mode): a
    header written before (the workload holding exchange_mode) and today's config are one run."""
    ids = {}
    for mode in ("lockstep", "async"):
        job = compose_job(["workload=translation_mini", "method=codistill", f"method.snapshot_mode={mode}",
                           "method.loss=kl", "method.temperature=2"], tmp_path)
        assert "exchange_mode" not in job["workload"]
        before = {**job, "workload": {**job["workload"], "exchange_mode": mode}}
        assert identity(job) == identity(before) and run_id(job) == run_id(before)
        argv = exchange_arguments(job, tmp_path, 0)
        assert argv[argv.index("--snapshot-mode") + 1] == mode
        assert argv[argv.index("--distill-loss") + 1] == "kl" and argv[argv.index("--distill-temperature") + 1] == "2.0"
        ids[mode] = run_id(job)
    assert ids["lockstep"] != ids["async"]   # async is another run
    allreduce = compose_job(["workload=translation_mini", "method=allreduce"], tmp_path)   # no snapshot_mode
    assert identity(allreduce)["workload"]["exchange_mode"] == "lockstep"
    vision = compose_job(["method=codistill"], tmp_path)
    assert "exchange_mode" not in identity(vision)["workload"]


def test_the_former_name_is_refused(tmp_path):
    with pytest.raises(Exception, match=re.escape("exchange_mode")):
        compose_job(["workload=translation_mini", "workload.exchange_mode=async"], tmp_path)
    with pytest.raises(ConfigError, match=re.escape("method.snapshot_mode")):
        compose_job(["workload=translation_mini", "method=codistill", "method.snapshot_mode=sometimes"], tmp_path)


@pytest.mark.slow
def test_the_fairseq_plugin_distils_with_the_configured_loss(tmp_path):
    """method.loss reaches the plugin's Codistiller (formerly it was always mse): the recorded mse
    run of tests/reference_logs.py, run with kl at temperature 2, logs another distillation term
    from the same first records on (same updates, models and alpha)."""
    from reference_logs import JOBS, recorded, run

    JOBS["translation-kl"] = [*JOBS["translation-checkpoints"], "method.loss=kl", "method.temperature=2"]
    try:
        kl = run("translation-kl", tmp_path)
    finally:
        del JOBS["translation-kl"]
    mse = recorded("translation-checkpoints")
    evals = [(record, other) for record, other in zip(kl, mse, strict=True) if record["kind"] == "eval"]
    assert evals and all((r["step"], r["model"], r["alpha"]) == (o["step"], o["model"], o["alpha"]) for r, o in evals)
    distilled = [(r["train_distill_loss"], o["train_distill_loss"]) for r, o in evals if o["train_distill_loss"]]
    assert distilled and all(kl_term > 0 and kl_term != pytest.approx(mse_term, rel=1e-3)
                             for kl_term, mse_term in distilled)
