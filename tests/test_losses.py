"""The codistillation loss against hand-computed values; its token-level form (sequence models, a
padding mask) against the per-sample form on the kept positions."""
import math

import pytest
import torch

from codistill.losses import codistill_loss, distill_loss, distill_term


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


@pytest.mark.parametrize("kind", ["mse", "kl", "soft_ce"])
def test_token_level_term_is_the_per_sample_term_summed_over_the_kept_positions(kind):
    """[batch, length, vocab] logits with padding: the sum over kept positions equals the number
    of kept positions times the per-sample term (torch's mean reductions) on those rows alone."""
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(3, 5, 7, generator=generator)
    teachers = [torch.randn(3, 5, 7, generator=generator) for _ in range(2)]
    keep = torch.ones(3, 5, dtype=torch.bool)
    keep[0, 3:], keep[2, 1:] = False, False
    rows = keep.sum().item()
    per_sample = distill_loss(student[keep], [t[keep] for t in teachers], kind, temperature=2.0)
    # per sample: mse the mean over (row, class), kl and soft_ce the mean over rows of a sum over classes;
    # token-level: per position the mean over classes (mse) or the sum (kl, soft_ce), summed over positions
    expected = per_sample * rows
    token_level = distill_loss(student, teachers, kind, temperature=2.0, keep=keep)
    torch.testing.assert_close(token_level, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="method.loss='l1'"):
        distill_loss(student, teachers, "l1", keep=keep)
