"""A dry run and a sweep's validation import no torch: validation reads the names a config
may use from codistill_experiments.names, and the modules that need torch are imported only to train."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(*arguments, cwd):
    done = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "src" / "run.py"), *arguments],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return {match.group(1) for match in re.finditer(r"^import time:.*\|\s+(\S+)$", done.stderr, re.M)}


@pytest.mark.slow
def test_a_sweeps_dry_run_imports_no_torch(tmp_path):
    modules = imported_modules("-m", "sweep=fig2", "dry_run=true", f"results_root={tmp_path}", cwd=tmp_path)
    assert "codistill_experiments.config" in modules and "hydra" in modules      # it did validate the jobs
    assert not {"torch", "codistill_experiments.workloads", "codistill_experiments.vision.workloads",
                "codistill_experiments.training.engine"} & modules


@pytest.mark.slow
def test_a_paper_scale_dry_run_with_missing_data_imports_no_torch_either(tmp_path):
    """Checking ImageNet's folder (missing here) still needs no torch; the dry run only warns."""
    modules = imported_modules("-m", "sweep=fig3", "scale=paper", "dry_run=true", f"results_root={tmp_path}",
                               cwd=tmp_path)
    assert "torch" not in modules
