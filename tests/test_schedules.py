"""Schedules against values computed by hand from the paper's recipes."""
import math

import pytest
from omegaconf import OmegaConf

from codistill import AlphaSchedule
from codistill_experiments.run_schedules import build_schedules
from codistill_experiments.schedules import LRSchedule, PiecewiseConstant


def test_goyal_warmup_then_step_decays():
    # 10 updates per epoch, warm-up 5 epochs from 0.1 to 0.1 * 512/256 = 0.2, decays at 30/60/80.
    lr = LRSchedule(base=0.1, peak=0.2, warmup_steps=50, total_steps=900, milestones=(300, 600, 800))
    assert lr(0) == pytest.approx(0.1)
    assert lr(25) == pytest.approx(0.15)
    assert lr(50) == pytest.approx(0.2)
    assert lr(299) == pytest.approx(0.2)
    assert lr(300) == pytest.approx(0.02)
    assert lr(600) == pytest.approx(0.002)
    assert lr(899) == pytest.approx(0.0002)


def test_no_warmup_when_the_batch_is_below_the_reference():
    # b = 32: peak 0.1 * 32/256 = 0.0125 from the first update on.
    lr = LRSchedule(base=0.1, peak=0.0125, warmup_steps=50, total_steps=900, milestones=(300,))
    assert lr(0) == lr(49) == pytest.approx(0.0125)
    assert lr(300) == pytest.approx(0.00125)


def test_cosine_after_warmup():
    lr = LRSchedule(base=0.1, peak=0.4, warmup_steps=10, total_steps=110, kind="cosine")
    assert lr(10) == pytest.approx(0.4)
    assert lr(60) == pytest.approx(0.2)
    assert lr(110) == pytest.approx(0.0, abs=1e-12)


def test_decaying_weight_decay_of_tuned_codistillation():
    wd = PiecewiseConstant(values=(1e-4, 1e-5, 0.0), milestones=(180, 380))
    assert [wd(s) for s in (0, 179, 180, 379, 380, 449)] == [1e-4, 1e-4, 1e-5, 1e-5, 0.0, 0.0]


def test_alpha_schedules():
    assert AlphaSchedule(alpha=1.0)(0) == 1.0   # the burn-in is the Codistiller's (test_burn_in_is_the_codistillers)
    exponential = AlphaSchedule(alpha=2.0, kind="exponential", gamma=1.1, steps_per_epoch=100)
    assert exponential(99) == pytest.approx(2.0)
    assert exponential(250) == pytest.approx(2.0 * 1.1 ** 2)
    step = AlphaSchedule(alpha=0.5, kind="step", step_factor=2.0, milestones=(10, 20))
    assert [step(s) for s in (9, 10, 25)] == [0.5, 1.0, 2.0]


def test_build_from_the_tuned_codistillation_config():
    # codistill_tuned: 45 epochs, warm-up 2.5, LR decays at 18/38/44, w.d. 1e-4 -> 1e-5 -> 0 at 18/38.
    schedule = OmegaConf.create({
        "epochs": 45, "lr": {"kind": "step", "base": 0.1, "reference_batch": 256, "warmup_epochs": 2.5,
                             "milestones": [18, 38, 44], "decay": 0.1},
        "weight_decay": {"values": [1e-4, 1e-5, 0.0], "milestones": [18, 38]}})
    method = OmegaConf.create({"alpha": 1.0, "alpha_schedule": "constant"})
    built = build_schedules(schedule, method, batch_per_model=256, steps_per_epoch=10)
    assert built.total_steps == 450
    assert built.lr.warmup_steps == 25 and built.lr.milestones == (180, 380, 440)
    assert built.lr(25) == pytest.approx(0.1) and built.lr(440) == pytest.approx(1e-4)
    assert built.weight_decay(380) == 0.0 and built.alpha(0) == 1.0
    assert math.isclose(build_schedules(schedule, method, 2048, 10).lr.peak, 0.8)


def test_burn_in_is_the_codistillers():
    """One owner: Codistiller(burn_in_steps) gives no teachers and alpha_at 0 before it; an
    AlphaSchedule has no burn-in (and its fields after `kind` are keyword-only, so an old
    positional burn-in is refused rather than read as gamma)."""
    import torch

    from codistill import Codistiller

    schedule = AlphaSchedule(alpha=0.5, kind="step", step_factor=2.0, milestones=(10,))
    codistiller = Codistiller.from_teachers(torch.nn.Linear(2, 2), [torch.nn.Linear(2, 2)], alpha=schedule,
                                            burn_in_steps=5)
    assert [codistiller.alpha_at(s) for s in (0, 4, 5, 10)] == [0.0, 0.0, 0.5, 1.0]
    assert [schedule(s) for s in (0, 4, 5, 10)] == [0.5, 0.5, 0.5, 1.0]
    assert codistiller.teachers_logits(4, torch.ones(1, 2), None) == []
    assert len(codistiller.teachers_logits(5, torch.ones(1, 2), None)) == 1
    with pytest.raises(TypeError):
        AlphaSchedule(1.0, "constant", 5)
    with pytest.raises(TypeError):
        AlphaSchedule(alpha=1.0, burn_in_steps=5)
