"""Copies the logs of a results root into the committed form that `make figures` and `make report`
read by default (paper/logs): every sweep manifest of a scale, each run's metrics.jsonl gzipped
(byte-identical for identical logs) and, where a run saved its validation predictions
(predictions-model<i>.npy, for churn between retrains: figures/logs/churn.py), those deflated into one
predictions.npz. Model weights, run state and Hydra folders stay out.

    python -m figures.pack --results results --into paper/logs [--scale mini] [--replace]

Without --replace, manifests found in --results are added or replaced and the others kept; with
--replace, the committed logs of that scale are first removed (a full reproduction refreshes
everything). Runs no manifest names any more are removed. A finished log already packed is never
replaced by an unfinished one (a run stopped midway in --results). A log that would be added or
changed must come from a clean tree (`git_dirty: false` in its header): otherwise nothing is
packed and the runs are named.
"""
import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

from codistill_experiments import runlog

from .logs.churn import PACKED, packed_predictions
from .logs.manifests import manifests
from .paths import COMMITTED


def packed_bytes(path):
    return gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0)


def unrecoverable(log):
    """Why the code that made a run's log cannot be recovered (None when it can): made from a
    working tree with uncommitted changes, or outside git. Such a log is never committed: a
    committed log names the commit that reproduces it."""
    with open(log) as handle:   # the header is the first line, whatever damage may follow it
        return unrecoverable_header(json.loads(handle.readline()))


def unrecoverable_header(header):
    """unrecoverable() of a log whose header has been read."""
    if header.get("git_commit") is None:
        return "made outside git"
    if header.get("git_dirty") is not False:
        return f"made from {header['git_commit'][:10]} with uncommitted changes"
    return None


def referenced_runs(root):
    return {entry["run_id"] for path in (Path(root) / "sweeps").glob("*/*.json")
            for entry in json.loads(path.read_text())}


def pack(results, into, scale, replace=False):
    """Returns (sweeps packed, runs written, runs missing from --results, runs removed)."""
    results, into = Path(results), Path(into)
    if results.resolve() == into.resolve():
        raise SystemExit("--results and --into are the same folder")
    found = manifests(results, scale)
    if not found:
        raise SystemExit(f"no {scale} sweep manifests under {results}/sweeps: run the sweeps first")
    if replace:
        for old in manifests(into, scale):
            old.unlink()
    written, missing, chosen = 0, [], []
    for path in found:
        for entry in json.loads(path.read_text()):
            source = results / "runs" / entry["run_id"] / runlog.METRICS_FILE
            if not source.exists():
                missing.append(entry["run_id"])
                continue
            destination = into / "runs" / entry["run_id"] / (runlog.METRICS_FILE + ".gz")
            # a finished log is never replaced by one without a result (a run stopped midway, failed, damaged)
            if runlog.end_state(destination)[0] == runlog.FINISHED != runlog.end_state(source)[0]:
                print(f"WARNING: kept the finished log of {entry['run_id']} in {into}: the one in {results} has no "
                      "result (a run stopped midway, failed or damaged)", file=sys.stderr)
                continue
            chosen.append((source, destination, packed_bytes(source)))
    changed = [(source, destination, data) for source, destination, data in chosen
               if not destination.exists() or destination.read_bytes() != data]
    refused = [f"{source.parent.name} ({why})" for source, _, _ in changed for why in [unrecoverable(source)] if why]
    if refused:   # nothing is written: the committed logs stay as they were
        raise SystemExit(f"refused: {len(refused)} run(s) whose code cannot be recovered: "
                         f"{', '.join(refused[:5])}{' ...' if len(refused) > 5 else ''}. Commit the code, then "
                         f"run them again from a clean tree (move their run directories in {results}/runs aside)")
    for path in found:
        target = into / "sweeps" / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    for _, destination, data in changed:
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(data)
        written += 1
    for source, destination, _ in chosen:
        predictions = packed_predictions(source.parent)
        target_predictions = destination.parent / PACKED
        if predictions is not None and (not target_predictions.exists()
                                        or target_predictions.read_bytes() != predictions):
            target_predictions.write_bytes(predictions)
    keep = referenced_runs(into)
    runs = into / "runs"
    removed = [d for d in runs.iterdir() if d.is_dir() and d.name not in keep] if runs.exists() else []
    for directory in removed:
        shutil.rmtree(directory)
    return len(found), written, sorted(set(missing)), len(removed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="where the sweeps wrote their runs")
    parser.add_argument("--into", default=str(COMMITTED))
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    parser.add_argument("--replace", action="store_true", help="drop the committed logs of this scale first")
    args = parser.parse_args(argv)
    sweeps, written, missing, removed = pack(args.results, args.into, args.scale, args.replace)
    size = sum(p.stat().st_size for p in Path(args.into).rglob("*") if p.is_file())
    print(f"packed {sweeps} {args.scale} sweep manifests into {args.into}: {written} run logs written, "
          f"{removed} stale runs removed, {size / 1e6:.1f} MB in all")
    if missing:
        print(f"WARNING: {len(missing)} run(s) named by a manifest have no log in {args.results} "
              f"(the figures will say so): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")


if __name__ == "__main__":
    main()
