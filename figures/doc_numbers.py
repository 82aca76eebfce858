"""Which numbers the docs quote that new logs changed. The docs' prose quotes numbers that the
report, the regime check, the tuning rankings and the tables compute from `paper/logs`; after the
logs are replaced, `snapshot` writes every one of those texts for the old logs and for the new,
and `compare` lines the two snapshots up and lists each doc line that quotes a number whose value
changed, with the new value and where it comes from (a number quoted beside others, as a mean's
s.e., is matched to the generated line that holds them together; one quoted with fewer decimals
than the generated text, 80.57 for 80.572, is found when its rounding changed). Counts, numbers
with one decimal and numbers the prose derives by hand (a ratio of two quoted values) are not
looked for, nor are lines whose shape changed (it lists those): read them.

    python -m figures.doc_numbers snapshot --results paper/logs --into /tmp/before   # before replacing the logs
    python -m figures.doc_numbers snapshot --results paper/logs --into /tmp/after    # after
    python -m figures.doc_numbers compare /tmp/before /tmp/after [DOC ...]   # default: README.md, docs/*.md
"""
import argparse
import contextlib
import difflib
import io
import re
import sys
from collections import defaultdict
from pathlib import Path

from . import report, tuning
from .paths import REPO
from .regime import check

# A number as the texts write it: sign, digits with thousands commas, decimals, exponent.
NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
TEXTS = ("*.md", "*.txt")   # what a snapshot holds (the report's HTML and figures are not compared)


def snapshot(results, into):
    """Writes into `into` the report (report.md, its tables under out/), the regime check's output
    (regime.txt) and each tuning sweep's ranking (tuning_<sweep>.txt) for the logs in `results`."""
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    report.main(["--results", str(results), "--md", str(into / "report.md"), "--out", str(into / "out")])
    outputs = {"regime.txt": (check.main, ["--results", str(results)])}
    outputs.update({f"tuning_{sweep}.txt": (tuning.main, ["--sweep", sweep, "--results", str(results)])
                    for sweep in sorted(tuning.BUDGETS)})
    for name, (command, argv) in outputs.items():
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            try:
                command(argv)
            except SystemExit as stopped:   # a tuning sweep without runs says so
                print(stopped.code if isinstance(stopped.code, str) else "")
        (into / name).write_text(text.getvalue())


def skeleton(line):
    return NUMBER.sub("#", line)


def changed_numbers(before, after):
    """({old number: {(new number, file, line number, old line)}}, {file: lines whose shape changed})
    over the texts of two snapshots: lines aligned by their skeleton (numbers replaced by #) pair
    their numbers by position."""
    changes, reshaped = defaultdict(set), {}
    for old_path in sorted(path for pattern in TEXTS for path in Path(before).rglob(pattern)):
        name = old_path.relative_to(before)
        new_path = Path(after) / name
        if not new_path.exists():
            reshaped[str(name)] = ["(no new version)"]
            continue
        old, new = old_path.read_text().splitlines(), new_path.read_text().splitlines()
        matcher = difflib.SequenceMatcher(a=[skeleton(line) for line in old], b=[skeleton(line) for line in new],
                                          autojunk=False)
        for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes():
            if tag != "equal":
                if old_end > old_start:   # an insertion changes no quoted number
                    reshaped.setdefault(str(name), []).extend(old[old_start:old_end])
                continue
            for line_number, old_line, new_line in zip(range(old_start + 1, old_end + 1), old[old_start:old_end],
                                                       new[new_start:new_end]):
                for old_number, new_number in zip(NUMBER.findall(old_line), NUMBER.findall(new_line)):
                    if old_number != new_number:
                        source = (str(name), line_number, old_line.strip())
                        changes[old_number].add((new_number, *source))
                        for old_rounded, new_rounded in roundings(old_number, new_number):
                            changes[old_rounded].add((new_rounded, *source))
    return changes, reshaped


DECIMAL = re.compile(r"([-+−]?)(\d[\d,]*)\.(\d+)")


def roundings(old, new):
    """[(old, new)] at each coarser precision at which a doc may quote them, where they differ and
    the old one keeps 3 significant digits: (80.572, 80.767) -> [(80.57, 80.77), (80.6, 80.8)]; not
    0.46 for 0.461, which a doc quoting a margin or an s.e. would write in full and which matches
    too many unrelated small numbers."""
    old_parts, new_parts = DECIMAL.fullmatch(old), DECIMAL.fullmatch(new)
    if not (old_parts and new_parts):
        return []
    def rounded(parts, places):
        sign, whole, decimals = parts.groups()
        return sign + f"{float(whole.replace(',', '') + '.' + decimals):.{places}f}"
    pairs = [(rounded(old_parts, places), rounded(new_parts, places)) for places in range(len(old_parts[3]) - 1, 0, -1)]
    return [(old_rounded, new_rounded) for old_rounded, new_rounded in pairs
            if old_rounded != new_rounded and significant_digits(old_rounded) >= 3]


def significant_digits(number):
    return len(re.sub(r"[^\d]", "", number.split("e")[0]).lstrip("0"))


def distinctive(number):
    """Whether a number is unlikely to be quoted for another reason: 2 decimals or more, or 3
    significant digits with a decimal point (0.47, 58.91; not 3.3, a section, nor 88, a count,
    which match everywhere and are read by hand)."""
    mantissa = number.split("e")[0]
    if "." not in mantissa:
        return False
    return len(mantissa.split(".")[1]) >= 2 or significant_digits(number) >= 3


WORD = re.compile(r"[a-z][a-z0-9_-]{3,}")
COMMON = {"with", "than", "that", "from", "this", "over", "their", "each", "runs", "mini", "run's", "which", "when",
          "where", "they", "them", "there", "these", "those", "both", "what", "also", "only", "more", "less"}


def words(line):
    return set(WORD.findall(line.lower())) - COMMON


def candidates_for(old, line, changes):
    """The new values of `old` whose source line shares a word with the doc's `line` (what it
    measures, a claim's id), or all of them for a number of 4 significant digits or more."""
    every = sorted(changes[old])
    if significant_digits(old) >= 4:
        return every
    context = words(line)
    return [candidate for candidate in every if context & words(candidate[3])]


def distinctive_numbers(line):
    return {number for number in NUMBER.findall(line) if distinctive(number)}


def quoted_together(before):
    """The distinctive numbers each line of a snapshot's texts quotes, one set per line."""
    return [distinctive_numbers(line) for pattern in TEXTS for path in sorted(Path(before).rglob(pattern))
            for line in path.read_text().splitlines()]


def sources_of(old, line, changes, together):
    """The new values of `old`, quoted in the doc's `line`, to list. A doc line that quotes `old`
    beside other distinctive numbers quotes the line of the snapshot that holds them together: the
    changed lines that do are its sources; none is when only lines where `old` did not change do
    (0.06, the s.e. of 25.57 in one table, unchanged while 81.24 ± 0.06 of another changed);
    else candidates_for."""
    others = distinctive_numbers(line) - {old}
    beside = sorted(candidate for candidate in changes[old] if others & distinctive_numbers(candidate[3]))
    if beside:
        return beside
    if others and any(old in numbers and numbers & others for numbers in together):
        return []
    return candidates_for(old, line, changes)


def stale_lines(changes, docs, together=()):
    """[(doc, line number, line, [(old, sources)])] for each doc line quoting a changed
    distinctive number with a source (sources_of; `together`: quoted_together of the old snapshot)."""
    found = []
    for doc in docs:
        for number, line in enumerate(Path(doc).read_text().splitlines(), 1):
            hits = [(old, sources_of(old, line, changes, together)) for old in NUMBER.findall(line)
                    if old in changes and distinctive(old)]
            hits = [(old, sources) for old, sources in hits if sources]
            if hits:
                found.append((str(doc), number, line.strip(), hits))
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m figures.doc_numbers", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    take = commands.add_parser("snapshot", help="write the generated texts of a logs folder")
    take.add_argument("--results", required=True)
    take.add_argument("--into", required=True)
    compare = commands.add_parser("compare", help="list the doc lines that quote changed numbers")
    compare.add_argument("before")
    compare.add_argument("after")
    compare.add_argument("docs", nargs="*", default=[REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    args = parser.parse_args(argv)
    if args.command == "snapshot":
        snapshot(args.results, args.into)
        print(f"wrote the generated texts of {args.results} into {args.into}")
        return
    changes, reshaped = changed_numbers(args.before, args.after)
    for doc, number, line, hits in stale_lines(changes, args.docs, quoted_together(args.before)):
        print(f"{doc}:{number}: {line[:160]}")
        for old, candidates in hits:
            for new, source, source_line, text in candidates[:4]:
                print(f"    {old} -> {new}   ({source}:{source_line}: {text[:100]})")
    for name, lines in reshaped.items():
        print(f"{name}: {len(lines)} old lines whose shape changed (read them)", file=sys.stderr)


if __name__ == "__main__":
    main()
