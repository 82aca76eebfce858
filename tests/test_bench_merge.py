"""`python -m benchmarks.bench --parts X` re-measures part X into results.json: the other parts keep
their numbers, and the report says which parts were measured again, when and at which commit."""

from benchmarks.bench import merged
from benchmarks.report import remeasured_lines


def run(parts, commit, command="make bench"):
    machine = {"date": f"day of {commit}", "git_commit": commit}
    return {"machine": machine, "command": command, "total_seconds": 60.0, "parts": parts}


def test_remeasured_parts_replace_only_themselves():
    full = run({"bytes": {"n": 1}, "loop": {"n": 2}, "collect": {"n": 3}}, "aaa")
    once = merged(full, run({"loop": {"n": 20}}, "bbb", "python -m benchmarks.bench --parts loop"))
    twice = merged(once, run({"collect": {"n": 30}, "loop": {"n": 200}}, "ccc", "python -m benchmarks.bench --parts x"))
    assert twice["parts"] == {"bytes": {"n": 1}, "loop": {"n": 200}, "collect": {"n": 30}}
    assert twice["machine"]["git_commit"] == "aaa" and twice["command"] == "make bench"
    lines = remeasured_lines(once)
    assert "loop, by `python -m benchmarks.bench --parts loop` on day of bbb, commit bbb (1.0 min)" in lines[0]
    # The second re-measurement replaced the first one's only part: only the second is listed.
    assert [(r["machine"]["git_commit"], r["parts"]) for r in twice["remeasured"]] == [("ccc", ["collect", "loop"])]
    bytes_again = merged(once, run({"bytes": {"n": 10}}, "ddd"))
    assert [r["parts"] for r in bytes_again["remeasured"]] == [["loop"], ["bytes"]]
    assert remeasured_lines(full) == []
