"""The verdict machinery's statistics on synthetic seeds: a direction is Welch's one-sided t-test at
level 0.05, an equivalence the two one-sided tests at its margin (TOST), decided draw for draw as
scipy's Welch tests decide them; "holds" at a true difference on the claim's boundary is said in at
most 5 % of 10,000 draws; the power of an equivalence claim between equal arms is reported."""
import math

import numpy as np
import pytest
from scipy.stats import ttest_ind

from figures.claims.groups import Stat
from figures.claims.noise import noise_of
from figures.claims.rule import ALPHA, FAILS, HOLDS, interval_verdict, slack

DRAWS, SEEDS = 10_000, 3
METRIC = "train_loss"   # no validation-sample term: the test alone


def stat(values):
    return Stat(float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))), len(values))


def verdicts(a, b, op, margin):
    """Each draw's verdict on mean(a) - mean(b) (op, margin), rows of a and b being the seeds."""
    out = []
    for x, y in zip(a, b):
        sx, sy = stat(x), stat(y)
        out.append(interval_verdict(sx.mean - sy.mean, noise_of(METRIC, (1, sx), (-1, sy)).width, op, margin))
    return np.array(out)


def seeds(rng, shift, scale_b=1.0):
    return rng.normal(shift, 1.0, (DRAWS, SEEDS)), rng.normal(0.0, scale_b, (DRAWS, SEEDS))


@pytest.mark.slow
def test_a_direction_holds_as_welchs_one_sided_test_rejects_and_at_most_5_percent_of_the_time_at_zero():
    a, b = seeds(np.random.default_rng(0), 0.0, scale_b=2.0)   # unequal variances: Welch's case
    ours = verdicts(a, b, "greater", 0.0) == HOLDS
    reference = ttest_ind(a, b, axis=1, equal_var=False, alternative="greater").pvalue < ALPHA
    assert np.array_equal(ours, reference)
    assert ours.mean() <= 0.05


@pytest.mark.slow
def test_an_equivalence_holds_as_the_two_one_sided_tests_reject_and_at_most_5_percent_of_the_time_at_its_margin():
    margin = 1.5
    a, b = seeds(np.random.default_rng(1), margin)   # the true difference on the boundary
    ours = verdicts(a, b, "within", margin) == HOLDS
    below = ttest_ind(a - margin, b, axis=1, equal_var=False, alternative="less").pvalue < ALPHA
    above = ttest_ind(a + margin, b, axis=1, equal_var=False, alternative="greater").pvalue < ALPHA
    assert np.array_equal(ours, below & above)
    assert ours.mean() <= 0.05


@pytest.mark.slow
@pytest.mark.parametrize("margin_in_seed_se, power_at_least", [(7, 0.85), (14, 0.99)])
def test_the_power_of_an_equivalence_between_equal_arms(margin_in_seed_se, power_at_least, capsys):
    """The mini claims' margins are 7 or 14 seed standard errors (sd / sqrt 3): between equal arms,
    how often "within" holds."""
    margin = margin_in_seed_se / math.sqrt(SEEDS)
    a, b = seeds(np.random.default_rng(2), 0.0)
    power = (verdicts(a, b, "within", margin) == HOLDS).mean()
    with capsys.disabled():
        print(f"\npower of 'within {margin_in_seed_se} seed s.e.' between equal arms, {SEEDS} seeds each: {power:.3f}")
    assert power >= power_at_least


def test_slack_is_how_far_a_decided_interval_lies_beyond_its_boundary():
    assert slack(1.0, 0.25, "greater") == pytest.approx(0.75)          # holds: 0.75 - 0
    assert slack(-1.0, 0.25, "greater") == pytest.approx(0.75)         # does not hold: 0 - (-0.75)
    assert math.isnan(slack(0.1, 0.25, "greater"))                     # undecided
    assert slack(0.1, 0.2, "within", 0.5) == pytest.approx(0.2)        # |0.1| + 0.2 = 0.3 <= 0.5
    assert slack(1.0, 0.2, "within", 0.5) == pytest.approx(0.3)        # 0.8 beyond 0.5
    assert interval_verdict(1.0, 0.2, "within", 0.5) == FAILS
