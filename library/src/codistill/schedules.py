"""The alpha schedule, alpha^k of Algorithm 1, as a pure function of the update index (0-based:
update s is the (s+1)-th optimizer step; the value at s is the one that step uses).
"""
import bisect
from dataclasses import KW_ONLY, dataclass

from .choices import ALPHA_SCHEDULES


@dataclass(frozen=True)
class AlphaSchedule:
    """alpha^k of Algorithm 1: constant: alpha; step: alpha * factor^(LR decays so far) (earlier
    version, vision); exponential: alpha * gamma^epoch (the paper's translation runs, gamma = 1.1).
    The burn-in (alpha = 0 and no teachers for the first updates, Anil et al. 2018) is not the
    schedule's: it is the Codistiller's (burn_in_steps; Codistiller.alpha_at gives the weight with
    it). The fields after `kind` are keyword-only."""
    alpha: float
    kind: str = "constant"
    _: KW_ONLY
    gamma: float = 1.0
    step_factor: float = 1.0
    milestones: tuple = ()
    steps_per_epoch: int = 1

    def __call__(self, step):
        """alpha at update `step` (0-based), counting epochs as step // steps_per_epoch."""
        return self.at(step, step // self.steps_per_epoch)

    def at(self, step, epochs_done):
        """alpha at update `step` when the caller counts the epochs completed itself (fairseq:
        its batches hold a number of tokens, so an epoch's updates are known only once it ran)."""
        if self.kind == "constant":
            return self.alpha
        if self.kind == "step":
            return self.alpha * self.step_factor ** bisect.bisect_right(self.milestones, step)
        if self.kind == "exponential":
            return self.alpha * self.gamma ** epochs_done
        raise ValueError(f"method.alpha_schedule={self.kind!r} is not one of {ALPHA_SCHEDULES}")
