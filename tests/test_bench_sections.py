"""Each part of `make bench` is one module that both measures it and draws its section of
benchmarks/results.md, so that a part's numbers and the text that reads them cannot drift apart in
two files: report.py's SECTIONS draws every section from such a module, and every part is in it."""
import importlib
from pathlib import Path

from benchmarks import bench, report

BENCHMARKS = Path(bench.__file__).resolve().parent
# bench.py runs the parts; bench_reproduce.py is part 5's sweep timing, drawn in part 5's section.
NOT_PARTS = {"bench", "bench_reproduce"}


def part_modules():
    names = sorted(path.stem for path in BENCHMARKS.glob("bench_*.py") if path.stem not in NOT_PARTS)
    return {name: importlib.import_module(f"benchmarks.{name}") for name in names}


def test_every_part_module_draws_its_own_section_and_plot_and_is_drawn():
    modules = part_modules()
    assert {name for name, module in modules.items()
            if not (callable(getattr(module, "section", None)) and callable(getattr(module, "plot", None)))} == set()
    assert sorted(module.__name__.removeprefix("benchmarks.") for _, _, module in report.SECTIONS) == sorted(modules)


def test_every_part_is_measured_by_a_module_whose_section_reads_it():
    measured_by = {}
    for key, _, module in report.SECTIONS:
        if callable(getattr(module, "run", None)):
            measured_by.setdefault(key, []).append(module.__name__)
    assert {key: len(measured_by.get(key, [])) for key in bench.PARTS} == {key: 1 for key in bench.PARTS}
