"""method=streaming_diloco (torchft's DiLoCo, baselines/streaming_diloco.py) in real gloo runs of 2
model groups (2 rank processes, each group one torchft replica group with its Manager, and an
in-process lighthouse): against our DiLoCo (methods.DiLoCo), its fragments and its bits against the
hand formula, and the options it refuses."""
import importlib.util

import pytest
import torch
from conftest import SHORT, compose_job

from codistill_experiments.config import ConfigError
from codistill_experiments.launch import launch
from codistill_experiments.runlog import read_records, run_dir

pytest.importorskip("torchft")

STEPS = 54   # SHORT on digits: 3 epochs of 1200 // 64 updates (all_reduce's global batch of 2 x 32)
# digits_mlp (64 -> 256 -> 256 -> 10), its parameters in order: layers.0 (16384 + 256), layers.1 (65536 + 256),
# layers.2 (2560 + 10); 85002 elements.
FIRST_HALF = ["layers.0.weight", "layers.0.bias", "layers.1.weight"]   # 82176 elements: the first to pass 42501
SECOND_HALF = ["layers.1.bias", "layers.2.weight", "layers.2.bias"]    # 2826 elements


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs a job of overrides once per module; returns (run dir, container)."""
    root, done = tmp_path_factory.mktemp("torchft"), {}

    def run(*overrides):
        if overrides not in done:
            container = compose_job([*overrides, *SHORT], root)
            launch(container, run_dir(container))
            done[overrides] = run_dir(container)
        return done[overrides]

    return run


def final_state(directory, model):
    return torch.load(directory / f"model{model}.pt", weights_only=True)


def inter_node_bits(directory):
    last = [r for r in read_records(directory / "metrics.jsonl") if r["kind"] == "eval"][-1]
    assert last["step"] == STEPS
    return last["comm_bits_inter_node"]


@pytest.mark.slow
def test_torchft_diloco_with_one_fragment_and_no_overlap_is_our_diloco(runs):
    # H = 9 divides STEPS: both runs end on an outer step. Both use diloco.yaml's outer optimizer
    # (Nesterov SGD, lr 0.7, momentum 0.9), the run's inner SGD and its data and initialisation.
    ours = runs("method=diloco", "method.period=9")
    torchft = runs("method=streaming_diloco", "method.period=9", "method.fragments=1", "method.fragment_sync_delay=0")
    for model in (0, 1):
        mine, theirs = final_state(ours, model), final_state(torchft, model)
        assert mine.keys() == theirs.keys()
        for key in mine:
            # Both average 2 float32 outer gradients (halving is exact) and take the same float32 SGD
            # step, ours on one flat vector, torchft's per tensor: equal up to rounding in the
            # kernels' order of operations (measured: bit-identical); 1e-6 is ~10 ulp of |p| < 1.
            torch.testing.assert_close(theirs[key], mine[key], rtol=0, atol=1e-6)
    # 6 outer steps of the whole model, 2 b_model per device each (an all_reduce of x costs 2|x|).
    assert inter_node_bits(torchft) == inter_node_bits(ours) == STEPS // 9 * 2 * 32 * 85002


@pytest.mark.slow
def test_fragments_sync_in_turn_and_their_bits_follow_the_hand_formula(runs):
    # H = 12, 2 fragments: one syncs every 6 updates, in turn (torchft's manager step picks it), so
    # updates 6, 12, ..., 54 sync the first half 5 times and the second 4 times; the all_reduce
    # starts one update early (fragment_sync_delay 1) and is done by the sync.
    directory = runs("method=streaming_diloco", "method.period=12", "method.fragments=2",
                     "method.fragment_sync_delay=1")
    assert inter_node_bits(directory) == 2 * 32 * (5 * 82176 + 4 * 2826)
    zero, one = final_state(directory, 0), final_state(directory, 1)
    # The last update synced the first half: both groups hold its global copy. The second half
    # synced 6 updates before, and each group has trained it on its own share of the batch since.
    for key in FIRST_HALF:
        assert torch.equal(zero[key], one[key]), key
    for key in SECOND_HALF:
        assert (zero[key] - one[key]).abs().max() > 1e-4, key
    # Streaming differs from syncing the whole model at once (the first test can fail).
    whole = final_state(runs("method=streaming_diloco", "method.period=9", "method.fragments=1",
                             "method.fragment_sync_delay=0"), 0)
    assert max((whole[key] - zero[key]).abs().max() for key in FIRST_HALF) > 1e-3


@pytest.mark.parametrize("overrides, named", [
    (["method.quantize=true"], "method.quantize=True"),
    (["method.fragments=3"], "method.fragments=3"),                 # 3 does not divide H = 500
    (["method.fragment_sync_delay=250"], "method.fragment_sync_delay=250"),   # H / fragments = 250
    (["method.fragment_update_alpha=1"], "method.fragment_update_alpha=1"),
    (["workload=translation_mini"], "method.name='streaming_diloco'"),
], ids=["quantize", "fragments", "delay", "alpha", "fairseq"])
def test_options_torchft_cannot_run_here_fail_validation_naming_the_key(tmp_path, overrides, named):
    with pytest.raises(ConfigError, match=named.replace("[", r"\[")):
        compose_job(["method=streaming_diloco", *overrides], tmp_path, quick="workload=translation_mini" not in overrides)


def test_a_job_without_torchft_fails_at_compose_time_but_a_dry_run_lists_it(tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torchft" else find_spec(name, *a))
    with pytest.raises(ConfigError, match=r"torchft, which is not installed.*\[torchft\]"):
        compose_job(["method=streaming_diloco"], tmp_path)
    assert compose_job(["method=streaming_diloco", "dry_run=true"], tmp_path)["method"]["name"] == "streaming_diloco"


@pytest.mark.slow
def test_a_run_killed_mid_period_resumes_to_the_uninterrupted_log(tmp_path):
    # 18 updates per epoch, H = 12 with 2 fragments: the state committed at each epoch has one
    # fragment just synced and the other half-way to its sync (torchft's Manager step and DiLoCo's
    # count of updates since the last sync are in it). Windows open after updates 5 mod 6 (odd),
    # states are saved after multiples of 18: none is in flight.
    from test_frontier_methods import RESUME_EPOCHS, killed_after_first_commit, run_to_the_end

    from benchmarks import soak_resume

    overrides = ["workload=digits_mlp", "method=streaming_diloco", "method.period=12", "method.fragments=2",
                 "method.fragment_sync_delay=1", *RESUME_EPOCHS]
    run_to_the_end(overrides, tmp_path / "reference")
    killed_after_first_commit(overrides, tmp_path / "killed")
    run_to_the_end(overrides, tmp_path / "killed")
    expected = soak_resume.log_without_wall_time(tmp_path / "reference")
    assert soak_resume.log_without_wall_time(tmp_path / "killed") == expected
    last = [r for r in expected if r["kind"] == "eval"][-1]
    # 180 updates: 30 syncs, 15 of each half
    assert last["step"] == 180 and last["comm_bits_inter_node"] == 15 * 2 * 32 * (82176 + 2826)


def test_the_frontier_draws_streaming_diloco_as_its_own_series_with_knob_h():
    from figures.drawing.frontier import frontier_knob, frontier_label

    row = {"cfg.method.name": "streaming_diloco", "cfg.method.period": 32, "cfg.seed": 0}
    assert (frontier_label(row), frontier_knob(row)) == ("Streaming DiLoCo", "H=32")


def test_the_replicas_of_a_gpu_run_average_through_nccl_and_those_of_a_cpu_run_through_gloo():
    from torchft.process_group import ProcessGroupGloo, ProcessGroupNCCL

    from codistill_experiments.baselines.streaming_diloco import replica_group

    assert isinstance(replica_group(torch.device("cuda", 0)), ProcessGroupNCCL)   # built, not configured: no GPU asked
    assert isinstance(replica_group(torch.device("cpu")), ProcessGroupGloo)
