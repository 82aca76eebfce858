"""The translation criterion (codistill_fairseq/criterion.py) and the core's terms it uses (the
token-level distillation term of losses.py, AlphaSchedule per epoch, translation/label_smoothing.py)
against values computed by hand or by an independent formula on small tensors."""
import math

import pytest
import torch
from translation_helpers import fairseq_task, mini_data  # noqa: F401  (fixtures)

from codistill import AlphaSchedule, Codistiller, distill_loss
from codistill_experiments.translation.label_smoothing import label_smoothing_at

PAD = 1


def distillation_sum(student, teachers, target, padding_idx):
    """What the criterion computes: the core's distillation term, token-level, padding masked."""
    return distill_loss(student, teachers, "mse", keep=target.ne(padding_idx))


def alpha_at(alpha0, kind, gamma, epochs_done, update):
    """What the task's schedule computes: the core's alpha schedule after `epochs_done` epochs."""
    return AlphaSchedule(alpha0, kind, gamma=gamma).at(update, epochs_done)


def test_distillation_is_the_mse_over_non_padding_tokens_averaged_over_the_vocabulary():
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]], requires_grad=True)
    teacher = torch.zeros(1, 3, 2)
    target = torch.tensor([[7, 8, PAD]])
    # token 0: (1 + 4) / 2 = 2.5; token 1: (9 + 16) / 2 = 12.5; token 2 is padding (would be 30.5)
    total = distillation_sum(student, [teacher], target, PAD)
    assert total.item() == pytest.approx(15.0)
    total.backward()
    # d/ds of mean_v (s - t)^2 = 2 (s - t) / V; nothing flows into the padded position
    assert torch.equal(student.grad, torch.tensor([[[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]]))


def test_distillation_is_the_mean_over_peers_for_three_models():
    student = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]])
    peers = [torch.zeros(1, 3, 2), torch.ones(1, 3, 2)]
    target = torch.tensor([[7, 8, PAD]])
    # peer of zeros: 15 (above); peer of ones: (0 + 1) / 2 + (4 + 9) / 2 = 7; n - 1 = 2 peers
    assert distillation_sum(student, peers, target, PAD).item() == pytest.approx((15.0 + 7.0) / 2)


def test_padding_is_masked_even_where_a_teacher_is_not_finite():
    student = torch.zeros(2, 2, 3)
    teacher = torch.zeros(2, 2, 3)
    teacher[0, 1] = float("inf")
    teacher[1, 1] = float("nan")
    target = torch.tensor([[5, PAD], [6, PAD]])
    assert distillation_sum(student, [teacher], target, PAD).item() == 0.0


def test_teachers_receive_no_gradient():
    student = torch.randn(1, 2, 4, requires_grad=True)
    teacher = torch.randn(1, 2, 4, requires_grad=True)
    distillation_sum(student, [teacher], torch.tensor([[4, 5]]), PAD).backward()
    assert teacher.grad is None and student.grad is not None


@pytest.mark.parametrize("epochs_done", [0, 1, 3, 10])
def test_alpha_after_e_epochs_is_alpha0_times_gamma_to_the_e(epochs_done):
    assert alpha_at(0.5, "exponential", 1.1, epochs_done, update=10_000) == pytest.approx(0.5 * 1.1 ** epochs_done)
    assert alpha_at(0.5, "constant", 1.1, epochs_done, update=10_000) == 0.5


def test_alpha_is_zero_during_burn_in():
    """The burn-in is the task's Codistiller's alone (its alpha_at, which the records log); the
    schedule has none."""
    schedule = AlphaSchedule(2.0, "exponential", gamma=1.1)   # the task's scheduled_alpha, in the first epoch:
    codistiller = Codistiller.from_teachers(torch.nn.Linear(2, 2), [torch.nn.Linear(2, 2)],
                                            alpha=lambda update: schedule.at(update, 0), burn_in_steps=100)
    assert codistiller.alpha_at(99) == 0.0 and codistiller.alpha_at(100) == 2.0
    assert alpha_at(2.0, "exponential", 1.1, 0, update=99) == 2.0


def test_the_tasks_codistiller_is_the_one_owner_of_alpha(fairseq_task, tmp_path):
    """The task's --codistill-alpha, --alpha-schedule and --alpha-gamma are its Codistiller's alpha
    (per completed epoch; 0 during the burn-in), and the record logs that Codistiller's alpha at the
    last update trained; the criterion keeps no alpha of its own."""
    task, model, criterion, _ = fairseq_task(
        ["--criterion", "codistill", "--codistill-dir", str(tmp_path), "--n-models", "2", "--exchange-period", "1",
         "--burn-in-updates", "5", "--codistill-alpha", "0.3", "--alpha-schedule", "exponential",
         "--alpha-gamma", "1.5"])
    task.codistiller = task._build_codistiller(model, criterion)
    task.epoch = 3
    assert task.codistiller.alpha_at(4) == 0.0
    assert task.codistiller.alpha_at(5) == pytest.approx(0.3 * 1.5 ** 2)
    task.update = 4
    assert task._record(5)["alpha"] == 0.0
    task.update = 7
    assert task._record(8)["alpha"] == pytest.approx(0.3 * 1.5 ** 2)
    assert not any(hasattr(criterion, name) for name in ("alpha", "alpha_at", "current_alpha"))


def test_label_smoothing_schedule():
    assert [label_smoothing_at(0.1, "constant", 0.5, e) for e in (0, 4)] == [0.1, 0.1]
    assert [label_smoothing_at(0.1, "exponential", 0.5, e) for e in (0, 1, 2)] == pytest.approx([0.1, 0.05, 0.025])
    assert label_smoothing_at(0.0, "constant", 1.0, 7) == 0.0   # removed (A.3)
    with pytest.raises(ValueError, match="linear"):
        label_smoothing_at(0.1, "linear", 0.5, 1)


@pytest.mark.slow
def test_fairseq_criterion_adds_alpha_times_the_distillation_to_smoothed_cross_entropy(fairseq_task, tmp_path):
    """The registered criterion on a real fairseq transformer (dropout 0), at epoch 3 of an
    exponential alpha and label-smoothing schedule, with two teachers (n = 3) whose snapshots the
    task's Codistiller reads from files."""
    from codistill import Codistiller, SnapshotStore

    task, model, criterion, sample = fairseq_task(
        ["--criterion", "codistill", "--label-smoothing", "0.1", "--label-smoothing-schedule", "exponential",
         "--label-smoothing-decay", "0.5", "--codistill-alpha", "0.3", "--alpha-schedule", "exponential",
         "--alpha-gamma", "1.5"])
    teachers = [task.build_model(task.model_cfg) for _ in range(2)]
    for teacher in teachers:
        teacher.eval()
    store = SnapshotStore(tmp_path)
    for peer, teacher in enumerate(teachers, start=1):
        store.publish(peer, 40, dict(teacher.named_parameters()))
    task.codistiller = Codistiller.through_files(
        model, store, 0, 3, period=1, alpha=task.scheduled_alpha, timeout_s=5, publish=False,
        make_teacher=lambda peer: task.build_model(task.model_cfg),
        run_teacher=lambda teacher, net_input: teacher(**net_input)[0])
    task.epoch, task.update = 3, 40
    model.train()
    loss, sample_size, logging = criterion(model, sample)

    with torch.no_grad():
        logits = model(**sample["net_input"])[0].float()
        teacher_logits = [t(**sample["net_input"])[0].float() for t in teachers]
    target = sample["target"]
    keep = target.ne(task.target_dictionary.pad())
    lprobs = torch.log_softmax(logits, dim=-1)
    nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)[keep].sum()
    uniform = -lprobs.sum(-1)[keep].sum()
    epsilon, vocab = 0.1 * 0.5 ** 2, logits.size(-1)
    smoothed = (1 - epsilon - epsilon / (vocab - 1)) * nll + epsilon / (vocab - 1) * uniform
    distill = sum(((logits - t) ** 2).mean(-1)[keep].sum() for t in teacher_logits) / 2
    alpha = 0.3 * 1.5 ** 2
    assert sample_size == keep.sum().item() == sample["ntokens"]
    assert loss.item() == pytest.approx((smoothed + alpha * distill).item(), rel=1e-5)
    assert logging["nll_loss"].item() == pytest.approx(nll.item(), rel=1e-5)
    assert logging["distill"].item() == pytest.approx(distill.item(), rel=1e-5)
    assert task.last_label_smoothing == pytest.approx(epsilon)
    # In validation (eval mode) the distillation term is omitted and nothing is smoothed away from nll.
    model.eval()
    loss, _, logging = criterion(model, sample)
    assert logging["distill"].item() == 0.0 and loss.item() == pytest.approx(smoothed.item(), rel=1e-5)
    assert math.isfinite(loss.item())
