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
    return (f"diverged: the {which} of model {', '.join(models)} became non-finite at an update between "
            f"{first + 1} and {step} (found by the evaluation at update {step}); likely keys: "
            f"{', '.join(likely_keys(cfg, f'schedule.lr.base={cfg.schedule.lr.base}', 'amp'))}. {RECORDED}")


RECORDED = "The run stopped and is recorded as failed"


def likely_keys(cfg, learning_rate, low_precision):
    """The keys that most often make a run diverge, with their values: the learning rate (its key
    and value, `learning_rate`), the distillation weight and temperature where the method has them,
    and the workload's low-precision switch (`low_precision`: amp for vision, fp16 for fairseq) when on."""
    keys = [learning_rate]
    if cfg["method"].get("alpha") is not None:
        keys.append(f"method.alpha={cfg['method']['alpha']}")
    if cfg["method"].get("loss") in ("kl", "soft_ce"):
        keys.append(f"method.temperature={cfg['method']['temperature']}")
    if cfg["workload"].get(low_precision):
        keys.append(f"workload.{low_precision}=true")
    return keys


def fairseq_divergence(model, rank, after_step, cfg):
    """The message of a failed fairseq run whose model `model` (rank `rank` of its group) found
    non-finite gradients (fairseq's FloatingPointError) after its last evaluation at update
    `after_step` (0: before any): the fairseq path's counterpart of `divergence`."""
    return (f"diverged: the gradients of model {model} (rank {rank} of its group) became non-finite at an update "
            f"after {after_step} (fairseq's FloatingPointError, in the model's train log); likely keys: "
            f"{', '.join(likely_keys(cfg, 'schedule.lr=' + str(cfg['schedule']['lr']), 'fp16'))}. {RECORDED}")
