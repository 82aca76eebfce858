"""The checkpoint-exchange collapse at T = 18 on mini digits (docs/checkpoint-collapse.md): a
resonance between the exchange period and SGD momentum, not a defect of the exchange. Pinned on
the linear model the doc uses and on short runs of the real engine."""
import sys

import numpy as np
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from checkpoint_resonance import compose, growth_per_exchange, period_map, run_probed, swap_growth  # noqa: E402

# The sweeps' recipe (codistill_tuned at mini) over its first 6 epochs: LR 0.0125 and weight
# decay 1e-4 until epoch 18, so these updates are those of the full runs of fig1/fig13.
FIRST_EPOCHS = ["schedule.epochs=6", "schedule.lr.milestones=[]", "schedule.weight_decay.values=[1e-4]",
                "schedule.weight_decay.milestones=[]", "seed=0"]


def test_period_map_by_hand():
    # T = 2, m = 0.9, h = 0.1. From (d, w) = (1, 0): w = 0.1 * 2 = 0.2, d = 0.8; then
    # w = 0.9 * 0.2 + 0.1 * 1.8 = 0.36, d = 0.44. From (0, 1): w = 0.9, d = -0.9; then
    # w = 0.81 + 0.1 * (-0.9) = 0.72, d = -1.62.
    np.testing.assert_allclose(period_map(0.1, 2, 0.9), [[0.44, -1.62], [0.36, 0.72]], atol=1e-12)


@pytest.mark.parametrize("h, period", [(0.05, 9), (0.3, 18), (0.9, 37)])
def test_without_momentum_the_gap_shrinks_by_the_closed_form(h, period):
    # m = 0: d + d_start decays by (1 - h) per update, so d_T = (2 (1 - h)^T - 1) d_start.
    assert growth_per_exchange(h, period, 0.0) == pytest.approx(abs(2 * (1 - h) ** period - 1))
    assert growth_per_exchange(h, period, 0.0) <= 1.0


def test_with_momentum_a_band_of_periods_makes_the_gap_grow():
    h, momentum = 0.03, 0.9
    assert growth_per_exchange(h, 18, momentum) > 1.5        # half the momentum oscillation
    assert growth_per_exchange(h, 9, momentum) < 1.0         # the pull has not overshot yet
    assert growth_per_exchange(h, 37, momentum) < 1.0        # a whole oscillation: back in phase
    # Overdamped heavy ball (h <= (1 - sqrt(m))^2): no period resonates.
    overdamped = 0.9 * (1 - np.sqrt(momentum)) ** 2
    assert max(growth_per_exchange(overdamped, period, momentum) for period in range(1, 300)) <= 1.0


@pytest.mark.slow
def test_engine_at_T18_models_swap_and_their_gap_grows_until_top1_collapses(tmp_path):
    exchanges, evals = run_probed(compose(["method.period=18", *FIRST_EPOCHS], tmp_path))
    own = exchanges[(exchanges.model == 0) & (exchanges.teacher == 0)].set_index("step")
    assert list(own.index[:11]) == list(range(0, 181, 18))
    # From update 72 each exchange flips the gap's sign and it grows 4x by update 180 ...
    assert (own.loc[72:180, "cos"] <= -0.7).all()
    assert own.loc[180, "gap"] >= 4 * own.loc[54, "gap"]
    # ... because each model overshoots past the stale teacher it was pulled towards.
    assert own.loc[72:180, "r"].median() < -0.05
    assert swap_growth(exchanges) >= 8
    # Not the uncentred part: the gap's mean over classes (which softmax ignores) stays < 10 % of it.
    assert (own.loc[72:180, "offset"] <= 0.1 * own.loc[72:180, "gap"]).all()
    # The symptom in the logs: the distillation MSE rises 10x and top-1 falls by 10+ points.
    by_epoch = evals.groupby("epoch")
    distill, top1 = by_epoch.train_distill_loss.mean(), by_epoch.val_top1.min()
    assert distill.iloc[4] >= 10 * distill.iloc[1]
    assert top1.iloc[:3].max() - top1.iloc[3:].min() >= 10


@pytest.mark.slow
def test_engine_at_T18_without_momentum_same_effective_step_stays_close(tmp_path):
    # LR x 10 without momentum: the same lr / (1 - m) per update, no overshoot.
    exchanges, evals = run_probed(compose(["method.period=18", "schedule.momentum=0", "schedule.lr.base=1.0",
                                           *FIRST_EPOCHS], tmp_path))
    own = exchanges[(exchanges.model == 0) & (exchanges.teacher == 0)].set_index("step")
    assert own.loc[180, "gap"] < 1.0
    assert swap_growth(exchanges) < 2
    assert evals.groupby("epoch").val_top1.min().min() >= 85
