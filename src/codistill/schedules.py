"""Learning-rate, weight-decay and alpha schedules, all as pure functions of the update index.

Milestones are given in epochs in the configs (as in the paper) and turned into update indices
here, so the same schedule file serves every batch size and scale. Update s (0-based) is the
(s+1)-th optimizer step; the value at s is the one that step uses.
"""
import bisect
import math
from dataclasses import dataclass


def epochs_to_steps(epochs, steps_per_epoch):
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
        if step < self.warmup_steps and self.peak > self.base:
            return self.base + (self.peak - self.base) * step / self.warmup_steps
        if self.kind == "step":
            return self.peak * self.decay ** bisect.bisect_right(self.milestones, step)
        if self.kind == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
            return self.peak * 0.5 * (1.0 + math.cos(math.pi * progress))
        raise ValueError(f"schedule.lr.kind={self.kind!r} is not one of ('step', 'cosine')")


@dataclass(frozen=True)
class PiecewiseConstant:
    """values[0] before milestones[0], values[i] from milestones[i-1] on (the paper's decaying
    weight decay: 1e-4 -> 1e-5 after the first LR decay -> 0 after the second)."""
    values: tuple
    milestones: tuple = ()

    def __call__(self, step):
        return self.values[bisect.bisect_right(self.milestones, step)]


@dataclass(frozen=True)
class AlphaSchedule:
    """alpha^k of Algorithm 1. 0 during burn-in (Anil et al. 2018); then
    constant: alpha; step: alpha * factor^(LR decays so far) (earlier version, vision);
    exponential: alpha * gamma^epoch (the paper's translation runs, gamma = 1.1)."""
    alpha: float
    kind: str = "constant"
    burn_in_steps: int = 0
    gamma: float = 1.0
    step_factor: float = 1.0
    milestones: tuple = ()
    steps_per_epoch: int = 1

    def __call__(self, step):
        return self.at(step, step // self.steps_per_epoch)

    def at(self, step, epochs_done):
        """alpha at update `step` when the caller counts the epochs completed itself (fairseq:
        its batches hold a number of tokens, so an epoch's updates are known only once it ran)."""
        if step < self.burn_in_steps:
            return 0.0
        if self.kind == "constant":
            return self.alpha
        if self.kind == "step":
            return self.alpha * self.step_factor ** bisect.bisect_right(self.milestones, step)
        if self.kind == "exponential":
            return self.alpha * self.gamma ** epochs_done
        raise ValueError(f"method.alpha_schedule={self.kind!r} is not constant, step or exponential")


@dataclass(frozen=True)
class Schedules:
    lr: LRSchedule
    weight_decay: PiecewiseConstant
    alpha: AlphaSchedule
    total_steps: int
    steps_per_epoch: int


def build_schedules(schedule_cfg, method_cfg, batch_per_model, steps_per_epoch, epoch_scale=1.0,
                    weight_decay_scale=1.0, alpha_scale=1.0):
    """The schedules of a schedule config and a method config: plain dicts or OmegaConf nodes
    (read by key), e.g. {"epochs": 90, "lr": {"kind": "step", "base": 0.1, "reference_batch": 256,
    "warmup_epochs": 5, "milestones": [30, 60, 80], "decay": 0.1}, "weight_decay": {"values":
    [1e-4], "milestones": []}} and {"alpha": 1.0, "burn_in_steps": 0}.
    epoch_scale multiplies the epochs and every warm-up and milestone: k when training on 1/k of
    the data (Fig. 16: the number of updates is unchanged), times the top-level epoch_scale
    (Fig. 17: each of n models trains 2/n as long). weight_decay_scale and alpha_scale multiply
    every weight-decay value and alpha (a mini workload's mapping of the paper's values)."""
    to_steps = lambda epochs: epochs_to_steps(epochs * epoch_scale, steps_per_epoch)  # noqa: E731
    total_steps = to_steps(schedule_cfg["epochs"])
    lr_cfg = schedule_cfg["lr"]
    lr_milestones = tuple(to_steps(m) for m in lr_cfg["milestones"])
    lr = LRSchedule(
        base=lr_cfg["base"],
        peak=lr_cfg["base"] * batch_per_model / lr_cfg["reference_batch"],
        warmup_steps=to_steps(lr_cfg["warmup_epochs"]),
        total_steps=total_steps,
        kind=lr_cfg["kind"],
        milestones=lr_milestones,
        decay=lr_cfg["decay"],
    )
    wd_cfg = schedule_cfg["weight_decay"]
    weight_decay = PiecewiseConstant(
        values=tuple(float(v) * weight_decay_scale for v in wd_cfg["values"]),
        milestones=tuple(to_steps(m) for m in wd_cfg["milestones"]),
    )
    alpha = AlphaSchedule(
        alpha=float(method_cfg.get("alpha", 0.0)) * alpha_scale,
        kind=method_cfg.get("alpha_schedule", "constant"),
        burn_in_steps=int(method_cfg.get("burn_in_steps", 0)),
        gamma=float(method_cfg.get("alpha_gamma", 1.0)),
        step_factor=float(method_cfg.get("alpha_step_factor", 1.0)),
        milestones=lr_milestones,
        steps_per_epoch=steps_per_epoch,
    )
    return Schedules(lr, weight_decay, alpha, total_steps, steps_per_epoch)


def run_schedules(cfg, batch_per_model, steps_per_epoch):
    """The schedules of a run's resolved config: its schedule and method, stretched by the
    top-level epoch_scale and data.fraction, mapped by the workload's own scales (a mini stand-in
    maps the paper's epochs, weight decay and alpha onto its data: docs/mini-scale.md)."""
    workload = cfg.workload
    return build_schedules(cfg.schedule, cfg.method, batch_per_model, steps_per_epoch,
                           epoch_scale=cfg.epoch_scale / cfg.data.fraction * workload.get("epoch_scale", 1.0),
                           weight_decay_scale=workload.get("weight_decay_scale", 1.0),
                           alpha_scale=workload.get("alpha_scale", 1.0))
