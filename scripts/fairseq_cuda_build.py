"""Whether `make setup` builds fairseq's CUDA extensions, and the `env` arguments that say so.

fairseq's setup.py adds its CUDA extensions (libnat_cuda, ngram_repeat_block_cuda,
alignment_train_cuda_binding) whenever CUDA_HOME is in the environment, and torch compiles them
with $CUDA_HOME/bin/nvcc, refusing one whose CUDA major version is not the one torch was built with
(torch.version.cuda): with a CUDA 12 module loaded beside torch's CUDA 13 build, the whole install
fails. Training never needs them (fairseq falls back to its Python n-gram blocking; libnat is for
models this project does not train), so where nvcc's major is not torch's, or nvcc cannot be
asked, fairseq is built without CUDA_HOME, and this says so.

    python scripts/fairseq_cuda_build.py     # prints "-u CUDA_HOME" (for env) or nothing; why, on stderr
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

UNSET = "-u CUDA_HOME"


def cuda_release(nvcc_output):
    """(major, minor) of `nvcc --version`'s "release 12.6, V12.6.85", None when it has none."""
    found = re.search(r"release (\d+)\.(\d+)", nvcc_output or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def decide(cuda_home, nvcc_output, torch_cuda):
    """(build the CUDA extensions, why). cuda_home: $CUDA_HOME (None: unset); nvcc_output: what
    $CUDA_HOME/bin/nvcc --version printed (None: it could not run); torch_cuda: torch.version.cuda
    (None: a CPU build of torch)."""
    if not cuda_home:
        return False, "CUDA_HOME is not set: fairseq is built without its CUDA extensions (training does not use them)"
    if torch_cuda is None:
        return False, (f"torch is a CPU build: fairseq is built without its CUDA extensions, although CUDA_HOME is "
                       f"set ({cuda_home})")
    nvcc = cuda_release(nvcc_output)
    if nvcc is None:
        return False, (f"{cuda_home}/bin/nvcc does not say its CUDA release: fairseq is built without its CUDA "
                       f"extensions (training does not use them)")
    torch_major = int(str(torch_cuda).split(".")[0])
    if nvcc[0] != torch_major:
        return False, (f"CUDA_HOME={cuda_home} is CUDA {nvcc[0]}.{nvcc[1]}, torch is built with CUDA {torch_cuda}: "
                       f"torch refuses to compile extensions across CUDA major versions, so fairseq is built "
                       f"without its CUDA extensions (training does not use them). To build them, load a CUDA "
                       f"{torch_major}.x toolkit and run make setup again")
    return True, (f"CUDA_HOME={cuda_home} is CUDA {nvcc[0]}.{nvcc[1]}, torch's is {torch_cuda}: fairseq's CUDA "
                  f"extensions are built")


def nvcc_version(cuda_home):
    try:
        return subprocess.run([str(Path(cuda_home) / "bin" / "nvcc"), "--version"], capture_output=True, text=True,
                              timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def torch_cuda():
    """torch.version.cuda, read from torch/version.py, the plain file torch's build writes, without
    importing torch (3 s of CPU that `make setup` would pay for one string); by importing torch where
    that file cannot be read."""
    spec = importlib.util.find_spec("torch")   # finds the package without importing it
    try:
        version = importlib.util.spec_from_file_location(
            "torch_version_file", Path(spec.origin).parent / "version.py")
        module = importlib.util.module_from_spec(version)
        version.loader.exec_module(module)
        return module.cuda
    except (AttributeError, OSError, SyntaxError, TypeError):
        import torch

        return torch.version.cuda


def main(environ=None):
    environ = os.environ if environ is None else environ
    cuda_home = environ.get("CUDA_HOME")
    build, why = decide(cuda_home, nvcc_version(cuda_home) if cuda_home else None, torch_cuda())
    print(f"make setup: {why}", file=sys.stderr)
    print("" if build or not cuda_home else UNSET)


if __name__ == "__main__":
    main()
