"""Learning-rate, weight-decay and alpha schedules, all as pure functions of the update index.

Milestones are given in epochs in the configs (as in the paper) and turned into update indices
here, so the same schedule file serves every batch size and scale. Update s (0-based) is the
(s+1)-th optimizer step; the value at s is the one that step uses.
"""
import bisect
import math
from dataclasses import KW_ONLY, dataclass

from .choices import ALPHA_SCHEDULES, LR_KINDS


def epochs_to_steps(epochs, steps_per_epoch):
    """The update index `epochs` (a number of epochs, possibly fractional) falls on, rounded."""
    return int(round(epochs * steps_per_epoch))


@dataclass(frozen=True)
class LRSchedule:
    """Goyal et al. 2017: linear warm-up from `base` to `peak` (= base * b / reference_batch),
    then step decays (x decay at each milestone) or a half-cosine to 0 (He et al. 2019).
    Warm-up exists to climb to a scaled-up LR: when b <= reference_batch (peak <= base, as for
    the mini scale's small batches) the schedule starts at `peak` and has no warm-up."""
    base: float
    peak: float
    warmup_steps: int
    total_steps: int
    kind: str = "step"
    milestones: tuple = ()
    decay: float = 0.1

    def __call__(self, step):
        """The learning rate at update `step` (0-based)."""
        if step < self.warmup_steps and self.peak > self.base:
            return self.base + (self.peak - self.base) * step / self.warmup_steps
        if self.kind == "step":
            return self.peak * self.decay ** bisect.bisect_right(self.milestones, step)
        if self.kind == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            return self.peak * 0.5 * (1.0 + math.cos(math.pi * progress))
        raise ValueError(f"schedule.lr.kind={self.kind!r} is not one of {LR_KINDS}")


@dataclass(frozen=True)
class PiecewiseConstant:
    """values[0] before milestones[0], values[i] from milestones[i-1] on (the paper's decaying
    weight decay: 1e-4 -> 1e-5 after the first LR decay -> 0 after the second)."""
    values: tuple
    milestones: tuple = ()

    def __call__(self, step):
        """The value at update `step` (0-based)."""
        return self.values[bisect.bisect_right(self.milestones, step)]


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


@dataclass(frozen=True)
class Schedules:
    """A run's schedules together: `lr`, `weight_decay` and `alpha` (functions of the update
    index), its `total_steps` and `steps_per_epoch`."""
    lr: LRSchedule
    weight_decay: PiecewiseConstant
    alpha: AlphaSchedule
    total_steps: int
    steps_per_epoch: int
