"""The translation criterion's pure parts (no fairseq import): the token-level distillation term
(paper Algorithm 1, D = MSE between logits) and the per-epoch schedules of alpha and of label
smoothing (Appendix A.3). The fairseq criterion is codistill_fairseq/criterion.py.

Distillation: for every target position that is not padding, the squared difference between the
student's and a teacher's logits, averaged over the vocabulary; summed over positions (fairseq
criteria return sums and the trainer divides by the sample size, the number of target tokens),
and averaged over the n - 1 teachers. After fairseq's division this is the mean squared error over
all non-padding (token, vocabulary entry) pairs, the translation analogue of the vision loss's
`F.mse_loss` over (sample, class) pairs.

Schedules are functions of fairseq's epoch counter, which starts at 1: `epochs_done = epoch - 1`
is the number of completed epochs, so a value "after e epochs" is used throughout epoch e + 1.
"""
import torch

from .names import LABEL_SMOOTHING_SCHEDULES  # noqa: F401  (re-exported)
from .names import TRANSLATION_ALPHA_SCHEDULES as ALPHA_SCHEDULES


def alpha_at(alpha0, kind, gamma, epochs_done, update, burn_in_updates=0):
    """alpha^k of the distillation term: 0 during burn-in (Anil et al. 2018); then alpha0
    (constant) or alpha0 * gamma^epochs_done (exponential: the paper's translation runs multiply
    alpha by gamma = 1.1 every epoch, Appendix A.3)."""
    if update < burn_in_updates:
        return 0.0
    return per_epoch(alpha0, kind, gamma, epochs_done, "alpha schedule", ALPHA_SCHEDULES)


def label_smoothing_at(epsilon0, kind, decay, epochs_done):
    """Label smoothing of the cross-entropy term: epsilon0 throughout (constant; 0 removes it, as
    the paper's appendix A.3 does for codistillation), or epsilon0 * decay^epochs_done
    (exponential: "we decay the amount of label smoothing", Sec. 4.2)."""
    return per_epoch(epsilon0, kind, decay, epochs_done, "label smoothing schedule", LABEL_SMOOTHING_SCHEDULES)


def per_epoch(value0, kind, factor, epochs_done, what, kinds):
    """value0 throughout (constant) or value0 * factor^epochs_done (exponential)."""
    if kind == "constant":
        return float(value0)
    if kind == "exponential":
        return float(value0) * float(factor) ** epochs_done
    raise ValueError(f"{what} {kind!r} is not one of {kinds}")


def distillation_sum(student_logits, teachers_logits, target, padding_idx):
    """student_logits: [batch, length, vocab]; teachers_logits: list of tensors of that shape
    (detached here); target: [batch, length] token ids, `padding_idx` marking padding."""
    keep = target.ne(padding_idx).unsqueeze(-1)
    student = student_logits.float()
    terms = []
    for teacher in teachers_logits:
        squared = (student - teacher.detach().float()).pow(2).mean(dim=-1, keepdim=True)
        terms.append(squared.masked_fill(~keep, 0.0).sum())
    return torch.stack(terms).mean()
