"""The codistillation loss (Algorithm 1, line 4 of the paper).

loss_i = L(y, f_i(x)) + alpha * 1/(n-1) * sum_{j != i} D(f_i(x), f_j(x))

Teachers' logits are detached: gradients flow only into model i. A sequence model's D is
token-level (`keep` marks the positions that are not padding): translation's fairseq criterion
uses the same functions with `keep`.
"""
import torch
import torch.nn.functional as F

from .choices import DISTILL_LOSSES  # noqa: F401  (re-exported)


def distill_term(student_logits, teacher_logits, kind, temperature=1.0):
    """D(f_i(x), f_j(x)) for one teacher.

    mse: mean squared error between logits over batch and classes (torch's MSELoss default);
         the paper's choice (Appendix A.3), uncentred.
    kl: KL(teacher || student) of the softened distributions, averaged over the batch (Anil et al.).
    soft_ce: cross-entropy of the student against the teacher's soft targets.
    """
    teacher_logits = teacher_logits.detach()
    if kind == "mse":
        return F.mse_loss(student_logits, teacher_logits)
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    p_teacher = F.softmax(teacher_logits / temperature, dim=-1)
    if kind == "kl":
        return F.kl_div(log_p_student, p_teacher, reduction="batchmean")
    if kind == "soft_ce":
        return -(p_teacher * log_p_student).sum(dim=-1).mean()
    raise ValueError(f"method.loss={kind!r} is not one of {DISTILL_LOSSES}")


def token_distill_term(student_logits, teacher_logits, keep, kind="mse", temperature=1.0):
    """Token-level D for one teacher: logits [batch, length, vocab], keep [batch, length] (False
    at padding). The per-position D (mse: the squared difference averaged over the vocabulary;
    kl, soft_ce: summed over it), in float32, summed over the kept positions: a sum, as fairseq
    criteria return (its trainer divides by the number of target tokens, which makes mse the mean
    over every non-padding (token, vocabulary entry) pair, as F.mse_loss is over (sample, class)).
    A padded position contributes nothing, even where a teacher is not finite there."""
    student, teacher = student_logits.float(), teacher_logits.detach().float()
    if kind == "mse":
        per_position = (student - teacher).pow(2).mean(dim=-1, keepdim=True)
    else:
        log_p_student = F.log_softmax(student / temperature, dim=-1)
        p_teacher = F.softmax(teacher / temperature, dim=-1)
        if kind == "kl":
            per_position = F.kl_div(log_p_student, p_teacher, reduction="none").sum(dim=-1, keepdim=True)
        elif kind == "soft_ce":
            per_position = -(p_teacher * log_p_student).sum(dim=-1, keepdim=True)
        else:
            raise ValueError(f"method.loss={kind!r} is not one of {DISTILL_LOSSES}")
    return per_position.masked_fill(~keep.unsqueeze(-1), 0.0).sum()


def distill_loss(student_logits, teachers_logits, kind, temperature=1.0, keep=None):
    """1/(n-1) * sum over the n-1 teachers of D(student, teacher); token-level D summed over the
    positions where `keep` holds when it is given (token_distill_term)."""
    if keep is None:
        terms = [distill_term(student_logits, t, kind, temperature) for t in teachers_logits]
    else:
        terms = [token_distill_term(student_logits, t, keep, kind, temperature) for t in teachers_logits]
    return torch.stack(terms).mean()


def codistill_loss(student_logits, targets, teachers_logits, alpha, kind, temperature=1.0):
    """Returns (total, supervised, distill). With no teachers (an update without exchange,
    burn-in, independent training) the distillation term is omitted and distill is 0."""
    supervised = F.cross_entropy(student_logits, targets)
    if not teachers_logits:
        return supervised, supervised, torch.zeros((), device=student_logits.device)
    distill = distill_loss(student_logits, teachers_logits, kind, temperature)
    return supervised + alpha * distill, supervised, distill
