"""Where the figures pipeline finds the repository's files: the committed logs that figures, tables
and the report read by default, and the sweep files that name each figure's runs."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "paper" / "logs"   # the committed mini-scale logs figures and the report read by default
SWEEPS = REPO / "sweeps"
