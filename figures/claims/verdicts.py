"""The verdicts a claim can get, and the verdict a difference allows: holds when its whole interval
d ± noise satisfies the claim, does not hold when none of it does, inconclusive otherwise."""
import math

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN, NOT_APPLICABLE = "holds", "does not hold", "inconclusive", "not run", "n/a"
# An equivalence claim that the alpha = 0 control would pass too (figures/claims/control.py).
CANNOT_DISCRIMINATE = "cannot discriminate"
VERDICTS = (HOLDS, FAILS, CANNOT_DISCRIMINATE, INCONCLUSIVE, NOT_RUN, NOT_APPLICABLE)
EPS = 1e-9               # floating-point slack for boundaries ("within 0.5" includes 0.5)


def _tri(holds, fails):
    return HOLDS if holds else FAILS if fails else INCONCLUSIVE


def interval_verdict(d, width, op, margin=0.0):
    """Verdict on d (op, margin) from the interval [d - width, d + width]: holds when the whole
    interval satisfies the claim, does not hold when none of it does, inconclusive otherwise."""
    if math.isnan(width) or math.isnan(d):
        return INCONCLUSIVE
    low, high = d - width, d + width
    if op == "greater":
        return _tri(low > margin, high <= margin + EPS)
    if op == "less":
        return _tri(high < -margin, low >= -margin - EPS)
    if op == "at_least":
        return _tri(low >= -margin - EPS, high < -margin - EPS)
    if op == "within":
        return _tri(max(abs(low), abs(high)) <= margin + EPS, low > margin + EPS or high < -margin - EPS)
    raise ValueError(f"unknown op {op!r}")


def slack(d, width, op, margin=0.0):
    """How far the interval [d - width, d + width] lies beyond the boundary that decides it (>= 0
    when interval_verdict decides; nan when it is inconclusive)."""
    low, high = d - width, d + width
    if op == "greater":
        holds, fails = low - margin, margin - high
    elif op == "less":
        holds, fails = -margin - high, low + margin
    elif op == "at_least":
        holds, fails = low + margin, -margin - high
    elif op == "within":
        holds, fails = margin - max(abs(low), abs(high)), max(low - margin, -margin - high)
    else:
        raise ValueError(f"unknown op {op!r}")
    verdict = interval_verdict(d, width, op, margin)
    return max(holds, 0.0) if verdict == HOLDS else max(fails, 0.0) if verdict == FAILS else math.nan
