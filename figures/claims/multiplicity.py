"""Many comparisons, corrected. Each verdict of the rule (rule.py) is a test at level ALPHA; over the
report's some hundred comparisons a few false "holds" are expected by chance. The report therefore
counts its verdicts twice: raw, and after Benjamini and Hochberg's correction (statsmodels'
multipletests) across every comparison the logs could test at one scale, each counted once: among the verdicts
that stay decided, the expected share of false ones is at most ALPHA. Holm's correction, which
bounds the chance of any false one, would leave most of the report undecided at a few seeds per
arm; the comparisons share runs, a positive dependence under which Benjamini-Hochberg holds.

A verdict's p-value is the smallest level at which the rule, applied whole, still reaches it: the
claim's check is re-decided at lower levels (rule.at_level; the means and standard errors do not
move, groups.stats_memoized) and the level bisected on a log scale. It is therefore exactly the
rule's own p-value, the control's part and the validation-sample term included, for every check
kind. A decided verdict whose adjusted p-value exceeds ALPHA is undecided after correction."""
import math

from statsmodels.stats.multitest import multipletests

from .checks import CHECKS
from .groups import NotRun, stats_memoized
from .noise import Context
from .rule import ALPHA, CANNOT_DISCRIMINATE, FAILS, HOLDS, INCONCLUSIVE, after_correction, at_level

FLOOR = 1e-9     # p-values below this are reported as this
CEILING = 0.5    # one-sided tests: a verdict undecided at this level is given p = 1
STEPS = 24       # bisection steps between two bounds: a ratio of about 1.02 between FLOOR and ALPHA
METHOD = "fdr_bh"   # multipletests' method: Benjamini-Hochberg, the false discovery rate
DECIDED = (HOLDS, FAILS)
# The verdicts of the comparisons a correction spans: every test the logs could run.
TESTED = (HOLDS, FAILS, INCONCLUSIVE, CANNOT_DISCRIMINATE)


def p_value(claim, records, scale, resolution):
    """The smallest level at which the claim's check reaches a decided verdict, holds or does not
    hold: at most ALPHA for a verdict decided at ALPHA, above it for one undecided there (1 where
    no level up to CEILING decides it); None where the check cannot run on these records. An
    undecided comparison counts in the family the correction spans, as a test that did not reject."""
    check = claim["check"]
    metric = check.get("metric", claim.get("metric"))
    context = Context(scale, resolution)

    def decided(alpha):
        with at_level(alpha):
            return CHECKS[check["kind"]](records, check, metric, claim, context)[0] in DECIDED

    with stats_memoized():
        try:
            at_alpha = decided(ALPHA)
        except NotRun:
            return None
        if at_alpha:
            low, high = FLOOR, ALPHA
            if decided(FLOOR):
                return FLOOR
        else:
            low, high = ALPHA, CEILING
            if not decided(CEILING):
                return 1.0
        for _ in range(STEPS):
            middle = math.sqrt(low * high)
            low, high = (low, middle) if decided(middle) else (middle, high)
        return high


def adjust(p_values):
    """{key: (p, adjusted p, still decided)} of {key: p}, by METHOD."""
    keys = list(p_values)
    if not keys:
        return {}
    reject, adjusted, _, _ = multipletests([p_values[k] for k in keys], alpha=ALPHA, method=METHOD)
    return {k: (p_values[k], float(a), bool(r)) for k, a, r in zip(keys, adjusted, reject)}


def corrected_status(outcome):
    """A verdict after the correction: decided ones whose adjusted p-value exceeds ALPHA become
    inconclusive; the rest keep theirs (the correction decides nothing new)."""
    return after_correction(outcome.status, outcome.adjusted)


NAME = "Benjamini-Hochberg"


def corrected_note(outcome):
    """'; p ..., adjusted ...' beside a tested verdict, saying when the correction undoes it."""
    if outcome.p is None or outcome.adjusted is None:
        return ""
    undone = corrected_status(outcome) != outcome.status
    return (f"; p {outcome.p:.2g}, {NAME}-adjusted {outcome.adjusted:.2g}"
            + (f": {corrected_status(outcome)} after the correction" if undone else ""))


def describe():
    return (f"{NAME}'s correction (statsmodels' multipletests, method '{METHOD}') across every comparison tested "
            f"at each scale (decided or not), each counted once, so that the expected share of false verdicts among those still "
            "decided is at most the level; a verdict's p-value is the smallest level at which the rule, applied "
            "whole, still reaches it")
