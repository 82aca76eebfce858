"""The installed stack is the pinned one (requirements.txt), and its parts import together."""
import re
import subprocess
import sys
from importlib.metadata import version

import pytest
from conftest import ROOT


def pins():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line)
        if match:
            yield match.groups()


def test_installed_versions_match_the_pins():
    pinned = dict(pins())
    assert {"torch", "torchvision", "fairseq-fixed", "hydra-core", "omegaconf"} <= set(pinned)
    assert {name: version(name).split("+")[0] for name in pinned} == pinned


@pytest.mark.slow
def test_fairseq_and_the_submitit_launcher_import_beside_hydra():
    # In a fresh interpreter: fairseq fills Hydra's global ConfigStore on import.
    code = ("import fairseq, hydra, omegaconf\n"  # fairseq 0.12.2 fails here on Python 3.11
            "from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher\n"
            "print(hydra.__version__, omegaconf.__version__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["1.3.2", "2.3.0"]
