"""The vision path installs without the translation extras (make setup-vision): a translation job
started in such an environment stops before anything runs, naming the command that installs them,
and a vision job neither needs nor imports them. The environment is emulated in a fresh interpreter
whose import system cannot find fairseq, torchaudio or sacreBLEU (each is None in sys.modules: an
import raises ImportError and importlib.util.find_spec answers None, as when it is not installed)."""
import re
import subprocess
import sys

import pytest
from conftest import ROOT, SHORT, compose_job

from codistill_experiments.runlog import read_records
from codistill_experiments.translation.checks import (
    INSTALL_TRANSLATION,
    TRANSLATION_MODULES,
    translation_install_problem,
)

# run.py in an interpreter that cannot import the translation extras; it reports, on its last line
# of stderr, which of them it imported (none can be: any attempt raises ImportError).
WITHOUT_EXTRAS = f"""
import runpy, sys
sys.modules.update(dict.fromkeys({list(TRANSLATION_MODULES)!r}))
sys.argv = [{str(ROOT / "src" / "run.py")!r}, *sys.argv[1:]]
sys.path.insert(0, {str(ROOT / "src")!r})   # as `python src/run.py` has it
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("imported:", sorted(n for n in {list(TRANSLATION_MODULES)!r} if sys.modules.get(n) is not None),
          file=sys.stderr)
"""


def without_extras(*args, cwd):
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_the_problem_names_the_missing_modules_and_the_install_command(tmp_path):
    job = compose_job(["workload=translation_mini", "method=codistill"], tmp_path, quick=False)
    installed = translation_install_problem(job, find_spec=lambda name: object())
    assert installed is None
    problem = translation_install_problem(job, find_spec=lambda name: None if name == "torchaudio" else object())
    assert "lacks torchaudio (" in problem and f"`{INSTALL_TRANSLATION}`" in problem
    vision = compose_job(["method=codistill"], tmp_path)
    assert translation_install_problem(vision, find_spec=lambda name: None) is None


def test_a_translation_job_without_the_extras_stops_before_anything_runs(tmp_path):
    done = without_extras("workload=translation_mini", "method=codistill", f"results_root={tmp_path}", cwd=tmp_path)
    assert done.returncode != 0
    assert "error: workload.name='translation_mini' is trained by fairseq" in done.stderr
    assert f"install them with `{INSTALL_TRANSLATION}`" in done.stderr
    assert "fairseq, fairseq_cli, torchaudio, sacrebleu" in done.stderr
    assert "imported: []" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_translation_sweep_without_the_extras_is_not_launched_and_its_dry_run_warns(tmp_path):
    sweep = ["-m", "workload=translation_mini", "method=codistill", "seed=0,1", f"results_root={tmp_path}"]
    refused = without_extras(*sweep, cwd=tmp_path)
    assert refused.returncode != 0
    assert "the sweep was not launched" in refused.stderr and f"`{INSTALL_TRANSLATION}`" in refused.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "sweeps").exists()
    listed = without_extras(*sweep, "dry_run=true", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert len(re.findall(r"\] mini-codistill-\S+", listed.stdout)) == 2
    assert "warning: a launch here would refuse: workload.name='translation_mini'" in listed.stderr


@pytest.mark.slow
def test_a_vision_job_trains_without_the_extras(tmp_path):
    done = without_extras("workload=digits_mlp", "method=codistill", *SHORT, f"results_root={tmp_path}",
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported: []" in done.stderr
    [run] = (tmp_path / "runs").iterdir()
    assert read_records(run / "metrics.jsonl")[-1]["kind"] == "end"
