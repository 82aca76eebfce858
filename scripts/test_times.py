"""Per-file test time from pytest's JUnit XML: one report, or two side by side (before, after).

    pytest -n auto --dist loadfile --junitxml=after.xml tests
    python scripts/test_times.py before.xml after.xml > table.md

Each file's time is the sum of its tests' times (setup and teardown included), the worker-seconds
it holds; with --dist loadfile a file runs whole in one worker, so the longest file bounds the
suite from below. Markdown on stdout, files by their time in the first report, longest first."""
import argparse
from pathlib import Path

import pandas as pd


def per_file(report):
    """(seconds, tests) per test file of a JUnit XML report."""
    cases = pd.read_xml(report, xpath=".//testcase")
    cases["file"] = cases["classname"].str.split(".").str[-1] + ".py"
    return cases.groupby("file")["time"].agg(["sum", "count"]).rename(columns={"sum": "s", "count": "tests"})


def table(reports, top):
    frames = [per_file(report).add_prefix(f"{Path(report).stem} ") for report in reports]
    joined = pd.concat(frames, axis=1).fillna(0).sort_values(frames[0].columns[0], ascending=False)
    shown, rest = joined.head(top), joined.iloc[top:]
    if len(rest):
        shown.loc[f"the other {len(rest)} files"] = rest.sum()
    shown.loc["all files"] = joined.sum()
    return shown.round(1).astype({column: int for column in joined.columns if column.endswith("tests")})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="+", help="JUnit XML files of pytest runs (--junitxml)")
    parser.add_argument("--top", type=int, default=20, help="files listed one by one (default 20)")
    args = parser.parse_args(argv)
    print(table(args.reports, args.top).to_markdown())


if __name__ == "__main__":
    main()
