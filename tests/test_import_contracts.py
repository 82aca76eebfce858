"""The import contracts cover the whole tree. lint-imports (pyproject.toml, run first by `make test`)
checks the packages it can import; this file checks what it cannot see:

- every module of the packages (the library, the experiments, the fairseq plugin, the sweeper, the
  figures, the benchmarks) lies in a layer of a layers contract, so that no module escapes the
  contracts by being named in none of them;
- the files that are not in a package: src/run.py, scripts/ and examples/ import only what their
  rule below lets them, read from their source with ast.
"""
import ast
import re
import tomllib

import pytest
from conftest import ROOT

CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
# Where each root package of the contracts lies.
PACKAGES = {"codistill": "library/src/codistill", "codistill_experiments": "src/codistill_experiments",
            "codistill_fairseq": "src/codistill_fairseq",
            "hydra_plugins.codistill_sweeper": "src/hydra_plugins/codistill_sweeper",
            "figures": "figures", "benchmarks": "benchmarks"}


def modules(root):
    """Every module of a package by its dotted name: its .py files in folders that are packages."""
    folder = ROOT / PACKAGES[root]
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder)
        if not all((folder / parent / "__init__.py").exists() for parent in relative.parents):
            continue   # a folder without __init__.py is not part of the package
        parts = relative.with_suffix("").parts
        yield ".".join((root,) + (parts[:-1] if parts[-1] == "__init__" else parts))


def layered_names(contracts):
    """The dotted names every layers contract puts in a layer (a container's layers under each container)."""
    names = set()
    for contract in contracts:
        if contract["type"] != "layers":
            continue
        for layer in contract["layers"]:
            for name in re.split(r"[|:]", layer.strip("()")):
                name = name.strip().strip("()")
                names.update(f"{container}.{name}" for container in contract.get("containers", [""]))
    return {name.lstrip(".") for name in names}


def unlayered(module_names, layered):
    """The modules in no layer: neither they nor a package above them is named in one (a package's own
    __init__ counts as the package, which its container's layer or a layer above holds)."""
    return [name for name in module_names
            if not any(name == layer or name.startswith(layer + ".") for layer in layered)]


def test_every_module_of_every_package_is_in_a_layer():
    assert set(CONFIG["root_packages"]) == set(PACKAGES)
    layered = layered_names(CONFIG["contracts"])
    everything = [name for root in PACKAGES for name in modules(root)]
    assert len(everything) > 150   # the walk found the tree, not an empty folder
    assert unlayered(everything, layered) == []


def packages_with_siblings(module_names):
    """The packages that hold two or more modules or subpackages: those whose parts have an order."""
    children = {}
    for name in module_names:
        parent = name.rpartition(".")[0]
        if parent and name != parent:
            children.setdefault(parent, set()).add(name)
    return sorted(parent for parent, held in children.items() if len(held) >= 2)


def test_every_package_of_several_modules_is_layered_inside_too():
    """Not only each package as a whole: inside each, every module has a layer (its own contract)."""
    everything = [name for root in PACKAGES for name in modules(root)]
    containers = {container for contract in CONFIG["contracts"] if contract["type"] == "layers"
                  for container in contract.get("containers", [])}
    assert [package for package in packages_with_siblings(everything) if package not in containers] == []


def test_every_container_contract_is_exhaustive():
    """lint-imports then refuses a new module of a layered package until it is given a layer."""
    loose = [contract["name"] for contract in CONFIG["contracts"]
             if contract["type"] == "layers" and "containers" in contract and not contract.get("exhaustive")]
    assert loose == []


def test_a_module_outside_every_layer_is_found():
    contracts = [{"type": "layers", "layers": ["a", "b | c"]},
                 {"type": "layers", "containers": ["b"], "layers": ["(x)", "y : z"]}]
    layered = layered_names(contracts)
    assert layered == {"a", "b", "c", "b.x", "b.y", "b.z"}
    assert unlayered(["a.one", "b.x.two", "c", "d", "ab.one"], {"a", "b.x", "c"}) == ["d", "ab.one"]
    assert packages_with_siblings(["a", "a.one", "a.two", "a.two.x", "b", "b.one"]) == ["a"]


# The files outside the packages and what each may import of this repository: the library by its
# public names (`from codistill import name`, name in codistill.__all__), codistill.internals where
# a rule says so, and experiment modules by package. run.py is the experiments' entry point: it
# reaches the library only through them. The scripts are the project's tools on top of the
# experiments (like the benchmarks). The examples show a user the library alone.
OURS = ("codistill", "codistill_experiments", "codistill_fairseq", "hydra_plugins", "figures", "benchmarks",
        "tests", "conftest")
RULES = {
    "src/run.py": {"codistill_experiments"},
    "scripts": {"codistill", "codistill.internals", "codistill_experiments"},
    "examples": {"codistill"},
}


def repository_imports(path):
    """(line, module imported, names taken from it) of every import of this repository's packages in a
    file, the ones inside functions included."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found = [(alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found = [(node.module, tuple(alias.name for alias in node.names))]
        else:
            continue
        yield from ((node.lineno, module, names) for module, names in found if module.split(".")[0] in OURS)


def breaches(relative, allowed, public):
    """What a file imports against its rule."""
    found = []
    for line, module, names in repository_imports(ROOT / relative):
        top = module.split(".")[0]
        if module == "codistill":
            ok = "codistill" in allowed and set(names) <= public
        elif top == "codistill":
            ok = module in allowed
        else:
            ok = top in allowed
        if not ok:
            found.append(f"{relative}:{line}: {module} {', '.join(names)}".strip())
    return found


def files_of(rule):
    path = ROOT / rule
    return [rule] if path.is_file() else sorted(p.relative_to(ROOT).as_posix() for p in path.rglob("*.py"))


@pytest.mark.parametrize("rule", sorted(RULES))
def test_run_py_scripts_and_examples_import_only_what_their_rule_lets_them(rule):
    import codistill

    files = files_of(rule)
    assert files
    assert [hit for relative in files for hit in breaches(relative, RULES[rule], set(codistill.__all__))] == []


def test_a_breach_of_a_rule_is_found(tmp_path, monkeypatch):
    (tmp_path / "tool.py").write_text("from codistill import Codistiller, Layout\nimport os\n"
                                      "def f():\n    from codistill.exchange import x\n    import figures.report\n"
                                      "    from codistill_experiments.runlog import run_id\n")
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert breaches("tool.py", {"codistill", "codistill_experiments"}, {"Codistiller"}) == [
        "tool.py:1: codistill Codistiller, Layout", "tool.py:4: codistill.exchange x", "tool.py:5: figures.report"]
    assert breaches("tool.py", {"codistill", "codistill_experiments"}, {"Codistiller", "Layout"}) == [
        "tool.py:4: codistill.exchange x", "tool.py:5: figures.report"]
