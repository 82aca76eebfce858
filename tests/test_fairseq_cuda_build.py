"""make setup builds fairseq's CUDA extensions only where CUDA_HOME's nvcc has torch's CUDA major
version (fairseq's setup.py adds them whenever CUDA_HOME is set, and torch refuses to compile
across majors): elsewhere fairseq is built without CUDA_HOME, and the install says why. The Makefile's
own recipe is run with a stand-in nvcc and a pip that records its environment."""
import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

SCRIPT = ROOT / "scripts" / "fairseq_cuda_build.py"
spec = importlib.util.spec_from_file_location("fairseq_cuda_build", SCRIPT)
fairseq_cuda_build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fairseq_cuda_build)


def nvcc_says(release):
    return ("nvcc: NVIDIA (R) Cuda compiler driver\nCopyright (c) 2005-2025 NVIDIA Corporation\n"
            f"Cuda compilation tools, release {release}, V{release}.85\n")


@pytest.mark.parametrize("cuda_home, nvcc, torch_cuda, builds, named", [
    ("/sw/cuda/12.6", nvcc_says("12.6"), "13.0", False, "is CUDA 12.6, torch is built with CUDA 13.0"),
    ("/sw/cuda/13.0", nvcc_says("13.0"), "13.0", True, "fairseq's CUDA extensions are built"),
    ("/sw/cuda/12.4", nvcc_says("12.4"), "12.6", True, "is CUDA 12.4, torch's is 12.6"),   # torch only warns
    ("/sw/cuda/13.0", nvcc_says("13.0"), "12.6", False, "load a CUDA 12.x toolkit and run make setup again"),
    ("/sw/cuda/13.0", nvcc_says("13.0"), None, False, "torch is a CPU build"),
    ("/sw/cuda/13.0", None, "13.0", False, "does not say its CUDA release"),
    (None, None, "13.0", False, "CUDA_HOME is not set"),
])
def test_the_cuda_extensions_are_built_only_where_nvcc_has_torchs_cuda_major(cuda_home, nvcc, torch_cuda, builds,
                                                                                named):
    build, why = fairseq_cuda_build.decide(cuda_home, nvcc, torch_cuda)
    assert build is builds and named in why


def _cuda_home(tmp_path, release):
    """A CUDA_HOME whose bin/nvcc prints `release`'s version line."""
    home = tmp_path / f"cuda-{release}"
    (home / "bin").mkdir(parents=True)
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text(f"#!/bin/sh\nprintf '{nvcc_says(release)}'\n")
    nvcc.chmod(0o755)
    return home


def _other_major():
    major = int(torch.version.cuda.split(".")[0]) if torch.version.cuda else 13
    return f"{major - 1}.6", f"{major}.0"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_setup_installs_fairseq_without_cuda_home_where_its_nvcc_is_not_torchs_major(tmp_path):
    """The Makefile's fairseq install, run in a venv of stand-ins: its python is this one (with this
    torch), its pip writes whether CUDA_HOME reached it."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    (venv / "bin" / "pip").write_text(f"#!/bin/sh\necho \"${{CUDA_HOME:-unset}}\" > {tmp_path}/pip-saw\n")
    for tool in ("python", "pip"):
        (venv / "bin" / tool).chmod(0o755)
    other, same = _other_major()
    for release, kept in ((other, False), (same, torch.version.cuda is not None)):
        home = _cuda_home(tmp_path, release)
        (venv / ".stack").write_text("default\n")
        (venv / ".installed").unlink(missing_ok=True)
        (venv / ".installed-vision").touch()
        os.utime(venv / ".installed-vision")   # newer than its prerequisites: only the fairseq step runs
        done = subprocess.run(["make", f"VENV={venv}", "STACK=default", f"{venv}/.installed"], cwd=ROOT,
                              env={**os.environ, "CUDA_HOME": str(home)}, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "pip-saw").read_text().strip() == (str(home) if kept else "unset"), release
        assert f"CUDA_HOME={home} is CUDA {release}" in done.stderr


def test_torchs_cuda_release_is_read_without_importing_torch():
    # make setup asks it once per install: importing torch for one string would cost seconds
    done = subprocess.run([sys.executable, "-c", "import runpy, sys; script = runpy.run_path(sys.argv[1]); "
                           "print(script['torch_cuda'](), 'torch' in sys.modules)", str(SCRIPT)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(torch.version.cuda), "False"]
