"""The codistillation loss against hand-computed values."""
import math

import pytest
import torch

from codistill.losses import codistill_loss, distill_term


def test_mse_between_logits_is_the_mean_over_batch_and_classes():
    student = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    teacher = torch.tensor([[0.0, 2.0], [2.0, -1.0]])
    # squared differences 1, 0, 4, 0 -> mean 1.25
    assert distill_term(student, teacher, "mse").item() == pytest.approx(1.25)


def test_kl_and_soft_cross_entropy():
    student = torch.tensor([[0.0, math.log(3.0)]])   # softmax: [1/4, 3/4]
    teacher = torch.tensor([[0.0, 0.0]])              # softmax: [1/2, 1/2]
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    soft_ce = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert distill_term(student, teacher, "kl").item() == pytest.approx(kl)
    assert distill_term(student, teacher, "soft_ce").item() == pytest.approx(soft_ce)


def test_total_is_ce_plus_alpha_times_mean_over_teachers_and_grad_only_reaches_the_student():
    student = torch.tensor([[2.0, 0.0]], requires_grad=True)
    teachers = [torch.tensor([[0.0, 0.0]], requires_grad=True), torch.tensor([[2.0, 2.0]], requires_grad=True)]
    target = torch.tensor([0])
    total, ce, distill = codistill_loss(student, target, teachers, alpha=0.5, kind="mse")
    expected_ce = -math.log(math.exp(2) / (math.exp(2) + 1))
    expected_distill = ((4 + 0) / 2 + (0 + 4) / 2) / 2   # mean over teachers of MSE = 2
    assert ce.item() == pytest.approx(expected_ce)
    assert distill.item() == pytest.approx(expected_distill)
    assert total.item() == pytest.approx(expected_ce + 0.5 * expected_distill)
    total.backward()
    assert all(t.grad is None for t in teachers)


def test_no_teachers_means_no_distillation_term():
    logits, target = torch.tensor([[1.0, 0.0]]), torch.tensor([1])
    total, ce, distill = codistill_loss(logits, target, [], alpha=3.0, kind="mse")
    assert total.item() == ce.item() and distill.item() == 0.0


def test_unknown_loss_names_the_key():
    with pytest.raises(ValueError, match="method.loss"):
        distill_term(torch.zeros(1, 2), torch.zeros(1, 2), "hinge")
