"""The library is its own distribution (library/pyproject.toml): its wheel holds codistill alone and
needs torch alone, and installed into a fresh environment whose only other distributions are torch
and what torch itself requires, it runs the README's example and trains the models of the
single-process reference, with neither the experiments, Hydra nor the sweeper plugin importable."""
import email
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from packaging.requirements import Requirement
from test_readme_example import readme_example, reference_models

from benchmarks.benchlib import free_port

LIBRARY = ROOT / "library"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out, source = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("source") / "library"
    # built from a copy: a build writes build/ and egg-info beside the sources
    shutil.copytree(LIBRARY, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(source)], check=True, capture_output=True, text=True)
    (built,) = out.glob("codistill-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_the_library_alone_and_needs_torch_alone(wheel):
    import codistill

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (meta,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        fields = email.message_from_bytes(archive.read(meta))
    assert {name.split("/")[0] for name in names} == {"codistill", f"codistill-{codistill.__version__}.dist-info"}
    assert fields["Name"] == "codistill" and fields["Version"] == codistill.__version__
    assert [str(Requirement(line)) for line in fields.get_all("Requires-Dist")] == ["torch>=2.4"]
    assert fields["Requires-Python"] == ">=3.10"
    assert Requirement("torch>=2.4").specifier.contains(torch.__version__.split("+")[0])


def torch_closure():
    """The installed distributions torch needs (torch's own requirements, recursively, with the
    extras asked for, markers evaluated for this interpreter), torch included."""
    wanted, seen, extras_done = [("torch", "")], {}, set()
    while wanted:
        name, extra = wanted.pop()
        key = name.lower().replace("_", "-")
        if (key, extra) in extras_done:
            continue
        extras_done.add((key, extra))
        seen[key] = dist = metadata.distribution(name)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                wanted += [(requirement.name, asked) for asked in ("", *requirement.extras)]
    return list(seen.values())


def torch_only_directory(root):
    """A directory of links to the files of torch's closure alone (this environment's torch, so
    that the test installs nothing from the network)."""
    root.mkdir()
    for dist in torch_closure():
        site = Path(dist.locate_file(""))
        for top in {Path(path).parts[0] for path in dist.files or [] if not str(path).startswith("..")}:
            if not (root / top).exists() and (site / top).exists():
                (root / top).symlink_to(site / top)
    return root


@pytest.mark.slow
def test_the_wheel_installs_beside_torch_alone_and_runs_the_readme_example(wheel, tmp_path):
    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "torch_only.pth").write_text(f"{torch_only_directory(tmp_path / 'torch-only')}\n")
    # the environment's own setuptools (ensurepip's) would shadow the one torch requires; --isolated:
    # no index, wheel directory or constraint of this machine's pip configuration
    pip = [python, "-m", "pip", "--isolated", "-q"]
    subprocess.run([*pip, "uninstall", "-y", "setuptools"], check=True, capture_output=True)
    install = subprocess.run([*pip[:-1], "install", "--no-index", "--find-links", str(wheel.parent), "codistill"],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    assert "Successfully installed codistill-" in install.stdout and "torch-" not in install.stdout.split(
        "Successfully installed", 1)[1]

    # param_hash (runs' traces) must work without numpy, which torch does not require
    probe = ("import codistill, codistill.internals, importlib.util as u, torch; print(codistill.__version__); "
             "torch.manual_seed(0); print(codistill.internals.param_hash(torch.nn.Linear(3, 2))); "
             "print(*[u.find_spec(m) is None for m in ('codistill_experiments', 'codistill_fairseq', 'hydra', "
             "'omegaconf', 'hydra_plugins', 'fairseq', 'pandas', 'numpy')])")
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([python, "-c", probe], cwd=tmp_path, env=clean, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import codistill
    torch.manual_seed(0)
    weights = torch.cat([p.detach().flatten() for p in torch.nn.Linear(3, 2).parameters()])
    numpy_hash = hashlib.sha1(weights.numpy().tobytes()).hexdigest()[:16]   # the hash the committed traces hold
    assert done.stdout.split() == [codistill.__version__, numpy_hash, *["True"] * 8]

    (tmp_path / "example.py").write_text(readme_example())
    run = subprocess.run([python, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**clean, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
                              "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    trained = [torch.cat([t.flatten() for t in torch.load(tmp_path / f"model{rank}.pt", weights_only=True).values()])
               for rank in range(2)]
    for got, expected in zip(trained, reference_models(), strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_the_wheel_and_the_sdist_build_and_pass_twine_check(tmp_path):
    source, out = tmp_path / "library", tmp_path / "dist"
    shutil.copytree(LIBRARY, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    # --no-isolation: the build uses this environment's setuptools, nothing from the network
    built = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist", "--wheel", "--outdir",
                            str(out), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    import codistill
    names = sorted(path.name for path in out.iterdir())
    assert names == [f"codistill-{codistill.__version__}-py3-none-any.whl", f"codistill-{codistill.__version__}.tar.gz"]
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *sorted(map(str, out.iterdir()))],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2
    with tarfile.open(out / f"codistill-{codistill.__version__}.tar.gz") as archive:
        members = {Path(name).relative_to(f"codistill-{codistill.__version__}").as_posix()
                   for name in archive.getnames() if "/" in name}
    sources = {f"src/codistill/{path.name}" for path in (LIBRARY / "src" / "codistill").glob("*.py")}
    assert sources <= members and {"pyproject.toml", "README.md"} <= members


def test_importing_the_library_prints_nothing():
    # torch itself prints "Failed to initialize NumPy" when numpy is absent (docs/library.md): this
    # environment has numpy, so anything printed would be the library's
    code = "import codistill; from codistill import Codistiller, Layout, PeerMismatch, CommCounter"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(LIBRARY / "src")})
    assert done.returncode == 0 and (done.stdout, done.stderr) == ("", "")
