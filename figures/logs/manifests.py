"""Sweep manifests: <results>/sweeps/<sweep>/<scale>.json, written when the sweep launched, names
each run its figure needs (run id and the job's overrides); a job's setting is its overrides
without the seed."""
import json
from pathlib import Path


class ManifestMissing(FileNotFoundError):
    pass


def manifest_path(results_root, sweep_id, scale):
    return Path(results_root) / "sweeps" / sweep_id / f"{scale}.json"


def manifest(results_root, sweep_id, scale):
    path = manifest_path(results_root, sweep_id, scale)
    if not path.exists():
        raise ManifestMissing(f"{path} not found: run the sweep first "
                              f"(python src/run.py -m sweep={sweep_id} scale={scale})")
    return json.loads(path.read_text())


def manifests(root, scale):
    """The manifest files of every sweep under `root` at `scale`, sorted by path."""
    return sorted((Path(root) / "sweeps").glob(f"*/{scale}.json"))


NOT_SETTING = {"seed", "results_root", "sweep", "launcher", "dry_run"}   # keys that do not make a setting


def setting_of(overrides):
    """A job's overrides without its seed (and where it ran): the point of a figure that seeds repeat."""
    return " ".join(sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in NOT_SETTING)) or "(defaults)"


def seed_of(overrides):
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "seed":
            return int(value)
    return None
