"""Carries a reproduce-all across sessions on machines that keep no files between them: `save`
packs the ended runs of a results root into the repository (paper/rerun/, in the committed form of
figures/pack.py), and `restore` unpacks them into a fresh results root, so that reproduce-all
skips them there and goes on with the rest.

    python -m figures.carry save --results R [--into paper/rerun] [--started "2026-11-26 19:40"]
    python -m figures.carry restore --results R --commit C [--from paper/rerun]

Only runs with an end record travel, and only from a clean tree: a run cut midway starts again,
since its checkpoints stay behind, and so do weights (a two_phase job whose teacher run came back
this way names it, to move aside and train again). Each commit and machine (CPU, cores, CPU
signature) has its own folder, <commit>-<machine key>, and `restore` takes only the folder of the
commit that will run and of this machine: every comparison draws on one machine and one code
version. `--started` records a segment of the rerun (from then to the save; a later save of the
segment replaces it) in the folder's segments.jsonl, so that the rerun's wall time over several
sessions can be summed.
"""
import argparse
import gzip
import hashlib
import io
import json
import sys
import time
import zipfile
from pathlib import Path

from codistill_experiments import runlog

from .logs.churn import PACKED, packed_predictions
from .logs.provenance import header_of, machine_name
from .pack import packed_bytes, unrecoverable_header
from .paths import REPO

CARRIED = REPO / "paper" / "rerun"
MACHINE_FILE, SEGMENTS_FILE = "machine.json", "segments.jsonl"


def machine_of(environment):
    """(name, CPU signature) of a header's environment record."""
    environment = environment or {}
    return machine_name(environment), environment.get("cpu_signature")


def folder_name(commit, environment):
    """'<commit, 10 digits>-<8 hex digits of the machine's name and signature>'."""
    key = hashlib.sha256(json.dumps(machine_of(environment)).encode()).hexdigest()[:8]
    return f"{commit[:10]}-{key}"


def ended_runs(results):
    """[(run directory, header)] of the runs in `results` whose log has an end record."""
    found = []
    for directory in sorted((Path(results) / "runs").glob("*")):
        log = directory / runlog.METRICS_FILE
        if runlog.end_state(log)[0] in (runlog.FINISHED, runlog.FAILED):
            found.append((directory, header_of(directory)))
    return found


def save(results, into=CARRIED, started=None):
    """Packs the ended runs of `results` into `into`/<commit>-<machine>/; returns {folder: runs written}.
    Refuses (nothing written) when one of them comes from a tree with uncommitted changes."""
    runs = ended_runs(results)
    refused = [f"{directory.name} ({why})" for directory, header in runs for why in [unrecoverable_header(header)] if why]
    if refused:
        raise SystemExit(f"refused: {len(refused)} run(s) whose code cannot be recovered: {', '.join(refused[:5])}")
    written, counted = {}, {}
    for directory, header in runs:
        folder = Path(into) / folder_name(header["git_commit"], header.get("environment"))
        target = folder / "runs" / directory.name
        target.mkdir(parents=True, exist_ok=True)
        counted[folder] = counted.get(folder, 0) + 1
        written.setdefault(folder, 0)
        for name, data in ((runlog.METRICS_FILE + ".gz", packed_bytes(directory / runlog.METRICS_FILE)),
                           (PACKED, packed_predictions(directory))):
            if data is not None and (not (target / name).exists() or (target / name).read_bytes() != data):
                (target / name).write_bytes(data)
                written[folder] += name == runlog.METRICS_FILE + ".gz"
        if not (folder / MACHINE_FILE).exists():
            machine, signature = machine_of(header.get("environment"))
            (folder / MACHINE_FILE).write_text(json.dumps(
                {"commit": header["git_commit"], "machine": machine, "cpu_signature": signature}, indent=1) + "\n")
    if started is not None:   # one line per segment: a later save of the same segment replaces it
        for folder, count in counted.items():
            kept = [segment for segment in segments(folder) if segment["started"] != started]
            kept.append({"started": started, "saved": time.strftime("%Y-%m-%d %H:%M:%S"), "ended_runs": count})
            (folder / SEGMENTS_FILE).write_text("".join(json.dumps(segment) + "\n" for segment in kept))
    return written


def unpacked_predictions(packed):
    """{file name: bytes} of the predictions-model<i>.npy files a predictions.npz holds."""
    with zipfile.ZipFile(io.BytesIO(packed)) as archive:
        return {f"predictions-{name}": archive.read(name) for name in archive.namelist()}


def restore(results, commit, source=CARRIED, environment=None):
    """Unpacks the carried runs of `commit` made on this machine (`environment`: run_environment's
    record, by default this machine's) into `results`/runs, leaving every run directory that already
    exists as it is. Returns (runs restored, folders of the commit from other machines)."""
    environment = environment or runlog.run_environment("cpu", None, "float32")
    folder = Path(source) / folder_name(commit, environment)
    others = [path for path in sorted(Path(source).glob(f"{commit[:10]}-*")) if path != folder]
    restored = 0
    for run in sorted((folder / "runs").glob("*")) if folder.exists() else []:
        target = Path(results) / "runs" / run.name
        if target.exists():
            continue
        target.mkdir(parents=True)
        (target / runlog.METRICS_FILE).write_bytes(gzip.decompress((run / (runlog.METRICS_FILE + ".gz")).read_bytes()))
        if (run / PACKED).exists():
            for name, data in unpacked_predictions((run / PACKED).read_bytes()).items():
                (target / name).write_bytes(data)
        restored += 1
    return restored, others


def segments(folder):
    """The segments saved in a carried folder: [{"started", "saved", "ended_runs"}]."""
    path = Path(folder) / SEGMENTS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    saving = commands.add_parser("save", help="pack the ended runs of --results into --into")
    saving.add_argument("--results", required=True)
    saving.add_argument("--into", default=str(CARRIED))
    saving.add_argument("--started", help="when this segment of the rerun began (recorded with the save)")
    restoring = commands.add_parser("restore", help="unpack this machine's runs of --commit into --results")
    restoring.add_argument("--results", required=True)
    restoring.add_argument("--commit", required=True, help="the commit the rerun runs (its full hash)")
    restoring.add_argument("--from", dest="source", default=str(CARRIED))
    args = parser.parse_args(argv)
    if args.command == "save":
        for folder, count in save(args.results, args.into, args.started).items():
            print(f"{folder}: {count} run logs written, {len(list((folder / 'runs').glob('*')))} runs carried")
        return
    restored, others = restore(args.results, args.commit, args.source)
    print(f"restored {restored} runs into {args.results}")
    for folder in others:
        made_by = json.loads((folder / MACHINE_FILE).read_text())
        print(f"not restored: {folder} ({made_by['machine']} [{made_by['cpu_signature']}]): another machine "
              "made them, and runs of two machines are not mixed", file=sys.stderr)


if __name__ == "__main__":
    main()
