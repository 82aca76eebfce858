"""One record per figure (paper/figures/<id>.yaml): each arm, claim and control of a figure is written
there and nowhere else. The figures code reads the records; what it may not do is select runs by
config values of its own, name claims, or keep a second list of figures."""
import ast
import re
from pathlib import Path

import pytest
import yaml

from figures import records, registry
from figures.claims import findings
from figures.claims.control import control_group, equivalence_sides
from figures.claims.evaluation import load_claims

REPO = Path(__file__).resolve().parents[1]
# A config key as a selector names it (method.name, schedule.name, workload.arch, data.fraction ...).
SELECTOR_KEY = re.compile(r"^(method|schedule|workload|data|scale)\.[a-z_.]+$")
# The verdict rule's one derivation of a control from a method's arm (figures/claims/control.py): a rule
# over every claim, not an arm of one figure; the record must still name the arm it yields (tested below).
RULE = {("figures/claims/control.py", "control_group")}


def _function_of(tree):
    """{node: the name of the function enclosing it}."""
    owner = {}
    for function in ast.walk(tree):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                owner.setdefault(node, function.name)
    return owner


def definitions_outside_records(root=REPO):
    """What the figures code defines that belongs in a record: selectors (a dict keyed by config keys, or
    by tuples of config values), claim ids, and Spec(...) beyond the one built from each record."""
    claim_ids = {claim["id"] for rec in records.load_records() for claim in rec.claims}
    found = []
    for path in sorted((root / "figures").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text())
        owner = _function_of(tree)
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Dict):
                keys = [k for k in node.keys if k is not None]
                if (rel, owner.get(node)) in RULE:
                    continue
                if any(isinstance(k, ast.Constant) and isinstance(k.value, str) and SELECTOR_KEY.match(k.value)
                       for k in keys):
                    found.append(f"{where}: a selector (dict keyed by config keys)")
                elif any(isinstance(k, ast.Tuple) and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                                          for e in k.elts) for k in keys):
                    found.append(f"{where}: arms keyed by tuples of config values")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in claim_ids:
                found.append(f"{where}: the claim id {node.value!r}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Spec"
                  and owner.get(node) != "_spec"):
                found.append(f"{where}: a figure's Spec written in code")
    return found


def test_no_figure_code_defines_an_arm_a_claim_or_a_figure():
    assert definitions_outside_records() == []


def test_the_scan_finds_a_selector_a_claim_id_and_a_spec_written_in_code(tmp_path):
    """The scan itself can fail: code defining Fig. 2's arms by (method, schedule), naming a headline
    claim and a figure's Spec is flagged, each line by line."""
    module = Path("figures", "drawing", "made_up.py")
    (tmp_path / module).parent.mkdir(parents=True)
    (tmp_path / module).write_text(
        'RECIPES = {("allreduce", "goyal_step"): "all_reduce"}\n'
        'GROUP = {"method.name": "codistill", "schedule.name": "goyal_step_half"}\n'
        'HEADLINES = ["fig2-fixed-wd-costs-top1"]\n'
        'SPEC = Spec("fig9", "figure", "t", "s", None)\n')
    found = definitions_outside_records(tmp_path)
    assert sorted(line.split(": ", 1)[0] for line in found) == [f"{module.as_posix()}:{n}" for n in (1, 2, 3, 4)]


def test_no_claims_are_written_beside_the_records():
    """The claims live in the records alone: no claims file under paper/ besides them."""
    others = [p for p in (REPO / "paper").rglob("*.yaml") if "logs" not in p.parts and p.parent != records.RECORDS
              and "claims" in (yaml.safe_load(p.read_text()) or {})]
    assert not (REPO / "paper" / "claims.yaml").exists() and others == []


def test_every_group_of_a_claim_is_an_arm_of_its_record():
    for rec in records.load_records():
        for claim in rec.claims:
            check = claim["check"]
            for key in records.GROUP_FIELDS:
                if key in check and not (isinstance(check[key], list) and check["kind"] == "configured_ratio"):
                    assert isinstance(check[key], str) and check[key] in rec.arms, (rec.id, claim["id"], key)
            for candidate in check.get("candidates", []):
                assert candidate["group"] in rec.arms, (rec.id, claim["id"], candidate["label"])


def test_every_control_a_verdict_reads_is_an_arm_of_its_record():
    """A claim judged against the alpha = 0 control reads the rule's control group (or the one it names):
    that group is an arm of the claim's record, so a reader finds it there."""
    checked = 0
    for claim in load_claims():
        sides = equivalence_sides(claim["check"])
        if not sides:
            continue
        control = control_group(claim["check"][sides[0]], claim["check"])
        assert control in records.record(claim["figure"]).arms.values(), (claim["id"], control)
        checked += 1
    assert checked >= 30   # Fig. 2, 3, 8, 13, the frontiers' and the tuned comparisons


def test_the_registry_findings_and_drawings_read_the_records():
    recs = records.load_records()
    assert [spec.id for spec in registry.SPEC_LIST] == [rec.id for rec in recs]
    assert {spec.id: (spec.title, spec.sweep_id, spec.source) for spec in registry.SPEC_LIST} == {
        rec.id: (rec.title, rec.sweep_id, rec.source) for rec in recs}
    headline = [claim["id"] for rec in recs if rec.source == records.SODHANI for claim in rec.claims
                if claim.get("headline")]
    assert findings.HEADLINES == headline and len(headline) == 18
    assert [row[1] for row in findings.CONTROLLED] == [row["label"] for rec in recs for row in rec.controls]
    from figures.drawing import fig2
    fig2_record = records.record("fig2")
    assert list(fig2.RECIPES.values()) == list(fig2_record.drawn)
    assert all(fig2_record.arm(label) == {"method.name": m, "schedule.name": s} for (m, s), label in fig2.RECIPES.items())


def test_a_record_naming_an_arm_it_lacks_is_refused_naming_the_file(tmp_path, monkeypatch):
    (tmp_path / "contents.yaml").write_text("- figx\n")
    (tmp_path / "figx.yaml").write_text(yaml.safe_dump({
        "id": "figx", "kind": "figure", "title": "t", "section": "s", "draw": "fig2.fig2",
        "arms": {"all_reduce": {"method.name": "allreduce"}},
        "claims": [{"id": "x", "section": "s", "claim": "c", "setting": "s", "metric": "val_top1",
                    "check": {"kind": "compare", "a": "codistillation", "b": "all_reduce", "op": "greater"}}]}))
    monkeypatch.setattr(records, "RECORDS", tmp_path)
    monkeypatch.setattr(records, "CONTENTS", tmp_path / "contents.yaml")
    records._all.cache_clear()
    try:
        with pytest.raises(records.RecordError, match=r"figx.yaml: 'codistillation' is not an arm of figx"):
            records.claims()
        (tmp_path / "figy.yaml").write_text("id: figy\n")
        records._all.cache_clear()
        with pytest.raises(records.RecordError, match="must list each record"):
            records.load_records()
    finally:
        records._all.cache_clear()


def test_power_written_into_a_record_is_read_back_and_keeps_the_rest(tmp_path, monkeypatch):
    source = records.RECORDS / "fig5.yaml"
    (tmp_path / "contents.yaml").write_text("- fig5\n")
    (tmp_path / "fig5.yaml").write_text(source.read_text())
    monkeypatch.setattr(records, "RECORDS", tmp_path)
    monkeypatch.setattr(records, "CONTENTS", tmp_path / "contents.yaml")
    records._all.cache_clear()
    try:
        before = records.record("fig5")
        records.write_power({"fig5-no-gain-from-4-way": {"seeds": 5, "power": {3: 0.5, 5: 0.9}}})
        after = records.record("fig5")
        assert records.power() == {"fig5-no-gain-from-4-way": {"seeds": 5, "power": {3: 0.5, 5: 0.9}}}
        assert (after.arms, after.claims, after.title) == (before.arms, before.claims, before.title)
        assert (tmp_path / "fig5.yaml").read_text().count(records.POWER_MARK) == 1
    finally:
        records._all.cache_clear()
