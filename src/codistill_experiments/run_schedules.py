"""The schedules of a run's config: schedules.py's objects (and the library's AlphaSchedule) built
from a schedule and a method config (plain dicts or OmegaConf nodes, read by key)."""
from codistill import AlphaSchedule

from .schedules import LRSchedule, PiecewiseConstant, Schedules, epochs_to_steps


def scaled_alpha(method_cfg, alpha_scale):
    """A run's alpha_0: method.alpha x the workload's alpha_scale (None: 1), which maps the paper's
    alpha onto a mini stand-in's fewer logits (docs/mini-scale.md, "Distillation per logit"). The
    one place the scale applies: the torch engine's alpha schedule and fairseq's --codistill-alpha
    both come from here."""
    return float(method_cfg.get("alpha", 0.0)) * (1.0 if alpha_scale is None else float(alpha_scale))


def build_schedules(schedule_cfg, method_cfg, batch_per_model, steps_per_epoch, epoch_scale=1.0,
                    weight_decay_scale=1.0, alpha_scale=None):
    """The schedules of a schedule config and a method config: plain dicts or OmegaConf nodes
    (read by key), e.g. {"epochs": 90, "lr": {"kind": "step", "base": 0.1, "reference_batch": 256,
    "warmup_epochs": 5, "milestones": [30, 60, 80], "decay": 0.1}, "weight_decay": {"values":
    [1e-4], "milestones": []}} and {"alpha": 1.0, "alpha_schedule": "constant"}. The alpha schedule has
    no burn-in: method.burn_in_steps is the Codistiller's (its alpha_at is 0 before it).
    epoch_scale multiplies the epochs and every warm-up and milestone: k when training on 1/k of
    the data (Fig. 16: the number of updates is unchanged), times the top-level epoch_scale
    (Fig. 17: each of n models trains 2/n as long). weight_decay_scale and alpha_scale multiply
    every weight-decay value and alpha (a mini workload's mapping of the paper's values; alpha_scale
    None: 1)."""
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
        alpha=scaled_alpha(method_cfg, alpha_scale),
        kind=method_cfg.get("alpha_schedule", "constant"),
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
                           alpha_scale=workload.get("alpha_scale"))
