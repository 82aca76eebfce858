"""Which machines and which code versions made the logs of a results root: one row per run,
read from its header (its first line). Runs whose header predates the environment record name no
machine. Comparisons are only as clean as this: two machines' CPU kernels round differently, and
a log from a tree with uncommitted changes names no code that reproduces it."""
import gzip
import json
from pathlib import Path

import pandas as pd

from .run_logs import LOG_NAMES

NOT_RECORDED = "not recorded"
COMMITS_SHOWN = 5   # the commits that made the most runs, named in the report; the rest are counted


def header_of(directory):
    for name in LOG_NAMES:
        path = Path(directory) / name
        if path.exists():
            with (gzip.open(path, "rt") if name.endswith(".gz") else open(path)) as handle:
                return json.loads(handle.readline())
    return None


def machine_name(environment):
    """"<cpu>, <cores> cores" of a header's environment record, or NOT_RECORDED."""
    environment = environment or {}
    return (f"{environment['cpu']}, {environment['cores']} cores" if "cores" in environment
            else environment.get("cpu", NOT_RECORDED))


def provenance(results_root):
    """DataFrame: run_id, machine ("<cpu>, <cores> cores" or NOT_RECORDED), signature (the CPU's
    family, model and torch's kernel level, None where the header predates it), commit, dirty (True, False,
    or None outside git)."""
    rows = []
    for directory in sorted((Path(results_root) / "runs").glob("*")):
        header = header_of(directory)
        if header is None:
            continue
        environment = header.get("environment") or {}
        rows.append({"run_id": directory.name, "machine": machine_name(environment),
                     "signature": environment.get("cpu_signature"), "commit": header.get("git_commit"),
                     "dirty": header.get("git_dirty")})
    return pd.DataFrame(rows, columns=["run_id", "machine", "signature", "commit", "dirty"])


def runs_of_other_machines(results_root, environment):
    """The runs of `results_root` (finished or not) that a machine other than the one `environment`
    (run_environment's record) describes made: another CPU or core count, or, where both name it,
    another CPU signature. Runs that name no machine are not counted: nothing tells their machine."""
    runs = provenance(results_root)
    here, signature = machine_name(environment), environment.get("cpu_signature")
    named = runs[runs["machine"] != NOT_RECORDED]
    other = (named["machine"] != here) | (named["signature"].notna() & (signature is not None)
                                          & (named["signature"] != signature))
    return named[other]


def provenance_lines(results_root):
    """The report's account of where the logs come from: runs per machine, commits, dirty trees."""
    runs = provenance(results_root)
    if runs.empty:
        return []
    machines = runs["machine"].value_counts()
    named = machines.drop(NOT_RECORDED, errors="ignore")
    unnamed = int(machines.get(NOT_RECORDED, 0))
    unrecoverable = runs["dirty"] != False   # noqa: E712 (None: outside git, no code to recover either)
    dirty = int(unrecoverable.sum())
    commits = runs["commit"].nunique()
    signatures = runs["signature"].dropna().value_counts()
    one_clean = len(named) == 1 and len(signatures) <= 1 and not unnamed and commits == 1 and not dirty
    lines = ["## Where the logs come from", "",
             f"{len(runs)} runs in `{results_root}`: {len(named)} machine(s) named by their headers"
             + (f", {unnamed} runs whose header names none (written before headers did)" if unnamed else "")
             + f"; {commits} commit(s); {dirty} runs from a working tree with uncommitted changes (their code cannot "
             "be recovered). " + ("Every comparison draws on one machine and one clean commit." if one_clean else
                                  "Comparisons mix them: a difference as small as machines' rounding or a change of "
                                  "code can make is not evidence."), ""]
    lines += ["Runs per machine:", "", *[f"- {machine}: {count} runs" for machine, count in machines.items()]]
    if len(signatures) > 1:   # CPUs a virtual machine names alike, told apart by their signatures
        lines += [f"  - CPU signature {signature}: {count} runs" for signature, count in signatures.items()]
    commits_of = runs.assign(commit=runs["commit"].fillna(NOT_RECORDED), unrecoverable=unrecoverable)
    by_commit = (commits_of.groupby("commit")["unrecoverable"].agg(["size", "sum"])
                 .sort_values("size", ascending=False, kind="stable"))
    shown, others = by_commit.head(COMMITS_SHOWN), by_commit.iloc[COMMITS_SHOWN:]
    lines += ["", "Runs per commit (the code that made them):", ""]
    lines += [f"- commit `{commit}`: {size} runs" + (f", {dirty_runs} of them from a dirty tree" if dirty_runs else "")
              for commit, (size, dirty_runs) in shown.iterrows()]
    if len(others):
        lines.append(f"- {len(others)} other commits: {int(others['size'].sum())} runs")
    return lines + [""]
