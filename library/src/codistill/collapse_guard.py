"""A warning when a codistilled model has collapsed to predicting one class whatever its input.

Measured in a practitioner's loop (docs/library.md, "Choosing alpha and period (measured)";
scripts/library_collapse.py): with a strong pull (alpha x learning rate large) the two models swap
sides at exchanges and big updates kill the hidden layer's ReLUs; a model whose hidden layer is
dead outputs its last bias for every input, i.e. one class, and gets no gradient to recover.
Its logits then no longer vary across the rows of a batch: their spread (the variance over the
rows, averaged over the classes) falls from its trained value to about 0.

The guard reads that spread of the model's own logits once in `EVERY_UPDATES` updates (at the
first update with teachers at or after it) and warns once, with `CollapseWarning`, when it stayed
under `DROP` x its largest earlier value at `PATIENCE` looks in a row. Chosen on the 267 runs of
scripts/library_collapse.py: it warned 49 of the 50 collapsed models (final top-1 < 50 %), a
median of 44 updates after their hidden layer died, and 1 of the 454 models that ended at >= 90 %
(it predicted one class for 50 updates before it recovered). It adds no wait for the
device: on CUDA the value is copied to the host without blocking and read at a later look, once
the copy is done (on other accelerators each look reads it: one wait per look).

It sees a collapse, not a model that loses top-1 while still telling inputs apart (measured on the
experiments' stand-ins: none of those warned). PullGuard, below, warns before: when the setting
enters the region where both were measured.
"""
import math
import warnings

import torch

EVERY_UPDATES = 10   # the guard looks once in this many updates
DROP = 0.001         # a look is low when the spread is under DROP x its largest earlier value
PATIENCE = 5         # low looks in a row before the warning


class CollapseWarning(UserWarning):
    """A model of a codistillation job predicts (almost) the same logits for every input: the
    codistillation collapse (docs/library.md, "Choosing alpha and period (measured)").
    Silence it with Codistiller(..., collapse_guard=False) or
    warnings.filterwarnings("ignore", category=codistill.CollapseWarning)."""


def logit_spread(logits, keep=None):
    """The variance over rows (samples, or the kept tokens of a sequence batch) of each logit,
    averaged over the classes: 0 when every row has the same logits. Weighted by `keep` rather
    than indexed with it, so that it runs without the host learning the number of kept rows."""
    rows = logits.detach().float().reshape(-1, logits.shape[-1])
    if keep is None:
        return rows.var(dim=0, unbiased=False).mean()
    weights = keep.reshape(-1, 1).to(rows.dtype)
    count = weights.sum().clamp_min(1.0)
    mean = (weights * rows).sum(0) / count
    return (weights * (rows - mean).pow(2)).sum(0).div(count).mean()


class CollapseGuard:
    """Watches one model's logits; `describe` is the setting the warning names (e.g.
    "exchange='checkpoints' every 10 updates, alpha=1.0")."""

    def __init__(self, describe=""):
        self.describe = describe
        self.pending = []            # (step, spread on the host or on its way there, CUDA event or None)
        self.largest = 0.0
        self.low = 0
        self.looked_step = None
        self.warned_at = None        # the update whose look completed the warning

    def observe(self, step, logits, keep=None):
        """Called with the model's logits of update `step` (at every update with teachers; it looks
        at the first call, then at the first call EVERY_UPDATES or more updates after its last look)."""
        if self.warned_at is not None or (self.looked_step is not None and
                                          0 <= step - self.looked_step < EVERY_UPDATES):
            return
        self.looked_step = step
        spread = logit_spread(logits, keep)
        if spread.is_cuda:
            event = torch.cuda.Event()
            spread = spread.to("cpu", non_blocking=True)
            event.record()
            self.pending.append((step, spread, event))
        else:
            self.pending.append((step, spread, None))
        while self.pending and (self.pending[0][2] is None or self.pending[0][2].query()):
            looked, value, _ = self.pending.pop(0)
            self.judge(looked, float(value))

    def judge(self, step, spread):
        """One look: the spread of update `step` (a float)."""
        low = not math.isfinite(spread) or spread < DROP * self.largest
        self.low = self.low + 1 if low else 0
        if math.isfinite(spread):
            self.largest = max(self.largest, spread)
        if self.low >= PATIENCE and self.warned_at is None:
            self.warned_at = step
            warnings.warn(
                f"codistillation collapse at update {step}: this model's logits hardly vary across the "
                f"batch any more (spread {spread:.3g}, under {DROP:g} x its earlier {self.largest:.3g}, at "
                f"{PATIENCE} looks {EVERY_UPDATES} updates apart): it predicts one class whatever the input. "
                f"Measured cause (docs/library.md, 'Choosing alpha and period (measured)'): a distillation "
                f"pull too strong for the learning rate ({self.describe}): the models swap sides at "
                f"exchanges, their updates grow and kill the hidden units (a learning rate too high kills "
                f"them without distillation too). Remedies, measured at mini scale: alpha x peak learning rate "
                f"/ ((1 - momentum) x classes) at 0.003 or less, or an exchange every 50 updates or more (no "
                f"run collapsed there); SGD(momentum=0) "
                f"under OneCycleLR's default cycle_momentum=True runs with momentum 0.85-0.95. "
                f"Codistiller(..., collapse_guard=False) switches this check off.",
                CollapseWarning, stacklevel=4)


# The pull on each logit: alpha x lr / ((1 - momentum) x classes), the MSE's (a mean over the
# classes) effective step per logit. Above PULL_LIMIT checkpoint exchanges at periods under
# SAFE_PERIOD were measured to collapse models or cost them top-1 against an exchange every
# SAFE_PERIOD updates; at or under it they cost nothing more (docs/library.md, "Choosing alpha and
# period (measured)": three mini stand-ins, 10 and 100 classes).
PULL_LIMIT = 0.003
SAFE_PERIOD = 50


def pull_step(optimizer, alpha, classes):
    """alpha x lr / ((1 - momentum) x classes), the largest over the optimizer's parameter groups
    that have a heavy-ball momentum (torch.optim.SGD's groups); None when none has one (Adam and the
    others: a step the measurement did not cover)."""
    steps = [alpha * float(group["lr"]) / ((1.0 - float(group["momentum"])) * classes)
             for group in optimizer.param_groups if "momentum" in group and float(group["momentum"]) < 1.0]
    return max(steps) if steps else None


class PullGuard:
    """Warns once, with CollapseWarning, at the first update whose setting is in the region measured
    to collapse or cost top-1: checkpoint exchanges every `period` < SAFE_PERIOD updates and the
    MSE's pull on each logit, alpha x lr / ((1 - momentum) x classes), above PULL_LIMIT, read from
    the optimizer's learning rate and momentum as they are at that update (a schedule's peak is
    read when the run reaches it) and from the logits' last dimension (`classes`, set by the loss)."""

    def __init__(self, period, describe=""):
        self.period, self.describe = period, describe
        self.classes = None
        self.warned_at = None

    def observe(self, step, optimizer, alpha):
        """Called once an update `step` has been taken by `optimizer`, with the update's alpha."""
        if self.warned_at is not None or self.period >= SAFE_PERIOD or not alpha or not self.classes:
            return
        pull = pull_step(optimizer, alpha, self.classes)
        if pull is None or pull <= PULL_LIMIT:
            return
        self.warned_at = step
        group = max((g for g in optimizer.param_groups if "momentum" in g and float(g["momentum"]) < 1.0),
                    key=lambda g: float(g["lr"]) / (1.0 - float(g["momentum"])))
        warnings.warn(
            f"codistillation collapse risk from update {step}: the pull on each logit, alpha x lr / ((1 - momentum) "
            f"x classes) = {alpha:g} x {float(group['lr']):.3g} / ((1 - {float(group['momentum']):g}) x "
            f"{self.classes}) = {pull:.3g}, is above {PULL_LIMIT:g}, with {self.describe}. Measured at mini scale "
            f"(docs/library.md, 'Choosing alpha and period (measured)'): checkpoint exchanges at periods under "
            f"{SAFE_PERIOD} collapsed models or cost them top-1 from about 0.009 on (0.09 at 10 classes, 0.9 at 100), "
            f"and at {PULL_LIMIT:g} or less cost nothing over an exchange every {SAFE_PERIOD}. Remedies: a smaller "
            f"alpha or peak learning rate, or an exchange every {SAFE_PERIOD} updates or more. "
            f"Codistiller(..., collapse_guard=False) switches this check off.",
            CollapseWarning, stacklevel=4)
