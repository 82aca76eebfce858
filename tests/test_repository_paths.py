"""What the code, configs and docs point a reader to can be followed: every repository path they
write exists, every relative markdown link resolves, and no text cites a number of this project's
issue tracker, which a reader outside the project cannot open.

A path is a token that starts with one of the repository's top-level folders (`src/`, `docs/`, ...) or
one of its packages written as a package path (`codistill/`, `codistill_experiments/`, `conf/`, ...).
The extraction is a plain regular expression; what it finds that is not a path of this checkout is
listed below with the reason, and each listed exception must still be found, so the list cannot rot.
"""
import functools
import os
import re
from pathlib import Path

from conftest import ROOT

THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Folders never read: environments, caches, build outputs, generated figures and the committed logs
# (run headers quoting whatever path a run had then).
SKIPPED_FOLDERS = {".git", ".venv", "__pycache__", ".pytest_cache", ".import_linter_cache", "build", "results",
                   "paper/logs", "figures/out"}
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".toml", ".cfg", ".sh", ".txt", ".cff"}
NAMES = {"Makefile", ".ci/run"}

# A written path's first component and the folder it names: the top-level folders as themselves, the
# packages and the Hydra config root where they lie.
ROOTS = {**{top: top for top in ("src", "library", "figures", "tests", "docs", "sweeps", "scripts", "slurm",
                                 "benchmarks", "examples", "paper")},
         "codistill": "library/src/codistill", "codistill_experiments": "src/codistill_experiments",
         "codistill_fairseq": "src/codistill_fairseq", "hydra_plugins": "src/hydra_plugins", "conf": "src/conf"}
# Not preceded by a word, a dot, a slash or a dash: "../docs/x.md", "github.com/a/src/b" and
# "my-tests/" are not paths of this repository. Placeholders ({x}, <name>, *, $VAR, %) are taken
# into the token so that the token can be skipped whole.
PATH = re.compile(r"(?<![\w./-])(?:\./)?((?:" + "|".join(ROOTS) + r")/[\w./*{}<>$%-]*)")
PLACEHOLDER = re.compile(r"[*{}<>$%]|\.\.\.")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
# A number of this project's tracker: "#40", "(#12)", "issue 27", "issues #26", "PR 5", also across a
# line break. Not one after a word ("omegaconf#1310" names another project's public tracker), nor a
# colour ("#0173b2", "#949494": the digits run on).
TRACKER_NUMBER = re.compile(r"(?<![\w/#&])#\d{1,4}\b|\b(?:issues?|PRs?|pull requests?|tickets?)\s+#?\d+\b", re.I)

# (file, or "*" for every file; the written path or a folder above it; why it need not exist in a
# fresh clone)
NOT_IN_CHECKOUT = [
    ("*", "figures/out", "what make figures and make bench write (git-ignored)"),
    ("*", "paper/report.html", "what make report writes beside paper/report.md (git-ignored)"),
    ("*", "src/conf/site/local.yaml", "the site file a cluster user writes from src/conf/site/example.yaml "
                                      "(git-ignored)"),
    ("*", "paper/rerun", "where figures/carry.py keeps a reproduce-all carried between sessions"),
    ("*", "docs/library-collapse", "the --out stem of scripts/library_collapse.py (docs/library-collapse.md, .csv)"),
    ("*", "docs/library-collapse-digits_mlp", "the --out stem of scripts/library_collapse.py --workload digits_mlp"),
    ("*", "docs/library-collapse-clusters_resnet", "the --out stem of scripts/library_collapse.py --workload "
                                                   "clusters_resnet"),
    ("CHANGELOG.md", "paper/claims.yaml", "the claims file the figures' records (paper/figures/) replaced"),
    ("docs/setup.md", "tests/test_x.py", "a placeholder: any test file"),
    ("docs/frontier.md", "src/tplr/", "files of SparseLoCo's repository, not this one"),
    ("scripts/prepare_iwslt14_de_en.py", "examples/translation/", "fairseq's repository"),
    ("scripts/prepare_wmt16_en_de.py", "examples/scaling_nmt", "fairseq's repository"),
    ("src/conf/schedule/iwslt_transformer.yaml", "examples/translation", "fairseq's repository"),
    ("src/conf/schedule/ott2018.yaml", "examples/scaling_nmt", "fairseq's repository"),
    ("tests/test_regime.py", "sweeps/", "a sweep's manifest under a results folder the test makes"),
    ("tests/test_figures.py", "figures/", "an image beside a report the test writes in tmp_path"),
    ("tests/test_report_images.py", "figures/", "images beside a report the test writes in tmp_path"),
]


def text_files():
    """The files a reader reads for paths: code, configs, docs, the Makefile and shell scripts."""
    for folder, folders, files in os.walk(ROOT):
        here = Path(folder).relative_to(ROOT)
        folders[:] = sorted(name for name in folders if name not in SKIPPED_FOLDERS and not name.endswith(".egg-info")
                            and (here / name).as_posix() not in SKIPPED_FOLDERS)
        for name in sorted(files):
            relative = (here / name).as_posix()
            if (Path(name).suffix in SUFFIXES or name in NAMES or relative in NAMES) and relative != THIS:
                yield relative


def written_paths(relative):
    """(line number, path) of every repository path written in a file, placeholders left out."""
    for number, line in enumerate((ROOT / relative).read_text(errors="replace").splitlines(), 1):
        for match in PATH.finditer(line):
            path = match.group(1).rstrip(".,:;")
            if not PLACEHOLDER.search(path):
                yield number, path


def exists(relative, path):
    """A path exists under the folder its first component names; in markdown also beside the file
    (paper/report.md shows figures/fig2.png, which lies in paper/figures/)."""
    top, _, rest = path.partition("/")
    return (ROOT / ROOTS[top] / rest).exists() or (relative.endswith(".md")
                                                   and (ROOT / relative).parent.joinpath(path).exists())


def excepted(relative, path):
    """The exception that covers a path: the path itself or a folder above it, in its file."""
    return next((entry for entry in NOT_IN_CHECKOUT if entry[0] in ("*", relative)
                 and (path == entry[1].rstrip("/") or path.startswith(entry[1].rstrip("/") + "/"))), None)


def test_every_repository_path_written_in_code_configs_and_docs_exists():
    missing, used = [], set()
    for relative in text_files():
        for number, path in written_paths(relative):
            entry = excepted(relative, path)
            # counted whether or not the path exists on this machine (figures/out/ does after make figures)
            used.add(entry)
            if entry is None and not exists(relative, path):
                missing.append(f"{relative}:{number}: {path}")
    assert not missing, "paths that do not exist (fix them, or list them in NOT_IN_CHECKOUT with the reason):\n" \
                        + "\n".join(missing)
    assert used - {None} == set(NOT_IN_CHECKOUT), f"exceptions no file needs any more: {set(NOT_IN_CHECKOUT) - used}"


@functools.cache
def anchors(markdown):
    """The anchors a markdown file offers: its headings as GitHub slugs them (lower case, punctuation
    dropped, spaces to dashes) and explicit <a id="...">, code blocks left out."""
    found, in_code = set(), False
    for line in markdown.read_text().splitlines():
        in_code ^= line.startswith("```")
        if not in_code and re.match(r"#{1,6} ", line):
            found.add(re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-"))
        found.update(re.findall(r'<a id="([^"]+)"', line))
    return found


def test_every_relative_markdown_link_resolves_to_a_file_and_its_heading():
    broken = []
    for relative in text_files():
        if not relative.endswith(".md"):
            continue
        for number, line in enumerate((ROOT / relative).read_text().splitlines(), 1):
            for match in MARKDOWN_LINK.finditer(line):
                target, _, anchor = match.group(1).partition("#")
                if re.match(r"[a-z]+:", target):
                    continue
                linked = (ROOT / relative).parent / target if target else ROOT / relative
                if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
                    broken.append(f"{relative}:{number}: {match.group(1)}")
    assert not broken, "markdown links to nothing:\n" + "\n".join(broken)


def test_the_extraction_finds_paths_and_packages_and_skips_placeholders_and_foreign_paths():
    line = ("see src/run.py, `codistill_experiments/runlog.py` and ./docs/setup.md; sweeps/{name}.yaml, "
            "tests/test_<x>.py and $RESULTS/paper/x are patterns; github.com/a/src/b and ../docs/c.md are not ours")
    found = [match.group(1).rstrip(".,:;") for match in PATH.finditer(line)]
    assert found == ["src/run.py", "codistill_experiments/runlog.py", "docs/setup.md", "sweeps/{name}.yaml",
                     "tests/test_<x>.py"]
    assert [path for path in found if not PLACEHOLDER.search(path)] == found[:3]
    assert exists("README.md", "codistill_experiments/runlog.py") and exists("README.md", "conf/method/diloco.yaml")
    assert not exists("README.md", "codistill/runlog.py")
    assert {"make-setup-vision-and-make-setup", "what-the-commands-cost"} <= anchors(ROOT / "docs" / "setup.md")
    assert "choosing-alpha-and-period-measured" in anchors(ROOT / "docs" / "library.md")   # an <a id>
    assert excepted("README.md", "figures/out/fig2.png") and excepted("README.md", "figures/out")
    assert excepted("README.md", "figures/outline.py") is None
    assert excepted("tests/test_figures.py", "figures/fig5.png") and excepted("README.md", "figures/fig5.png") is None


def test_no_comment_or_doc_cites_a_tracker_number():
    cited = []
    for relative in text_files():
        text = (ROOT / relative).read_text(errors="replace")
        for match in TRACKER_NUMBER.finditer(text):
            cited.append(f"{relative}:{text.count(chr(10), 0, match.start()) + 1}: {match.group(0)!r}")
    assert not cited, "say what the number was about instead of citing it:\n" + "\n".join(cited)


def test_the_tracker_pattern_finds_numbers_and_leaves_colours_anchors_and_other_projects():
    text = ("fixed (#12); issue 27's goal; Issue #40; PR 5; the issue\n40; "
            "omegaconf#1310, #0173b2, #949494, &#35;, [below](#the-language-model), ## 2. A heading, item #a1")
    assert [match.group(0) for match in TRACKER_NUMBER.finditer(text)] == ["#12", "issue 27", "Issue #40", "PR 5",
                                                                             "issue\n40"]
