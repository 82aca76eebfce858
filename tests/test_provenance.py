"""The report says which machines and commits made the logs, counted from the runs' headers."""
import gzip
import json

from figures.logs.provenance import NOT_RECORDED, provenance, provenance_lines


def write(root, run_id, commit, dirty, environment=None, packed=False):
    folder = root / "runs" / run_id
    folder.mkdir(parents=True)
    header = {"kind": "header", "run_id": run_id, "config": {}, "git_commit": commit, "git_dirty": dirty,
              **({"environment": environment} if environment else {})}
    text = json.dumps(header) + "\n" + json.dumps({"kind": "end", "steps": 1}) + "\n"
    if packed:
        (folder / "metrics.jsonl.gz").write_bytes(gzip.compress(text.encode()))
    else:
        (folder / "metrics.jsonl").write_text(text)


def test_runs_are_counted_by_machine_commit_and_dirty_tree(tmp_path):
    epyc = {"cpu": "AMD EPYC", "cores": 2}
    write(tmp_path, "a", "c1", False, epyc, packed=True)
    write(tmp_path, "b", "c1", True, epyc)
    write(tmp_path, "c", "c2", None, {"cpu": "Intel Xeon", "cores": 8})
    write(tmp_path, "d", "c2", False)
    runs = provenance(tmp_path).set_index("run_id")
    assert runs.loc["a", "machine"] == "AMD EPYC, 2 cores" and runs.loc["d", "machine"] == NOT_RECORDED
    text = "\n".join(provenance_lines(tmp_path))
    assert "4 runs" in text and "2 machine(s) named" in text and "1 runs whose header names none" in text
    assert "2 commit(s); 2 runs from a working tree with uncommitted changes" in text and "Comparisons mix" in text
    assert "- AMD EPYC, 2 cores: 2 runs" in text


def test_one_machine_and_one_clean_commit_is_said_so(tmp_path):
    for run_id in "ab":
        write(tmp_path, run_id, "c1", False, {"cpu": "AMD EPYC", "cores": 2})
    assert "Every comparison draws on one machine and one clean commit." in "\n".join(provenance_lines(tmp_path))
