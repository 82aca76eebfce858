"""The fast tier (`make test-fast`: `-m 'not slow'`) keeps a multi-process test of each feature that
docs/setup.md names, so that marking a test slow cannot silently leave a feature out of the inner loop."""
import re
import subprocess
import sys

import pytest
from conftest import ROOT

# Each feature, and the multi-process tests of it that the fast tier must select (a parametrized
# test counts when at least one of its cases is selected). docs/setup.md, "Two tiers", lists them.
FAST_TIER_KEEPS = {
    "the exchange (Algorithm 1 over gloo processes)":
        ["test_engine_distributed.py::test_predictions_every_update_equals_algorithm1_in_one_process"],
    "a kill and resume": ["test_frontier_methods.py::test_a_run_killed_mid_period_resumes_to_the_uninterrupted_log",
                          "test_gpu_path.py::test_a_run_whose_device_is_not_the_cpu_resumes_from_its_saved_state"],
    "the peer check": ["test_peer_check.py::test_peers_given_different_batches_of_the_same_size_are_stopped"],
    "a sweep's listing": ["test_sweeps.py::test_every_sweep_validates_and_lists_its_jobs"],
    "damaged state":
        ["test_damaged_state.py::test_a_damaged_newest_state_falls_back_to_the_previous_step_and_ends_as_uninterrupted"],
    "the GPU stand-ins": ["test_gpu_path.py::test_a_run_whose_device_is_not_the_cpu_resumes_from_its_saved_state",
                          "test_fork_safety.py::test_a_gpu_child_started_after_cuda_was_queried_can_use_cuda"],
}


def fast_tier(files):
    """The tests pytest's own collection selects from files under `make test-fast`'s `-m 'not slow'`
    (in a fresh process), each named without its parameters, and how many it deselected."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-m", "not slow", *(f"tests/{name}" for name in files)],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    deselected = re.search(r"\((\d+) deselected\)", out.stdout)
    return ({line.removeprefix("tests/").split("[")[0] for line in out.stdout.splitlines() if "::" in line},
            int(deselected.group(1)) if deselected else 0)


@pytest.mark.slow
def test_the_fast_tier_keeps_a_multi_process_test_of_each_feature():
    files = sorted({test.split("::")[0] for tests in FAST_TIER_KEEPS.values() for test in tests})
    fast, deselected = fast_tier(files)
    # the marker expression took effect: these files' slow tests were left out
    assert deselected > 0
    missing = {feature: left for feature, tests in FAST_TIER_KEEPS.items() if (left := [t for t in tests if t not in fast])}
    assert not missing, (
        "left out of `make test-fast` (marked slow, renamed or gone): keep another multi-process test of the "
        f"feature in the fast tier and name it here and in docs/setup.md: {missing}")
