"""figures/claims/multiplicity.py: a verdict's p-value is the rule's own (for a plain comparison,
scipy's Welch test), and Benjamini and Hochberg's correction worked by hand."""
import numpy as np
import pytest
from scipy.stats import ttest_ind
from test_power import claim, pilot_records

from figures.claims import multiplicity
from figures.claims.evaluation import Outcome
from figures.claims.noise import Resolution
from figures.claims.rule import FAILS, HOLDS, INCONCLUSIVE


@pytest.mark.parametrize("op, shift", [("greater", 0.8), ("less", -1.2), ("greater", -0.9)])
def test_the_p_value_of_a_comparison_is_welchs(op, shift):
    """A directional compare on a metric without a validation-sample term: holds (or does not) at
    level a exactly when Welch's one-sided test rejects at a, so the bisected p-value is scipy's."""
    records = pilot_records({"codistill": shift, "allreduce": 0.0}, seeds=5, rng=np.random.default_rng(4))
    final = records[records["step"] == 20].groupby("run_id").agg(method=("cfg.method.name", "first"),
                                                                value=("val_nll", "mean"))
    a, b = (final.loc[final["method"] == m, "value"] for m in ("codistill", "allreduce"))
    toward = "greater" if shift > 0 else "less"   # the side its verdict (holds or does not) lies on
    expected = ttest_ind(a, b, equal_var=False, alternative=toward).pvalue
    assert expected < 0.05   # decided at the rule's level
    p = multiplicity.p_value(claim(op), records, "mini", Resolution([records]))
    assert p == pytest.approx(expected, rel=0.03)


def test_an_undecided_claim_has_the_level_that_would_decide_it():
    """d = 0.1, s.e. 0.1 over 3 and 3 seeds, one arm without spread: Welch's t = 1 at df 2, one-sided p 0.211."""
    records = pilot_records({"codistill": 0.0, "allreduce": 0.0}, sd=0.0)
    records.loc[records["run_id"] == "codistill-0", "val_nll"] += 0.3
    p = multiplicity.p_value(claim("greater"), records, "mini", Resolution([records]))
    assert p == pytest.approx(0.2113, rel=0.03)
    records.loc[records["run_id"] == "codistill-0", "val_nll"] -= 0.4   # d = 0 exactly: p one-sided 0.5
    records.loc[records["run_id"] == "codistill-1", "val_nll"] += 0.1
    assert multiplicity.p_value(claim("greater"), records, "mini", Resolution([records])) == pytest.approx(0.5, rel=0.03)
    assert multiplicity.p_value(claim("greater"), records[records["cfg.method.name"] == "allreduce"], "mini",
                                Resolution([records])) is None   # a group without runs: nothing tested


def test_benjamini_hochberg_by_hand():
    """p = 0.01, 0.04, 0.03, 0.2 (m = 4): sorted, each x m / rank, then the running minimum from the
    largest: 0.2 x 4/4 = 0.2, 0.04 x 4/3 = 0.0533, 0.03 x 4/2 = 0.06 -> 0.0533, 0.01 x 4/1 = 0.04."""
    corrected = multiplicity.adjust({"x": 0.01, "y": 0.04, "z": 0.03, "w": 0.2})
    assert {k: round(v[1], 4) for k, v in corrected.items()} == {"x": 0.04, "y": 0.0533, "z": 0.0533, "w": 0.2}
    assert [corrected[k][2] for k in "xyzw"] == [True, False, False, False]


def test_a_verdict_the_correction_undoes_is_inconclusive():
    assert multiplicity.corrected_status(Outcome(HOLDS, "", adjusted=0.2)) == INCONCLUSIVE
    assert multiplicity.corrected_status(Outcome(FAILS, "", adjusted=0.01)) == FAILS
    assert multiplicity.corrected_status(Outcome(INCONCLUSIVE, "")) == INCONCLUSIVE
