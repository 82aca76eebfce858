"""`make figures` draws only the ids whose logs or code changed (figures/stamps.py), in parallel
processes, and fails when an id fails to draw."""
import gzip
import json
import shutil

import pytest

from figures import registry, stamps
from figures.paths import COMMITTED, REPO

IDS = ("fig7", "anil_fig2a")   # drawn by figures/drawing/paper_figures.py and anil.py


def drawing_file(name):
    return REPO / "figures" / "drawing" / f"{name}.py"


def test_an_ids_code_is_the_pipeline_and_its_own_draw_module_with_what_that_imports():
    drawers = {registry.draw_module(spec.draw) for spec in registry.SPEC_LIST}
    anil = set(stamps.code_files("figures.drawing.anil", drawers))
    fig2 = set(stamps.code_files("figures.drawing.fig2", drawers))
    # figures/drawing/anil.py imports tables (a mean +- s.e. column); fig2.py imports neither
    assert {drawing_file("anil"), drawing_file("tables")} <= anil
    assert drawing_file("fig2") not in anil and drawing_file("paper_figures") not in anil
    assert drawing_file("fig2") in fig2 and not {drawing_file("anil"), drawing_file("tables")} & fig2
    shared = {REPO / "figures" / "registry.py", REPO / "figures" / "logs" / "collect.py", drawing_file("panels"),
              drawing_file("layout"), REPO / "figures" / "drawing" / "__init__.py"}
    assert shared <= anil & fig2


@pytest.fixture
def results(tmp_path):
    """A results root with the committed manifests and logs of fig7 and anil_fig2a (3 runs shared)."""
    root = tmp_path / "results"
    for sweep in IDS:
        manifest = root / "sweeps" / sweep / "mini.json"
        manifest.parent.mkdir(parents=True)
        shutil.copy(COMMITTED / "sweeps" / sweep / "mini.json", manifest)
        for entry in json.loads(manifest.read_text()):
            if not (root / "runs" / entry["run_id"]).exists():
                shutil.copytree(COMMITTED / "runs" / entry["run_id"], root / "runs" / entry["run_id"])
    return root


def run_ids(root, sweep):
    return {entry["run_id"] for entry in json.loads((root / "sweeps" / sweep / "mini.json").read_text())}


@pytest.mark.slow
def test_a_changed_log_or_code_file_redraws_only_the_ids_that_read_it(results, tmp_path, monkeypatch):
    specs, out = [registry.SPECS[id] for id in IDS], tmp_path / "out"
    drawn, kept, failed = registry.draw(specs, results, "mini", out, jobs=2)
    assert sorted(drawn) == sorted(IDS) and not kept and not failed
    assert {path.name for path in out.glob("*.p*")} == {f"{id}.{kind}" for id in IDS for kind in ("pdf", "png")}

    assert registry.draw(specs, results, "mini", out, jobs=2) == ([], list(IDS), {})   # nothing changed

    only_anil = sorted(run_ids(results, "anil_fig2a") - run_ids(results, "fig7"))[0]
    log = results / "runs" / only_anil / "metrics.jsonl.gz"
    lines = gzip.decompress(log.read_bytes()).decode().splitlines(keepends=True)
    log.write_bytes(gzip.compress("".join(lines[:-1]).encode()))   # the run lost its end: unfinished
    assert registry.draw(specs, results, "mini", out, jobs=2)[:2] == (["anil_fig2a"], ["fig7"])

    shared = sorted(run_ids(results, "anil_fig2a") & run_ids(results, "fig7"))[0]
    (results / "runs" / shared / "metrics.jsonl.gz").unlink()   # a run both read is gone
    assert sorted(registry.draw(specs, results, "mini", out, jobs=2)[0]) == sorted(IDS)

    real_digest = stamps.digest
    edited = drawing_file("paper_figures")
    monkeypatch.setattr(stamps, "digest", lambda path: "edited" if path == edited else real_digest(path))
    assert registry.draw(specs, results, "mini", out, jobs=2)[:2] == (["fig7"], ["anil_fig2a"])

    (out / "anil_fig2a.png").unlink()   # an output removed by hand is drawn again
    assert registry.draw(specs, results, "mini", out, jobs=2)[:2] == (["anil_fig2a"], ["fig7"])


def _raises(data, notes):
    raise ValueError("a drawing bug")


def test_a_figure_that_fails_to_draw_fails_the_command_and_is_tried_again_next_time(results, tmp_path, monkeypatch,
                                                                                   capsys):
    broken = registry.Spec("broken", "figure", "a figure whose code fails", "none", _raises, sweep="anil_fig2a")
    monkeypatch.setitem(registry.SPECS, "broken", broken)
    out = tmp_path / "out"
    for _ in range(2):   # no stamp is kept for a failed id: the second call tries it again
        with pytest.raises(SystemExit) as exit:
            registry.main(["broken", "fig7", "--results", str(results), "--out", str(out)])
        assert exit.value.code == 1
        printed = capsys.readouterr().out
        assert "FAILED to draw broken: ValueError: a drawing bug" in printed and "FAILED: broken" in printed
    assert not stamps.stamp_path(out, "broken").exists() and stamps.stamp_path(out, "fig7").exists()
