"""A sweep that includes another's jobs (`{include: <id>, where: {...}}` in hydra.sweeper.grids)
lists the run ids of the same jobs written out by hand, each composed alone; an unknown sweep, a
cycle of includes and a `where` that keeps nothing fail before anything is launched. The included
sweep files lie in a temporary folder that Hydra searches (hydra.searchpath); the entry point, run
in this process, sweeps the grids given on its command line (a run's `sweep=` must name a file of
sweeps/)."""
import re

import pytest
from conftest import compose_job
from test_sweeps import sweep_in_process

from codistill_experiments.runlog import run_id

SWEEPS = {
    "base": """
      - {method: allreduce, seed: "0,1"}
      - {method: codistill, method.exchange: predictions, method.period: "1,5", seed: "0,1"}
      - {scale: paper, method: codistill, method.exchange: checkpoints, method.period: "100", seed: "0"}
      - {scale: mini, method: codistill, method.exchange: checkpoints, method.period: "10,20", seed: "0"}""",
    "part": """
      - {include: base, where: {method.period: "5,20"}}
      - {method: codistill, method.exchange: predictions, method.period: "7", seed: "0"}""",
    "nested": """
      - {include: part, where: {seed: "1"}}
      - {scale: mini, include: base, where: {method: allreduce}}""",
    "unknown": """
      - {include: nowhere}""",
    "cycle_a": """
      - {include: cycle_b}""",
    "cycle_b": """
      - {method: allreduce, seed: "0"}
      - {include: cycle_a, where: {seed: "0"}}""",
    "misspelt": """
      - {include: base, where: {method.perod: "5"}}""",
    "extra_key": """
      - {include: base, seed: "3"}""",
}
PREDICTIONS = ["method=codistill", "method.exchange=predictions"]
PART_BY_HAND = {  # scale -> the jobs of `part`, written out
    "mini": [[*PREDICTIONS, "method.period=5", "seed=0"], [*PREDICTIONS, "method.period=5", "seed=1"],
             ["method=codistill", "method.exchange=checkpoints", "method.period=20", "seed=0"],
             [*PREDICTIONS, "method.period=7", "seed=0"]],
    "paper": [[*PREDICTIONS, "method.period=5", "seed=0"], [*PREDICTIONS, "method.period=5", "seed=1"],
              [*PREDICTIONS, "method.period=7", "seed=0"]],
}
NESTED_BY_HAND = [[*PREDICTIONS, "method.period=5", "seed=1"], ["method=allreduce", "seed=0"],
                  ["method=allreduce", "seed=1"]]


@pytest.fixture(scope="module")
def search_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("conf")
    (root / "sweep").mkdir()
    for name, grids in SWEEPS.items():
        text = f"# @package _global_\nsweep_id: {name}\nhydra:\n  sweeper:\n    grids:{grids}\n"
        (root / "sweep" / f"{name}.yaml").write_text(text)
    return f"hydra.searchpath=[file://{root}]"


def run_ids(search_path, tmp_path, sweep, *arguments, scale="mini"):
    """The run ids a sweep of one grid, {include: <sweep>}, lists."""
    stdout = sweep_in_process(search_path, f"hydra.sweeper.grids=[{{include:{sweep}}}]", f"scale={scale}",
                              "workload=digits_mlp", "dry_run=true", f"results_root={tmp_path}", *arguments)
    return sorted(re.findall(rf"\] ({scale}-\S+)", stdout))


def composed_run_ids(jobs, tmp_path, *arguments, scale="mini"):
    composed = (compose_job(["workload=digits_mlp", *job, f"scale={scale}", *arguments], tmp_path) for job in jobs)
    return sorted({run_id(container) for container in composed})


def sweep_error(search_path, tmp_path, sweep):
    with pytest.raises(SystemExit) as stopped:
        run_ids(search_path, tmp_path, sweep)
    return str(stopped.value.code)


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["mini", "paper"])
def test_an_include_lists_the_jobs_its_where_selects_as_grids_written_by_hand(search_path, tmp_path, scale):
    included = run_ids(search_path, tmp_path, "part", scale=scale)
    # at paper scale base's checkpoint period is 100, which the where does not keep
    assert len(included) == len(PART_BY_HAND[scale])
    assert included == composed_run_ids(PART_BY_HAND[scale], tmp_path, scale=scale)


@pytest.mark.slow
def test_includes_nest_and_command_line_arguments_apply_to_included_jobs(search_path, tmp_path):
    assert run_ids(search_path, tmp_path, "nested") == composed_run_ids(NESTED_BY_HAND, tmp_path)
    # seed=3 replaces the included jobs' seeds: part's 4 jobs then collapse to 3 runs
    with_seed_3 = run_ids(search_path, tmp_path, "part", "seed=3")
    assert len(with_seed_3) == 3 and with_seed_3 == composed_run_ids(PART_BY_HAND["mini"], tmp_path, "seed=3")


@pytest.mark.slow
def test_an_unknown_sweep_a_cycle_and_a_where_that_keeps_nothing_fail_before_launching(search_path, tmp_path):
    unknown = sweep_error(search_path, tmp_path, "unknown")
    assert "`include: nowhere` names no sweep file; known sweeps: " in unknown and "base" in unknown
    assert "in a cycle: adhoc -> cycle_a -> cycle_b -> cycle_a" in sweep_error(search_path, tmp_path, "cycle_a")
    assert ("sweep misspelt: `include: base, where: {'method.perod': '5'}` keeps none of the 8 jobs base has"
            " at scale mini") in sweep_error(search_path, tmp_path, "misspelt")
    assert "sweep extra_key: hydra.sweeper.grids[0]" in sweep_error(search_path, tmp_path, "extra_key")
    assert "only include, where and scale, not ['seed']" in sweep_error(search_path, tmp_path, "extra_key")
    assert not (tmp_path / "runs").exists()
