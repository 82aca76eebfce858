"""scripts/test_times.py: the per-file table of docs/setup.md, from pytest's JUnit XML."""
import runpy

from conftest import ROOT

test_times = runpy.run_path(str(ROOT / "scripts" / "test_times.py"))

REPORT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_a" name="test_one" time="1.5" />
<testcase classname="tests.test_a" name="test_two[x]" time="2.2" />
<testcase classname="tests.test_b" name="test_three" time="10.0"><skipped message="no Slurm" /></testcase>
<testcase classname="tests.test_c" name="test_four" time="0.5" />
</testsuite></testsuites>"""


def test_each_files_time_is_the_sum_of_its_tests_and_the_longest_comes_first(tmp_path):
    (tmp_path / "before.xml").write_text(REPORT)
    (tmp_path / "after.xml").write_text(REPORT.replace('time="10.0"', 'time="4.0"'))
    shown = test_times["table"]([tmp_path / "before.xml", tmp_path / "after.xml"], top=1)
    assert list(shown.index) == ["test_b.py", "the other 2 files", "all files"]
    assert shown.loc["test_b.py"].tolist() == [10.0, 1, 4.0, 1]
    assert shown.loc["the other 2 files"].tolist() == [4.2, 3, 4.2, 3]
    assert shown.loc["all files"].tolist() == [14.2, 4, 8.2, 4]
