"""The codistillation loss (Algorithm 1, line 4 of the paper).

loss_i = L(y, f_i(x)) + alpha * 1/(n-1) * sum_{j != i} D(f_i(x), f_j(x))

Teachers' logits are detached: gradients flow only into model i. A sequence model's D is
token-level (`keep` marks the positions that are not padding): translation's fairseq criterion
uses the same functions with `keep`.

A teacher is a tensor of logits [..., C], or what a top-k prediction exchange delivers
(TopKLogits: per row, i.e. per example or per token, its k largest logits and their classes; the
other C - k did not arrive). D on a top-k teacher is the term on what arrives:
  mse: the dense term with the missing entries contributing nothing,
       D = 1/(B*C) * sum over rows b and received entries j of (s_bj - t_bj)^2,
       so alpha keeps its per-logit strength (token-level: 1/V per position, as the dense mean);
  kl, soft_ce: the teacher's distribution is the softmax of its k received logits (/ temperature),
       0 on the classes that did not arrive; the student's is its softmax over all C classes.
The exchange sends a dense tensor when k = C (no indices), so k = C gives the dense term exactly.
"""
import torch
import torch.nn.functional as F

from .choices import DISTILL_LOSSES  # noqa: F401  (re-exported)


class TopKLogits:
    """A teacher's logits as a top-k prediction exchange delivers them: for every row (the
    leading dimensions: an example, or a token of a sequence), the `values` [..., k] of its k
    largest logits at the classes `indices` [..., k] (int64) out of `classes`."""

    def __init__(self, values, indices, classes):
        if values.shape != indices.shape:
            raise ValueError(f"values {tuple(values.shape)} and indices {tuple(indices.shape)} differ in shape")
        self.values, self.indices, self.classes = values, indices, classes

    def __repr__(self):
        return f"TopKLogits(k={self.values.shape[-1]}, classes={self.classes}, rows={tuple(self.values.shape[:-1])})"


def _received(teacher_logits):
    """(the teacher's received logits, detached; a function taking a student tensor [..., C] to
    its entries at the same classes): everything, for a dense teacher."""
    if isinstance(teacher_logits, TopKLogits):
        indices = teacher_logits.indices
        return teacher_logits.values.detach(), lambda student: student.gather(-1, indices)
    return teacher_logits.detach(), lambda student: student


def distill_term(student_logits, teacher_logits, kind, temperature=1.0):
    """D(f_i(x), f_j(x)) for one teacher.

    mse: mean squared error between logits over batch and classes (torch's MSELoss default);
         the paper's choice (Appendix A.3), uncentred.
    kl: KL(teacher || student) of the softened distributions, averaged over the batch (Anil et al.).
    soft_ce: cross-entropy of the student against the teacher's soft targets.
    A TopKLogits teacher: the term on its received entries (module docstring).
    """
    teacher, at_received = _received(teacher_logits)
    if kind == "mse":
        if isinstance(teacher_logits, TopKLogits):
            return (at_received(student_logits) - teacher).pow(2).sum() / student_logits.numel()
        return F.mse_loss(student_logits, teacher)
    log_p_student = at_received(F.log_softmax(student_logits / temperature, dim=-1))
    p_teacher = F.softmax(teacher / temperature, dim=-1)
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
    A padded position contributes nothing, even where a teacher is not finite there. A TopKLogits
    teacher (k logits per token): the term on its received entries (module docstring)."""
    teacher, at_received = _received(teacher_logits)
    student, teacher = student_logits.float(), teacher.float()
    if kind == "mse":
        if isinstance(teacher_logits, TopKLogits):
            per_position = (at_received(student) - teacher).pow(2).sum(dim=-1, keepdim=True) / student.shape[-1]
        else:
            per_position = (student - teacher).pow(2).mean(dim=-1, keepdim=True)
    else:
        log_p_student = at_received(F.log_softmax(student / temperature, dim=-1))
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
