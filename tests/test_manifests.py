"""The committed logs match the sweeps: for every sweep with a committed mini manifest
(paper/logs/sweeps/<id>/mini.json), the run ids that the current configs resolve to at mini scale
(a dry run of the sweep, composed in this process) are exactly the manifest's. A config change that
changes a run id would otherwise silently orphan the logs the figures and the report are drawn
from; when this fails, rerun the sweep (`make reproduce-all`) or undo the change.

The listings are tests/test_sweeps.py's (one in-process Hydra composition per job, cached per
sweep and scale), so a session that runs both files composes each sweep once."""
import json
from collections import Counter

import pytest

from figures.paths import COMMITTED
from test_sweeps import listed_run_ids

MANIFESTS = sorted(COMMITTED.glob("sweeps/*/mini.json"))


def test_there_are_committed_manifests():
    assert len(MANIFESTS) >= 20, f"expected a mini manifest per sweep under {COMMITTED}/sweeps"


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[path.parent.name for path in MANIFESTS])
def test_the_current_configs_resolve_to_the_committed_run_ids(manifest, tmp_path):
    sweep = manifest.parent.name
    committed = Counter(entry["run_id"] for entry in json.loads(manifest.read_text()))
    count, listed = listed_run_ids(sweep, "mini", tmp_path)
    assert count == len(listed), f"sweep {sweep}: the dry run announced {count} jobs and listed {len(listed)}"
    resolved = Counter(listed)
    assert resolved == committed, (
        f"sweep {sweep}: the configs resolve to run ids the committed logs do not have "
        f"{sorted(resolved - committed)}, and the logs have runs no job resolves to {sorted(committed - resolved)}")
