"""The verdict rule lives in one module (figures/claims/rule.py): its functions against hand-computed
cases, its prose generated from its constants and printed by the report, no other module deciding a
verdict, and no other file restating the prose."""
import ast
import math
import re
from pathlib import Path

import pytest

from figures import report
from figures.claims import rule
from figures.claims.noise import Noise
from figures.claims.rule import CANNOT_DISCRIMINATE, FAILS, HOLDS, INCONCLUSIVE

REPO = Path(__file__).resolve().parents[1]
RULE = REPO / "figures" / "claims" / "rule.py"
DECIDED = {"HOLDS", "FAILS", "INCONCLUSIVE", "CANNOT_DISCRIMINATE"}
# The regime check judges the stand-ins' invariants against bounds, not claims: its own verdicts.
OTHER_RULES = {REPO / "figures" / "regime"}


# ---------------------------------------------------------------- the decision functions, by hand

@pytest.mark.parametrize("d, width, op, margin, expected", [
    (2.0, 1.0, "greater", 0.0, HOLDS),          # [1, 3] > 0
    (0.5, 1.0, "greater", 0.0, INCONCLUSIVE),   # [-0.5, 1.5] straddles 0
    (-2.0, 1.0, "greater", 0.0, FAILS),         # [-3, -1] <= 0
    (1.0, 1.0, "greater", 0.0, INCONCLUSIVE),   # [0, 2]: 0 is not > 0, 2 is not <= 0
    (-2.0, 1.0, "less", 0.0, HOLDS),
    (0.2, 0.3, "within", 0.5, HOLDS),           # [-0.1, 0.5]: the boundary 0.5 counts as within
    (0.7, 0.1, "within", 0.5, FAILS),           # [0.6, 0.8] wholly beyond 0.5
    (0.5, 0.1, "within", 0.5, INCONCLUSIVE),    # [0.4, 0.6]
    (-0.4, 0.1, "at_least", 0.5, HOLDS),        # [-0.5, -0.3] >= -0.5
    (-0.7, 0.1, "at_least", 0.5, FAILS),        # [-0.8, -0.6] < -0.5
    (math.nan, 1.0, "greater", 0.0, INCONCLUSIVE),
])
def test_an_interval_against_a_bound(d, width, op, margin, expected):
    assert rule.interval_verdict(d, width, op, margin) == expected


def test_the_slack_and_a_borderline_decision():
    assert rule.slack(2.0, 1.0, "greater") == pytest.approx(1.0)      # low 1 beyond 0 by 1
    assert math.isnan(rule.slack(0.5, 1.0, "greater"))
    # s.e. 0, one validation sample 0.2: width 0.2; d = 0.3 clears 0 by 0.1 < 0.2: borderline
    verdict, shown = rule.decision(0.3, Noise(se=0.0, sample=0.2), "greater")
    assert verdict == HOLDS and shown == f"; slack 0.1000: {rule.BORDERLINE}, within one validation sample (0.200)"
    assert rule.decision(1.0, Noise(se=0.0, sample=0.2), "greater") == (HOLDS, "; slack 0.800")
    assert rule.decision(0.1, Noise(se=0.0, sample=0.2), "greater") == (INCONCLUSIVE, "")


def test_verdicts_made_of_verdicts():
    assert rule.every(HOLDS, HOLDS) == HOLDS
    assert rule.every(HOLDS, INCONCLUSIVE) == INCONCLUSIVE
    assert rule.every(HOLDS, INCONCLUSIVE, FAILS) == FAILS
    assert rule.some([FAILS, INCONCLUSIVE, HOLDS]) == HOLDS
    assert rule.some([FAILS, INCONCLUSIVE]) == INCONCLUSIVE
    assert rule.some([FAILS]) == FAILS and rule.some([]) == FAILS
    # the gap 1 within its noise 2: nothing to recover; a gap 3 ± 1 and a contrast 2 ± 1: holds
    assert rule.recovers(1.0, 2.0, 5.0, 0.1) == (INCONCLUSIVE, "no gap beyond the noise to recover")
    assert rule.recovers(3.0, 1.0, 2.0, 1.0) == (HOLDS, "")
    assert rule.recovers(3.0, 1.0, -2.0, 1.0) == (FAILS, "")
    assert rule.ratio_verdict(1000.0, 1000) == HOLDS and rule.ratio_verdict(999.9, 1000) == FAILS
    assert rule.value_margin(0.5, 76.1) == pytest.approx(0.5 + 76.1e-9)
    assert rule.seeds_flag(2) == " [FEWER THAN 3 SEEDS: 2]" and rule.seeds_flag(3) == ""


@pytest.mark.parametrize("costs, with_control, expected", [
    ((1.0, 1.0, math.inf, math.inf), True, HOLDS),               # only theirs reaches
    ((math.inf, math.inf, 5.0, 5.0), True, FAILS),               # none of theirs could
    ((5.0, 1.0, 3.0, 2.0), True, INCONCLUSIVE),                  # theirs surely at 5, another possibly at 2
    ((4.0, 1.0, 1.0, 1.0), True, FAILS),                         # another surely at 1, theirs at best 1
    ((1.0, 1.0, math.inf, math.inf), False, CANNOT_DISCRIMINATE),  # no control in the logs
    ((math.inf, math.inf, 5.0, 5.0), False, FAILS),
])
def test_the_fewest_bits(costs, with_control, expected):
    assert rule.cheapest(*costs, with_control=with_control) == expected


def test_the_control():
    # the control 2 below all_reduce with noise 0.5: 1.5 beyond zero on either bounded side
    assert rule.control_distance(-2.0, 0.5, "within") == pytest.approx(1.5)
    assert rule.control_distance(-2.0, 0.5, "at_least") == pytest.approx(1.5)
    assert rule.control_distance(2.0, 0.5, "at_least") == pytest.approx(-2.5)   # above all_reduce: passes
    assert rule.control_fails(1.5, 1.0) and rule.control_fails(1.5, 1.5)
    assert not rule.control_fails(1.5, 2.0) and not rule.control_fails(0.0, 0.0)
    assert not rule.control_fails(math.nan, 0.0)
    assert rule.capped_margin(2.0, 1.5, "mini") == (1.5, True)
    assert rule.capped_margin(2.0, -1.0, "mini") == (0.0, True)
    assert rule.capped_margin(1.0, 1.5, "mini") == (1.0, False)
    assert rule.capped_margin(2.0, 1.5, "paper") == (2.0, False)
    assert rule.with_control_verdict(HOLDS, True) == HOLDS
    assert rule.with_control_verdict(HOLDS, False) == CANNOT_DISCRIMINATE
    assert rule.with_control_verdict(INCONCLUSIVE, False) == CANNOT_DISCRIMINATE
    assert rule.with_control_verdict(FAILS, False) == FAILS
    # reaching all_reduce (0 ± 0.1 within 0.5) while beating the control (2 ± 1): holds
    assert rule.reaches(0.0, 0.1, 0.5, (2.0, 1.0)) == HOLDS
    assert rule.reaches(0.0, 0.1, 0.5, None) == INCONCLUSIVE
    assert rule.reaches(0.0, 0.1, 0.5, (-3.0, 1.0)) == FAILS
    assert rule.reaches(-1.0, 0.1, 0.5, (2.0, 1.0)) == FAILS


# ---------------------------------------------------------------- the prose, from the constants

def test_the_prose_is_built_from_the_rules_constants(monkeypatch):
    text = "\n".join(rule.prose())
    for verdict in (HOLDS, FAILS, INCONCLUSIVE, CANNOT_DISCRIMINATE):
        assert f"**{verdict}**" in text
    assert "level 0.05" in text and "at most 5 % of cases" in text and "3 seeds per arm give about 2 to 4" in text
    monkeypatch.setattr(rule, "ALPHA", 0.1)
    monkeypatch.setattr(rule, "SEEDS", 4)
    monkeypatch.setattr(rule, "CANNOT_DISCRIMINATE", "undecidable")
    text = "\n".join(rule.prose())
    assert "level 0.1" in text and "at most 10 % of cases" in text and "4 seeds per arm give about 3 to 6" in text
    assert "**undecidable**" in text and "90 % t quantile" in rule.summary()


def _section(markdown, heading):
    lines = markdown.splitlines()
    start = lines.index(f"## {heading}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start + 1:end])


def test_the_report_prints_the_rules_prose():
    assert report.noise_section({})[:len(rule.prose()) + 3] == [f"## {rule.HEADING}", "", *rule.prose(), ""]
    committed = (REPO / "paper" / "report.md").read_text()
    assert "\n".join(rule.prose()) in _section(committed, rule.HEADING), "make report: the rule's prose changed"
    assert rule.summary() in _section(committed, "Findings"), "make report: the rule's summary changed"


def _words(text):
    return re.findall(r"[a-z0-9_=]+", text.lower())


def _shingles(words, n):
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def restating_files():
    """The files that could restate the rule: docs, READMEs, the claims file, the figures code."""
    files = [*(REPO / "docs").rglob("*.md"), REPO / "README.md", REPO / "paper" / "README.md",
             *(REPO / "paper" / "figures").glob("*.yaml"), *(REPO / "figures").rglob("*.py")]
    return [path for path in files if path != RULE and path.exists()]


def test_no_other_file_restates_the_rule():
    """No run of 10 words of the rule's prose appears in docs/, the READMEs, the figures' records or
    figures/ outside rule.py: they link to the report's section or to the module instead. What the
    control is (rule.CONTROL, a definition) may be repeated."""
    n = 10
    text = ("\n".join(rule.prose()) + "\n" + rule.summary()).replace(rule.CONTROL, "\n")
    assert text.count("\n") > len(rule.prose())   # the definition was there to take out
    prose = set().union(*(_shingles(_words(part), n) for part in text.split("\n")))
    restated = {}
    for path in restating_files():
        found = prose & _shingles(_words(path.read_text()), n)
        if found:
            restated[str(path.relative_to(REPO))] = sorted(found)[:3]
    assert not restated, f"the rule's prose restated outside figures/claims/rule.py: {restated}"


# ---------------------------------------------------------------- no verdict decided elsewhere

def _decided_outside(path):
    """(line, what) of each place `path` makes a verdict of its own: a verdict constant returned,
    assigned or chosen by a conditional expression, or a verdict's literal string."""
    tree = ast.parse(path.read_text())
    found = []

    def verdict_name(node):
        return isinstance(node, ast.Name) and node.id in DECIDED

    for node in ast.walk(tree):
        values = []
        if isinstance(node, ast.Return) and node.value is not None:
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            values = [node.value]
        elif isinstance(node, ast.IfExp):
            values = [node.body, node.orelse]
        found += [(node.lineno, value.id) for value in values if verdict_name(value)]
        if isinstance(node, ast.Constant) and node.value in rule.VERDICTS[:4]:
            found.append((node.lineno, repr(node.value)))
    return found


def test_no_verdict_is_decided_outside_the_rule():
    modules = [path for path in (REPO / "figures").rglob("*.py")
               if path != RULE and not any(other in path.parents for other in OTHER_RULES)]
    decided = {str(path.relative_to(REPO)): where for path in modules if (where := _decided_outside(path))}
    assert not decided, f"verdicts decided outside figures/claims/rule.py: {decided}"


def test_the_rules_constants_live_in_the_rule_alone():
    """The thresholds (the test's level, the boundary slack, the seeds wanted) are assigned only in
    rule.py; the other modules import them."""
    for path in (REPO / "figures").rglob("*.py"):
        if path == RULE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                names = {t.id for t in node.targets if isinstance(t, ast.Name)}
                assert not names & {"ALPHA", "EPS", "SEEDS", "EQUIVALENCE_OPS", "BORDERLINE", *DECIDED}, \
                    f"{path.relative_to(REPO)}:{node.lineno} assigns {names}"


def test_the_detector_finds_a_verdict_decided_by_hand(tmp_path):
    """The check above is not vacuous: a module deciding by hand is caught."""
    module = tmp_path / "by_hand.py"
    module.write_text("from figures.claims.rule import FAILS, HOLDS\n\ndef check(ratio):\n"
                      "    return HOLDS if ratio >= 1000 else FAILS\n\ndef other():\n    return 'inconclusive', ''\n")
    assert sorted(_decided_outside(module)) == [(4, "FAILS"), (4, "HOLDS"), (7, "'inconclusive'")]
