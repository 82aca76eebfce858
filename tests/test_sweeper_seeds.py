"""hydra.sweeper.seeds_per_setting: the first N seeds of each setting a sweep lists (make reproduce:
the paper's three, while the sweep lists the seeds its power analysis adds at mini scale)."""
import json
from pathlib import Path

import pytest
from test_sweeps import sweep_in_process

from hydra_plugins.codistill_sweeper.grid_union_sweeper import first_seeds

ROOT = Path(__file__).resolve().parents[1]


def test_the_first_seeds_of_each_setting_in_listing_order():
    jobs = [["method=a", "seed=0"], ["method=a", "seed=1"], ["method=b", "seed=100"], ["method=a", "seed=2"],
            ["method=a", "seed=0", "x=1"], ["method=b", "seed=101"], ["method=a", "seed=3"], ["method=c"]]
    assert first_seeds(jobs, 2) == [["method=a", "seed=0"], ["method=a", "seed=1"], ["method=b", "seed=100"],
                                    ["method=a", "seed=0", "x=1"], ["method=b", "seed=101"], ["method=c"]]
    assert first_seeds(jobs, 10) == jobs


@pytest.mark.slow
def test_three_seeds_per_setting_of_fig2_are_the_pilots_runs(tmp_path):
    """The jobs make reproduce runs by default are the 33 of the committed logs' seeds 0-2."""
    stdout = sweep_in_process("sweep=fig2", "dry_run=true", "hydra.sweeper.seeds_per_setting=3",
                              f"results_root={tmp_path}")
    listed = sorted(line.split()[1] for line in stdout.splitlines() if line.startswith("  ["))
    committed = json.loads((ROOT / "paper/logs/sweeps/fig2/mini.json").read_text())
    seed = {entry["run_id"]: next(int(o.split("=")[1]) for o in entry["overrides"] if o.startswith("seed="))
            for entry in committed}
    pilot = sorted(run_id for run_id, value in seed.items() if value < 3)
    assert listed == pilot and len(listed) == 33


def test_a_count_below_one_is_refused(tmp_path):
    stdout = ""
    with pytest.raises(SystemExit, match="seeds_per_setting=0"):
        stdout = sweep_in_process("sweep=fig2", "dry_run=true", "hydra.sweeper.seeds_per_setting=0",
                                  f"results_root={tmp_path}")
    assert not stdout
