"""A figure whose sweep has a run log that cannot be read is not drawn from the others without a
word: the command fails naming the log, unless --allow-missing, and then the figure names the
seeds its means lack."""
import json
import shutil
from pathlib import Path

import pytest

from figures import registry

COMMITTED = Path(__file__).resolve().parents[1] / "paper" / "logs"


@pytest.fixture
def damaged(tmp_path):
    """(results root: a copy of Figure 2's committed runs and manifest, one run's log truncated;
    that log, the run's seed and setting as its manifest says)."""
    manifest = json.loads((COMMITTED / "sweeps" / "fig2" / "mini.json").read_text())
    (tmp_path / "sweeps" / "fig2").mkdir(parents=True)
    (tmp_path / "sweeps" / "fig2" / "mini.json").write_text(json.dumps(manifest))
    for entry in manifest:
        shutil.copytree(COMMITTED / "runs" / entry["run_id"], tmp_path / "runs" / entry["run_id"])
    entry = manifest[0]
    [log] = (tmp_path / "runs" / entry["run_id"]).glob("metrics.jsonl*")
    data = log.read_bytes()
    log.write_bytes(data[:len(data) // 2])
    overrides = dict(override.split("=", 1) for override in entry["overrides"])
    return tmp_path, log, int(overrides["seed"])


def test_an_unreadable_log_fails_the_figure_naming_it(damaged, tmp_path, capsys):
    root, log, seed = damaged
    with pytest.raises(SystemExit) as stopped:
        registry.main(["fig2", "--results", str(root), "--out", str(tmp_path / "out")])
    assert stopped.value.code == 1
    printed = capsys.readouterr().out
    failure = [line for line in printed.splitlines() if "FAILED to draw fig2" in line]
    assert len(failure) == 1 and str(log) in failure[0] and f"(seed {seed} of " in failure[0], printed
    assert "--allow-missing" in failure[0]
    assert not (tmp_path / "out" / "fig2.png").exists() and printed.rstrip().endswith("FAILED: fig2")


def test_the_footer_names_the_missing_seed(damaged):
    root, log, seed = damaged
    data = registry.load(registry.SPECS["fig2"], root, "mini")
    [row] = data.unreadable().itertuples()
    assert row.seed == seed and str(log) in data.missing_problem()
    assert data.status_text().startswith("NOT PLOTTED: 1 unreadable run(s) of the sweep")
    assert f"MISSING SEEDS (unreadable logs): seed {seed} of {row.setting}" in data.status_text()


@pytest.mark.slow   # draws Figure 2 (seconds to tens of seconds); the fast tier keeps the two above
def test_with_allow_missing_the_figure_is_drawn_and_says_which_seed_it_lacks(damaged, tmp_path, monkeypatch):
    root, _, seed = damaged
    out = tmp_path / "out"
    texts = tmp_path / "texts.json"
    save = registry._save_figure

    def saving_its_texts(fig, folder, id):   # runs in the drawing worker, a fork of this process
        texts.write_text(json.dumps([text.get_text() for text in fig.findobj(lambda artist: hasattr(artist, "get_text"))]))
        return save(fig, folder, id)

    monkeypatch.setattr(registry, "_save_figure", saving_its_texts)
    registry.main(["fig2", "--results", str(root), "--out", str(out), "--allow-missing"])
    assert (out / "fig2.png").exists() and (out / "fig2.pdf").exists()
    assert any(f"MISSING SEEDS (unreadable logs): seed {seed} of " in text for text in json.loads(texts.read_text()))
