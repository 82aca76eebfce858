"""Learning-rate and weight-decay schedules, and a run's schedules together, all as pure functions
of the update index (the alpha schedule is the library's: codistill.AlphaSchedule).

Milestones are given in epochs in the configs (as in the paper) and turned into update indices
here, so the same schedule file serves every batch size and scale. Update s (0-based) is the
(s+1)-th optimizer step; the value at s is the one that step uses. run_schedules.py builds them
from a run's config. Torch-free: the config checks read LR_KINDS without importing torch.
"""
import bisect
import math
from dataclasses import dataclass

from codistill import AlphaSchedule

LR_KINDS = ("step", "cosine")                   # LRSchedule's kinds: the choices of schedule.lr.kind


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
class Schedules:
    """A run's schedules together: `lr`, `weight_decay` and `alpha` (functions of the update
    index), its `total_steps` and `steps_per_epoch`."""
    lr: LRSchedule
    weight_decay: PiecewiseConstant
    alpha: AlphaSchedule
    total_steps: int
    steps_per_epoch: int
