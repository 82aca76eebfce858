"""A diverged run (a non-finite training loss) is a failure, never a result: what it says."""
import torch


def divergence(losses, first, step, cfg):
    """Why the run must stop, when a model's training loss (supervised or distillation) summed
    since the last evaluation (update `first`) is not finite: the message of a failed run, naming
    the updates and the keys that most often cause it; None when every loss is finite.
    losses: [n_models, 2] (supervised, distillation sums) gathered on the host at each
    evaluation, so that detecting divergence costs the training loop nothing per update (a
    non-finite loss stays non-finite in the sum)."""
    finite = torch.isfinite(losses)
    if bool(finite.all()):
        return None
    models = [str(group) for group in range(len(losses)) if not bool(finite[group].all())]
    which = "training loss" if not bool(finite[:, 0].all()) else "distillation loss"
    keys = [f"schedule.lr.base={cfg.schedule.lr.base}"]
    if cfg.method.get("alpha") is not None:
        keys.append(f"method.alpha={cfg.method.alpha}")
    if cfg.method.get("loss") in ("kl", "soft_ce"):
        keys.append(f"method.temperature={cfg.method.temperature}")
    if cfg.workload.get("amp"):
        keys.append("workload.amp=true")
    return (f"diverged: the {which} of model {', '.join(models)} became non-finite at an update between "
            f"{first + 1} and {step} (found by the evaluation at update {step}); likely keys: {', '.join(keys)}. "
            "The run stopped and is recorded as failed")
