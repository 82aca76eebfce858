"""Where the figures pipeline finds the repository's files: the committed logs that figures, tables
and the report read by default, the sweep files that name each figure's runs, and the benchmarks'
numbers the report quotes."""
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "paper" / "logs"   # the committed mini-scale logs figures and the report read by default
SWEEPS = REPO / "sweeps"
BENCH_RESULTS = REPO / "benchmarks" / "results.json"   # the benchmarks' raw numbers (part "modeljobs": the report's)
# libyaml's safe loader where PyYAML was built with it: the same documents as yaml.SafeLoader, read
# several times faster (the sweep files and the figures' records are read once per figure)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
