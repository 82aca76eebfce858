"""Claims decided from the paper's configs without a run, and claims a scale cannot test: the bits
part of Fig. 1 counted as the engine counts them, checked against Sec. 3's formula by hand."""
import pytest
import torchvision

from codistill_experiments.vision.configured_bits import bits_per_update
from figures import registry
from figures.claims.configured import configured_job
from figures.claims.evaluation import evaluate, load_claims
from figures.claims.rule import FAILS, HOLDS, NOT_APPLICABLE
from figures.paths import REPO

PREDICTIONS = ("method=codistill", "schedule=codistill_tuned", "method.exchange=predictions")


@pytest.mark.slow
def test_the_bits_of_the_papers_configs_follow_section_3():
    """C_AR = 2 b_model; predictions (n - 1) x B x 1000 classes x 32 bits / T, B = 32 per GPU."""
    parameters = sum(p.numel() for p in torchvision.models.resnet50().parameters())
    assert parameters == 25_557_032
    assert bits_per_update(configured_job(("method=allreduce",))) == 2 * 32 * parameters   # 1.64e9 (paper: 1.6e9)
    for period in (1, 10):
        job = configured_job((*PREDICTIONS, f"method.period={period}"))
        assert bits_per_update(job) == pytest.approx(1 * 32 * 1000 * 32 / period)
    eight_bit = configured_job((*PREDICTIONS, "method.period=1", "method.prediction_bits=8"))
    assert bits_per_update(eight_bit) == 32 * (1000 * 8 + 32)   # int8 values and a float32 scale per row


def claim(min_ratio):
    return {"id": "c", "figure": "fig1", "section": "s", "claim": "c", "setting": "s", "metric": "bits_per_iteration",
            "scales": ["paper"], "check": {"kind": "configured_ratio", "a": ["method=allreduce"],
                                           "b": [*PREDICTIONS, "method.period=1"], "min_ratio": min_ratio}}


@pytest.mark.parametrize("min_ratio, verdict", [(1000, HOLDS), (1598, FAILS)])   # 1.636e9 / 1.024e6 = 1597.3
def test_a_configured_ratio_is_decided_at_paper_scale_without_logs(tmp_path, min_ratio, verdict):
    paper = registry.load(registry.SPECS["fig1"], tmp_path, "paper")     # no paper-scale logs at all
    assert paper.records.empty
    outcome = evaluate(claim(min_ratio), paper)
    assert outcome.status == verdict and "1,597x" in outcome.reproduced
    mini = registry.load(registry.SPECS["fig1"], REPO / "paper" / "logs", "mini")
    assert evaluate(claim(min_ratio), mini).status == NOT_APPLICABLE


def test_a_claim_untestable_at_a_scale_is_na_there_with_its_reason():
    [fig1] = [c for c in load_claims() if c["id"] == "fig1-1000x-fewer-bits"]
    mini = registry.load(registry.SPECS["fig1"], REPO / "paper" / "logs", "mini")
    assert not mini.records.empty
    outcome = evaluate(fig1, mini)
    assert outcome.status == NOT_APPLICABLE
    assert outcome.reproduced.startswith("not testable at mini scale: the ratio of all_reduce's bits")


def test_the_report_decides_a_configured_claim_where_no_paper_scale_logs_exist():
    from figures import report

    mini = {"fig1": registry.load(registry.SPECS["fig1"], REPO / "paper" / "logs", "mini")}
    outcomes = report.evaluate_all([claim(1000)], {"mini": mini})     # no "paper" logs at all
    assert outcomes[("c", "paper")].status == HOLDS and "1,597x" in outcomes[("c", "paper")].reproduced
    assert outcomes[("c", "mini")].status == NOT_APPLICABLE
