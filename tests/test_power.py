"""figures/claims/power.py: the seed counts declared for mini claims, simulated through the claims'
own checks, checked against statsmodels' analytic power of a one-sided two-sample t test and
against alternatives worked out by hand."""
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.power import TTestIndPower

from figures.claims import power
from figures.claims.noise import Resolution
from figures.claims.rule import HOLDS, INCONCLUSIVE

SD = 0.5


def pilot_records(means, seeds=3, sd=SD, models=2, rng=None):
    """A figure's eval records: for each method, `seeds` runs whose final val_nll (a metric without
    a validation-sample term) is its mean plus noise, each run's models around the run's value."""
    rng = rng or np.random.default_rng(0)
    rows = []
    for method, mean in means.items():
        for seed in range(seeds):
            value = mean + sd * rng.standard_normal()
            for model in range(models):
                for step, extra in ((10, 1.0), (20, 0.0)):   # an earlier evaluation the draws must ignore
                    rows.append({"run_id": f"{method}-{seed}", "seed": seed, "step": step, "model": model,
                                 "val_nll": value + extra + (0.01 if model else -0.01), "wall_time": 30.0 + step,
                                 "cfg.method.name": method, "cfg.seed": seed, "cfg.world_size": 2,
                                 "cfg.workload.name": "toy"})
    return pd.DataFrame(rows)


def claim(op, a="codistill", b="allreduce", **extra):
    return {"id": "toy", "figure": "toy", "metric": "val_nll",
            "check": {"kind": "compare", "a": {"method.name": a}, "b": {"method.name": b}, "op": op, **extra}}


@pytest.mark.slow
def test_simulated_power_of_a_direction_matches_the_t_test():
    """A directional claim at the pilot's effect: the share of draws that hold is the power of a
    one-sided t test at level 0.05 (Welch's df against the pooled test's: within Monte Carlo error)."""
    effect, seeds, draws = 0.6, 8, 600
    records = pilot_records({"codistill": 0.0, "allreduce": 0.0})
    simulation = power.Simulation(claim("greater"), records, Resolution([records]))
    simulation.means[simulation._settings_of({"method.name": "codistill"})] = effect
    simulation.means[simulation._settings_of({"method.name": "allreduce"})] = 0.0
    simulation.sds[:] = SD
    analytic = TTestIndPower().power(effect_size=effect / SD, nobs1=seeds, alpha=0.05, alternative="larger")
    simulated = simulation.power(seeds, draws, np.random.default_rng(1))
    assert simulated == pytest.approx(analytic, abs=0.06)   # Monte Carlo s.e. 0.019
    assert 0.5 < analytic < 0.9   # a case where the answer is not trivially 0 or 1


def test_the_pilot_sets_each_arm_and_a_floor_under_its_spread():
    records = pilot_records({"codistill": 2.0, "allreduce": 1.0}, sd=0.0)   # every seed alike: sd 0
    records.loc[records["run_id"] == "allreduce-2", "val_nll"] += 0.3      # one arm spread
    simulation = power.Simulation(claim("greater"), records, Resolution([records]))
    settings = simulation.pilot.settings.set_index("template")
    assert settings.loc["codistill-0", "mean"] == pytest.approx(2.0)
    assert settings.loc["allreduce-0", "mean"] == pytest.approx(1.1)
    assert settings.loc["allreduce-0", "sd"] == pytest.approx(np.std([1.0, 1.0, 1.3], ddof=1))
    # the floor is the median single-run sd over the settings: (0 + 0.173) / 2
    assert simulation.pilot.floor_sd == pytest.approx(np.std([1.0, 1.0, 1.3], ddof=1) / 2)
    assert simulation.sds.min() == pytest.approx(simulation.pilot.floor_sd)
    # one more seed of both arms costs their mean wall time (50 s) x 2 ranks each, in minutes
    assert simulation.cpu_minutes_per_seed() == pytest.approx(2 * 50 * 2 / 60)


def test_an_equivalence_claim_assumes_the_method_equal_to_its_reference_and_keeps_the_control():
    records = pilot_records({"codistill": 1.5, "allreduce": 1.0, "independent": 3.0}, sd=0.0)
    simulation = power.Simulation(claim("within", margin=0.2), records, Resolution([records]))
    by_method = {dict(part.split("=", 1) for part in setting.split("|"))["cfg.method.name"]: mean
                 for setting, mean in simulation.means.items()}
    assert by_method == {"codistill": 1.0, "allreduce": 1.0, "independent": 3.0}
    assert len(simulation.arms()) == 3   # the control is an arm of the claim
    assert "equal to its reference" in simulation.alternative


@pytest.mark.slow
def test_a_claim_the_draws_cannot_decide_has_no_power_and_one_they_always_decide_has_all():
    records = pilot_records({"codistill": 0.0, "allreduce": 0.0})
    tied = power.Simulation(claim("greater"), records, Resolution([records]))
    tied.means[:] = 0.0
    assert tied.power(5, 200, np.random.default_rng(2)) < 0.12   # only its false holds and fails: ~2 x 5 %
    far = power.Simulation(claim("greater"), records, Resolution([records]))
    far.means[far._settings_of({"method.name": "codistill"})] = 50.0
    assert far.power(3, 50, np.random.default_rng(3)) == 1.0


def test_the_declared_count_is_the_smallest_candidate_reaching_the_target_else_the_cap():
    assert power.declared_count({3: 0.81}) == 3
    assert power.declared_count({3: 0.2, 5: 0.6, 8: 0.83}) == 8
    assert power.declared_count({3: 0.2, 5: 0.3, 8: 0.5, 12: 0.7}) == power.CAP
    assert power.declared_count({3: 0.05, 5: 0.06, 8: 0.1, 12: 0.12}) == 3   # the cap would not decide it either


def test_kinds_read_beyond_final_values_are_not_simulated():
    assert "tradeoff" in power.why_not_simulated({"check": {"kind": "tradeoff"}})
    assert power.why_not_simulated({"scales": ["paper"], "check": {"kind": "compare"}}) == "not decided at mini scale"
    assert power.why_not_simulated(claim("greater")) is None


def test_a_verdict_short_of_its_declared_seeds_is_flagged(tmp_path, monkeypatch):
    """The flag beside a verdict names the count declared for its claim, not the paper's three."""
    from figures.claims import evaluation
    records = pilot_records({"codistill": 5.0, "allreduce": 0.0})
    data = type("Data", (), {"scale": "mini", "records": records, "problem": None})()
    record = tmp_path / "power.yaml"
    record.write_text("claims:\n  toy: {seeds: 8}\n")
    monkeypatch.setattr(evaluation, "declared_seeds",
                        lambda claim_id, scale: power.declared_seeds(claim_id, scale, power.load_power(record)))
    outcome = evaluation.evaluate(claim("greater"), data)
    assert outcome.status == HOLDS and outcome.reproduced.endswith("[FEWER THAN 8 SEEDS: 3]")
    record.write_text("claims:\n  toy: {seeds: 3}\n")
    power._read.cache_clear()
    assert "FEWER" not in evaluation.evaluate(claim("greater"), data).reproduced
    assert INCONCLUSIVE != outcome.status


def test_the_cpu_cap_bounds_the_added_seeds():
    assert power.declared_count({3: 0.2, 5: 0.9}, cpu_minutes_per_seed=60) == 5    # 2 more seeds: 120 min
    assert power.declared_count({3: 0.2, 5: 0.9}, cpu_minutes_per_seed=61) == 4    # one more is all it pays for
    assert power.declared_count({3: 0.2, 5: 0.9}, cpu_minutes_per_seed=400) == 3


def test_a_claim_no_candidate_decides_says_how_many_seeds_would():
    """Effect 0.5 at spread 0.5 (Cohen's d 1): the normal approximation 2 (z_0.95 + z_0.8)^2 / d^2
    gives 12.4 seeds per arm; the t test needs a little more."""
    records = pilot_records({"codistill": 0.5, "allreduce": 0.0}, sd=0.0)
    for seed, step in enumerate((0.5, -0.5, 0.0)):   # each arm's pilot s.d. exactly 0.5
        records.loc[records["seed"] == seed, "val_nll"] += step
    simulation = power.Simulation(claim("greater"), records, Resolution([records]))
    assert 13 <= power.seeds_to_decide(simulation) <= 14
    assert power.seeds_to_decide(power.Simulation(claim("within", margin=0.1), records, Resolution([records]))) is None


def test_a_claim_whose_figure_has_no_runs_yet_has_no_pilot():
    """A claim written before any run of its figure (a matched arm of its own sweep) cannot be simulated:
    NotRun, which `python -m figures.power` records as not simulated, at the pilot's three seeds."""
    from figures.claims.groups import NotRun
    empty = pd.DataFrame({"run_id": [], "seed": []})
    with pytest.raises(NotRun, match="no run of this figure has bleu"):
        power.analyse({"id": "toy", "metric": "bleu", "check": {"kind": "compare", "a": {"n_way": 2},
                                                                "b": {"n_way": 1}, "op": "greater"}},
                      empty, None, draws=10)
