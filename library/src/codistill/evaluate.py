"""At the end of a run: each model's held-out top-1, their ensemble's, and which model to keep.

Codistillation ends with n models. Keep the best one (one forward pass a prediction), or the
ensemble of all of them: the mean of their probabilities, not one model holding the mean of their
parameters (another function: codistilled models start from different initialisations). Choose
on a split you do not report on: the best of n measured on the split that chose it is biased
upwards (docs/library.md, "At the end: which model to keep").
"""
import torch


def _top1(logits, targets):
    return (logits.argmax(-1) == targets).float().mean().item()


def _checked(logits, targets, name):
    logits = list(logits)
    if not logits:
        raise ValueError(f"evaluate_models: {name} holds no model's logits")
    shapes = {tuple(part.shape) for part in logits}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"evaluate_models: {name} must be one [examples, classes] tensor per model, of one shape; "
                         f"got shapes {sorted(shapes)}")
    if tuple(targets.shape) != (logits[0].shape[0],):
        raise ValueError(f"evaluate_models: the targets of {name} have shape {tuple(targets.shape)}, the logits "
                         f"{logits[0].shape[0]} examples")
    return logits


@torch.no_grad()
def evaluate_models(logits, targets, select=None):
    """Each model's top-1, the ensemble's top-1 and the model to keep, as plain numbers.

    logits: one [examples, classes] tensor per model, in model order (model group j's at j), all
    on the same examples; targets: their [examples] class indices. select: None, or
    (logits, targets) of another held-out split, the one to choose the model on.
    Returns {"top1": [model j's fraction of examples whose largest logit is the target],
    "ensemble_top1": the same for the ensemble, whose prediction is the largest mean over the
    models of their softmax probabilities, "best": the index of the model with the highest top-1
    on `select` (on these examples when None; the lower index on a tie)}."""
    logits = _checked(logits, targets, "logits")
    top1 = [_top1(part, targets) for part in logits]
    ensemble = torch.stack([part.softmax(-1, dtype=torch.promote_types(part.dtype, torch.float32))
                            for part in logits]).mean(0)   # at least float32: bf16 logits too
    chosen_on = top1
    if select is not None:
        select_logits, select_targets = select
        select_logits = _checked(select_logits, select_targets, "select")
        if len(select_logits) != len(logits):
            raise ValueError(f"evaluate_models: select holds {len(select_logits)} models' logits, logits "
                             f"{len(logits)}")
        chosen_on = [_top1(part, select_targets) for part in select_logits]
    return {"top1": top1, "ensemble_top1": _top1(ensemble, targets),
            "best": max(range(len(chosen_on)), key=chosen_on.__getitem__)}
