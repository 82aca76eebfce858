"""The label smoothing of the translation criterion's cross-entropy, per epoch (Appendix A.3). The
criterion's other parts are the core's: the token-level distillation term (losses.distill_loss
with a padding mask) and alpha (schedules.AlphaSchedule.at, per completed epoch).

Schedules are functions of fairseq's epoch counter, which starts at 1: `epochs_done = epoch - 1`
is the number of completed epochs, so a value "after e epochs" is used throughout epoch e + 1.
"""
from ..names import LABEL_SMOOTHING_SCHEDULES


def label_smoothing_at(epsilon0, kind, decay, epochs_done):
    """Label smoothing of the cross-entropy term: epsilon0 throughout (constant; 0 removes it, as
    the paper's appendix A.3 does for codistillation), or epsilon0 * decay^epochs_done
    (exponential: "we decay the amount of label smoothing", Sec. 4.2)."""
    if kind == "constant":
        return float(epsilon0)
    if kind == "exponential":
        return float(epsilon0) * float(decay) ** epochs_done
    raise ValueError(f"label smoothing schedule {kind!r} is not one of {LABEL_SMOOTHING_SCHEDULES}")
