"""The regime check's verdicts: invariants declared unmet in docs/mini-scale.md (a markdown table
under "Invariants declared unmet"), whether a declared value matches the measured one, each
check's verdict, and the table of verdicts per workload."""
import math
import re
from pathlib import Path

import pandas as pd

from ..paths import REPO

DOCS = REPO / "docs" / "mini-scale.md"
HOLDS, FAILS, DECLARED, MISSING, INFO = "holds", "fails", "declared unmet", "missing runs", "info"
DECLARATION_HEADING = re.compile(r"^#+\s*Invariants declared unmet\s*$", re.IGNORECASE)
# The docs quote the check's tables on the committed logs between these two headings (the first
# "### " heading after VALUES_HEADING opens the quote), one level down from the check's output.
VALUES_HEADING, VALUES_END = "### The committed logs' values", "### Declaring an invariant unmet"
NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def read_declarations(docs):
    """{(workload, invariant id): (declared measured value as written, reason)} from the markdown
    table under the heading "Invariants declared unmet" of `docs` (columns workload, invariant,
    measured, reason; backticks ignored). No such heading: none declared."""
    lines = Path(docs).read_text().splitlines() if Path(docs).exists() else []
    start = next((i for i, line in enumerate(lines) if DECLARATION_HEADING.match(line)), None)
    if start is None:
        return {}
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        if line.strip().startswith("|"):
            rows.append([cell.strip().strip("`").strip() for cell in line.strip().strip("|").split("|")])
    if not rows:
        return {}
    columns = [c.lower() for c in rows[0]]
    table = [dict(zip(columns, row)) for row in rows[2:]]   # rows[1]: the |---| separator
    return {(row["workload"], row["invariant"]): (row["measured"], row.get("reason", "")) for row in table}


def quoted_values(docs_text):
    """(start, end) line indices of the check's output quoted in `docs_text` (VALUES_HEADING)."""
    lines = docs_text.splitlines()
    try:
        heading, end = lines.index(VALUES_HEADING), lines.index(VALUES_END)
    except ValueError as missing:
        raise ValueError(f"the docs need the headings {VALUES_HEADING!r} and {VALUES_END!r} in that order") from missing
    start = next((i for i in range(heading + 1, end) if lines[i].startswith("### ")), end)
    return start, end


def quotation(check_text):
    """The part of the check's output the docs quote: from its first table's "## " heading to the
    end, each "## " heading one level down."""
    lines = check_text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("## "))
    return [("#" + line) if line.startswith("## ") else line for line in lines[first:]]


def with_quotation(docs_text, check_text):
    """`docs_text` quoting `check_text`'s tables in place of what it quoted."""
    lines = docs_text.splitlines()
    start, end = quoted_values(docs_text)
    return "\n".join(lines[:start] + quotation(check_text) + [""] + lines[end:]) + "\n"


def write_quotation(docs, check_text):
    """Makes `docs` quote `check_text`'s tables; True when that changed it."""
    old = Path(docs).read_text()
    new = with_quotation(old, check_text)
    Path(docs).write_text(new)
    return new != old


def quotes(docs, check_text):
    """Whether `docs` quotes `check_text`'s tables as they are."""
    text = Path(docs).read_text()
    return with_quotation(text, check_text) == text


def matches(declared, value):
    """The declared value, rounded as written, is the measured one: |declared - value| <= half a
    unit of its last written digit (thousands separators allowed)."""
    found = NUMBER.search(declared.replace(",", ""))
    if found is None or value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    text = found.group()
    decimals = len(text.split(".")[1]) if "." in text else 0
    return abs(float(text) - value) <= 0.5 * 10 ** -decimals + 1e-9


def verdict(check, declaration):
    """holds / fails / declared unmet / missing runs / info, with what is wrong with a declaration."""
    if check.info:
        return INFO
    if check.holds is None:
        return MISSING
    if check.holds:
        return HOLDS if declaration is None else f"{FAILS}: declared unmet but holds (remove the declaration)"
    if declaration is None:
        return FAILS
    if matches(declaration[0], check.value):
        return DECLARED
    return f"{FAILS}: declared {declaration[0]}, measured {check.value:.4g}"


def table(checks_by_workload, titles, gated, declarations):
    """(markdown table: invariant, bound, one column per workload; {(workload, id): (check, verdict)})."""
    rows, verdicts = {}, {}
    for name, checks in checks_by_workload.items():
        column = f"{name} ({'gated' if name in gated else 'reference'})"
        for check in checks:
            state = verdict(check, declarations.get((name, check.id)))
            rows.setdefault(check.id, {"invariant": f"{titles[check.id]} [{check.id}]", "bound": check.bound})
            rows[check.id][column] = f"{check.shown}: **{state}**"
            verdicts[(name, check.id)] = (check, state)
    return pd.DataFrame([rows[i] for i in titles if i in rows]).to_markdown(index=False), verdicts
