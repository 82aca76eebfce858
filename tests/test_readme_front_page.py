"""README.md reads as a front page: at most 150 lines; the quickstart's commands in the order a
newcomer runs them (set up and reproduce Figure 2 at mini scale, set up and run the tests, the fast
tier, then the verdicts on the runs just made); no timing history with commit hashes (those are
dated tables in docs/setup.md, which the README links); a link to every main page of docs/."""
import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_the_readme_is_at_most_150_lines():
    assert len(README.splitlines()) <= 150, f"README.md has {len(README.splitlines())} lines"


def test_the_quickstart_runs_reproduce_then_the_tests_and_ends_with_the_verdicts():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", quickstart, flags=re.S).group(1)
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["make reproduce", "make test", "make test-fast", "make verdicts"]


def test_no_commit_hash_on_the_front_page_and_the_dated_costs_are_linked():
    hashes = re.findall(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b", README)
    assert not hashes, f"commit hashes in README.md (dated tables belong in docs/setup.md): {hashes}"
    assert "](docs/setup.md#what-the-commands-cost)" in README
    assert "\n## What the commands cost\n" in (ROOT / "docs" / "setup.md").read_text()


def test_the_readme_links_every_main_page_of_the_docs():
    pages = {"README", "setup", "configs", "runs", "experiments", "mini-scale", "reliability", "model-jobs",
             "translation", "frontier", "anil-2018", "library", "benchmarks", "paper-discrepancies",
             "gpu-cluster"}
    linked = set(re.findall(r"\]\(docs/([\w-]+)\.md", README))
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"
