"""What a figure or table is drawn from, and the stamp that says whether it must be drawn again.

An id's inputs are its record (paper/figures/<id>.yaml), the logs it reads (its sweep's manifest, and per run the metrics logs and saved
predictions figures/logs reads) and the code that draws it: the figures modules that
figures.registry imports, except the modules holding other ids' draw functions, and the
transitive figures imports of its own draw function's module. Its stamp is a hash of their
contents, with the results root and the scale; figures/registry.py keeps it beside the outputs
(<out>/.stamps/<id>.json) and draws an id again only when its stamp changed or an output is gone.
A library upgrade (matplotlib, pandas) changes no stamp: remove figures/out to redraw everything.
"""
import ast
import functools
import hashlib
import json
from pathlib import Path

from .logs.churn import PACKED
from .logs.manifests import manifest_path
from .logs.run_logs import LOG_NAMES, METRICS_FILE
from .paths import REPO, SWEEPS

PACKAGE = "figures"


def module_file(name):
    """The file of a figures module (a package's __init__.py), or None when there is none."""
    base = REPO.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@functools.cache
def imported_modules(name):
    """The figures modules that module `name` imports (`from .x import y` may name a module y)."""
    path = module_file(name)
    if path is None:   # a module outside this repository's figures package: none of its code
        return set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            found += [module, *(f"{module}.{alias.name}" for alias in node.names)]
    return {module for module in found
            if (module == PACKAGE or module.startswith(PACKAGE + ".")) and module_file(module)}


def with_packages(name):
    """A module and the packages above it (importing it runs their __init__.py)."""
    parts = name.split(".")
    return {".".join(parts[:index]) for index in range(1, len(parts) + 1)}


def closure(roots, leave_out=()):
    """The figures modules that `roots` import, transitively, roots included; modules in
    `leave_out` are neither included nor followed."""
    seen, todo = set(), [root for root in roots if root not in leave_out]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [module for module in imported_modules(name) | with_packages(name)
                 if module not in seen and module not in leave_out]
    return seen


def code_files(draw_module, drawers):
    """The files of the code that draws an id whose draw function is in `draw_module`; `drawers`:
    the modules holding any id's draw function."""
    modules = closure(["figures.registry", "figures.stamps"], leave_out=set(drawers)) | closure([draw_module])
    return sorted(path for name in modules if (path := module_file(name)))


def run_files(directory):
    """The files of a run directory that figures/logs reads: its metrics log (plain or gzipped),
    its models' logs (independent model jobs), its saved predictions (churn)."""
    directory = Path(directory)
    names = [directory / name for name in LOG_NAMES] + [directory / PACKED]
    globs = [*directory.glob(f"model*/{METRICS_FILE}"), *directory.glob("predictions-model*.npy")]
    return sorted(path for path in names + globs if path.is_file())


def log_files(results_root, sweep_id, scale):
    """The sweep file, the manifest and every run log an id reads (none when there is no manifest)."""
    files = [path for path in [SWEEPS / f"{sweep_id}.yaml"] if path.is_file()]
    manifest = manifest_path(results_root, sweep_id, scale)
    if not manifest.is_file():
        return files
    files.append(manifest)
    for entry in json.loads(manifest.read_text()):
        files += run_files(Path(results_root) / "runs" / entry["run_id"])
    return files


def digest(path):
    """The file's content hash, read once per version of the file in this process (runs shared by
    several ids are hashed once)."""
    status = Path(path).stat()
    return _content_digest(str(path), status.st_size, status.st_mtime_ns)


@functools.cache
def _content_digest(path, size, mtime_ns):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stamp(files, *settings):
    """A hash of the files' contents (and names) and of the settings that change a drawing."""
    whole = hashlib.sha256(json.dumps([str(setting) for setting in settings]).encode())
    for path in files:
        path = Path(path).resolve()
        name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        whole.update(f"{name}\0{digest(path)}\n".encode())
    return whole.hexdigest()


def stamp_path(out, id):
    return Path(out) / ".stamps" / f"{id}.json"


def is_current(out, id, value, outputs):
    """Whether the id's outputs exist and were drawn from inputs of this stamp."""
    path = stamp_path(out, id)
    if not path.is_file() or not all(Path(output).is_file() for output in outputs):
        return False
    try:
        return json.loads(path.read_text()).get("stamp") == value
    except ValueError:   # a stamp torn by a kill: draw again
        return False


def record(out, id, value):
    path = stamp_path(out, id)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"stamp": value}) + "\n")
    temporary.replace(path)
