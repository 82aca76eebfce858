"""The verdict rule of the figures' claims (paper/figures/), in one module: its constants, the functions every verdict
is decided by, and its explanation for a reader (prose() and summary(), markdown built from the same
constants), which the report prints (paper/report.md, "Noise and verdicts", and the Findings).

The other modules of figures/claims measure (noise.py: a difference's noise at this rule's level;
groups.py: means over seeds; control.py: the alpha = 0 control's gap and noise; checks.py: the
difference each check kind judges) and call the functions here to decide; none decides a verdict
itself (tests/test_rule.py checks both, and that no other file restates the prose)."""
import contextlib
import contextvars
import math

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN, NOT_APPLICABLE = "holds", "does not hold", "inconclusive", "not run", "n/a"
# An equivalence claim that the alpha = 0 control would pass too.
CANNOT_DISCRIMINATE = "cannot discriminate"
VERDICTS = (HOLDS, FAILS, CANNOT_DISCRIMINATE, INCONCLUSIVE, NOT_RUN, NOT_APPLICABLE)

ALPHA = 0.05             # the level of each one-sided test
EPS = 1e-9               # floating-point slack for boundaries ("within 0.5" includes 0.5)
SEEDS = 3                # seeds per arm a verdict is meant to rest on; fewer are flagged beside it
EQUIVALENCE_OPS = ("within", "at_least")   # the ops bounded by a margin: TOST, a mini margin, the control
CAPPED_SCALE = "mini"    # the scale at which no margin is wider than the control's distance
BORDERLINE = "BORDERLINE"   # a decided verdict within one validation sample of its boundary
# What the control is (a definition, which other files may repeat; the rule is what it decides).
CONTROL = ("the alpha = 0 control (`method=independent`: the same models, batches and schedule, no distillation, "
           "0 bits)")
HEADING = "Noise and verdicts"   # the report's section that prints prose()
ANCHOR = HEADING.lower().replace(" ", "-")   # its link (GitHub's and the report's HTML)


_LEVEL = contextvars.ContextVar("level", default=ALPHA)


def level():
    """The level the noise is computed at: ALPHA, but for the p-value of a verdict (the smallest
    level at which the rule would still decide it: multiplicity.p_value), which varies it."""
    return _LEVEL.get()


@contextlib.contextmanager
def at_level(alpha):
    token = _LEVEL.set(alpha)
    try:
        yield
    finally:
        _LEVEL.reset(token)


# ---------------------------------------------------------------- an interval against a bound

def _tri(holds, fails):
    return HOLDS if holds else FAILS if fails else INCONCLUSIVE


def interval_verdict(d, width, op, margin=0.0):
    """Verdict on d (op, margin) from the interval [d - width, d + width]: holds when the whole
    interval satisfies the claim, does not hold when none of it does, inconclusive otherwise.
    op: greater (d > margin), less (d < -margin), at_least (d >= -margin), within (|d| <= margin)."""
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


def decision(d, noise, op, margin=0.0):
    """(verdict, its slack shown) of the interval d ± noise (a noise.Noise) against the claim's
    bound: a decided verdict within one validation sample of its boundary is marked borderline."""
    verdict, room = interval_verdict(d, noise.width, op, margin), slack(d, noise.width, op, margin)
    if room != room:   # undecided
        return verdict, ""
    if noise.sample and room < noise.sample:
        return verdict, f"; slack {room:.4f}: {BORDERLINE}, within one validation sample ({noise.sample:.3f})"
    return verdict, f"; slack {room:.3f}"


def value_margin(tolerance, value):
    """The margin of a claim that a mean is the paper's `value` within `tolerance`: the boundary's
    floating-point slack scaled to the value's size."""
    return tolerance + EPS * max(1.0, abs(value))


def beats(d, width):
    """Whether d lies above 0 beyond its noise (one arm better than another): interval d ± width."""
    return interval_verdict(d, width, "greater")


def after_correction(verdict, adjusted):
    """A verdict after the correction for many comparisons (multiplicity.py): a decided one whose
    adjusted p-value exceeds ALPHA is inconclusive; the correction decides nothing new."""
    if verdict in (HOLDS, FAILS) and adjusted is not None and adjusted > ALPHA:
        return INCONCLUSIVE
    return verdict


def seeds_flag(fewest, wanted=SEEDS):
    """What is added beside a verdict resting on fewer seeds per arm than it is meant to (SEEDS, or
    the count its power analysis declares): '' otherwise."""
    return f" [FEWER THAN {wanted} SEEDS: {fewest}]" if fewest < wanted else ""


# ---------------------------------------------------------------- verdicts made of verdicts

def every(*verdicts):
    """Every condition must hold (a monotone sequence's steps; reaching all_reduce and beating the
    control): does not hold if any surely fails, holds if all surely hold, else inconclusive."""
    if FAILS in verdicts:
        return FAILS
    return HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE


def some(verdicts):
    """Some setting must do it (tradeoff): holds if one surely does, inconclusive if one might, else
    (none, or none of them could) does not hold."""
    verdicts = list(verdicts)
    return HOLDS if HOLDS in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else FAILS


def reaches(d, width, tolerance, over_control):
    """A setting reaches the reference (d = its mean - the reference's: at least -tolerance) while
    beating the control (over_control: its mean - the control's and that difference's noise width;
    None where the logs have no control): both must hold."""
    beaten = beats(*over_control) if over_control is not None else INCONCLUSIVE
    return every(interval_verdict(d, width, "at_least", tolerance), beaten)


def recovers(gap, gap_width, contrast, width):
    """(verdict, why undecided) of `treated recovers more than a share of the gap from base to
    target`: the gap must lie beyond its noise, then the contrast (recovered - share x gap) above 0."""
    if beats(gap, gap_width) != HOLDS:
        return INCONCLUSIVE, "no gap beyond the noise to recover"
    return beats(contrast, width), ""


def ratio_verdict(ratio, min_ratio):
    """A cost ratio (bits of one method over another's) of at least min_ratio: no noise, a count."""
    return HOLDS if ratio >= min_ratio * (1 - EPS) else FAILS


def cheapest(mine_sure, mine_open, others_sure, others_open, with_control):
    """fewest_bits: the expected candidates reach all_reduce (beating the control) at fewer bits than
    any other candidate possibly does. mine_/others_sure: the cheapest cost at which one surely
    reaches; mine_/others_open: the cheapest not ruled out (inf: none). Holds when theirs surely
    reaches below every other's open cost; does not hold when none of theirs could, or another
    surely reaches at no more than theirs could; inconclusive in between. Without a control in the
    logs it cannot discriminate unless it does not hold."""
    if mine_sure < others_open:
        verdict = HOLDS
    elif mine_open == math.inf or others_sure <= mine_open:
        verdict = FAILS
    else:
        verdict = INCONCLUSIVE
    return verdict if with_control else with_control_verdict(verdict, False)


# ---------------------------------------------------------------- the alpha = 0 control

def control_distance(gap, width, op):
    """How far the control's interval gap ± width lies beyond zero on the side the claim bounds:
    |gap| - width for within, -gap - width for at_least; the widest margin at which the control
    surely fails the claim (<= 0: at no margin)."""
    return (abs(gap) if op == "within" else -gap) - width


def control_fails(distance, margin):
    """The control surely fails the claim at this margin (its interval outside the open band)."""
    return not math.isnan(distance) and distance > 0 and distance >= margin - EPS


def capped_margin(margin, distance, scale):
    """(margin, whether it was capped): at CAPPED_SCALE no margin wider than the control's
    distance, never below 0; the margin is set from all_reduce and the control alone."""
    if scale != CAPPED_SCALE or distance >= margin:
        return margin, False
    return max(distance, 0.0), True


def with_control_verdict(verdict, fails):
    """An equivalence verdict stands only where the control fails the claim (fails: it surely
    does); else a claim that would hold or is undecided cannot discriminate. A claim the method
    surely fails still does not hold."""
    if verdict == FAILS or fails:
        return verdict
    return CANNOT_DISCRIMINATE


# ---------------------------------------------------------------- the rule for a reader

def _level():
    return f"{ALPHA:g}"


def _percent(share):
    return f"{100 * share:g} %"


def _df_range():
    """Welch-Satterthwaite degrees of freedom of a difference of two means over SEEDS seeds each."""
    return f"{SEEDS - 1} to {2 * (SEEDS - 1)}"


def prose():
    """The rule as the report states it (its section HEADING): markdown lines, paragraphs separated
    by empty lines."""
    return [
        "Every difference d between two means over seeds is judged with its noise: Welch's t quantile at "
        f"level {_level()} (one-sided, at the Welch-Satterthwaite degrees of freedom: {SEEDS} seeds per arm give "
        f"about {_df_range()}) times the combined standard error over seeds, plus one validation sample (of top-1; "
        f"none for other metrics). A claim **{HOLDS}** when the whole interval d ± noise satisfies it, "
        f"**{FAILS}** when none of it does, and is **{INCONCLUSIVE}** when the logs cannot decide either way: a "
        f"direction is a one-sided test at level {_level()}, an equivalence (\"within a margin\") the two "
        f"one-sided tests at the margin (TOST), so that \"{HOLDS}\" is said in at most {_percent(ALPHA)} of cases "
        "where it is false (`tests/test_claims_statistics.py` simulates it). Each decided verdict shows its "
        "slack, how far its interval lies beyond the boundary it crossed; one within one validation sample of it "
        "is marked **borderline**. A mean over fewer than "
        f"{SEEDS} seeds is flagged beside its verdict. A margin (\"within 0.5\") is the paper's at paper scale; "
        f"at {CAPPED_SCALE} scale it is a stated multiple of the workload's seed standard error below "
        "(`mini_margin_se` in the figures' records, `paper/figures/`) or, for a loss, that share of the workload's median final loss "
        "which the paper's margin is of the paper's loss (`mini_margin_of`), never a number in paper units.",
        "",
        "**The alpha = 0 control in every equivalence claim.** A claim that a method comes close to all_reduce "
        f"(within a margin, at least all_reduce's value less a margin, reaches all_reduce) is also judged with "
        f"{CONTROL} in the method's place; a claim that names its `control` group (two-phase distillation, an "
        "ensemble) is judged with that group, its own reference in all_reduce's place. The control's distance "
        "is how far its interval lies beyond zero on the side the claim bounds; at "
        f"{CAPPED_SCALE} scale no margin is wider than that distance (the margin is set from all_reduce and the "
        "control, never from the method judged). A claim is decided only where the control fails it; where the "
        "control passes or could pass, or is not in the logs, a claim that would hold or is undecided is "
        f"**{CANNOT_DISCRIMINATE}**, and one the method surely fails {FAILS}. A method reaches all_reduce "
        "(tradeoff, frontier) only where it also beats the control beyond the noise; for the frontier "
        "(fewest bits) that stands in for the control failing the claim. Churn has no implicit control (an "
        "independent run serves its ensemble's prediction). Directional claims keep their verdict and show the "
        "control's value beside them.",
    ]


def summary():
    """The rule in brief, for the Findings that open the report (one paragraph's sentences)."""
    return (f"d ± noise: the difference of means over {SEEDS} seeds and its noise (Welch's one-sided "
            f"{_percent(1 - ALPHA)} t quantile times the combined standard error, plus one validation sample). "
            "An equivalence claim (\"within a margin of all_reduce\", \"reaches all_reduce\") is **decided only "
            "where the alpha = 0 control fails it** (two models on half the batch each, no distillation, 0 bits): "
            f"at {CAPPED_SCALE} scale the margin is at most the control's distance from all_reduce (its gap less "
            "its noise: the widest margin the control surely fails), so a claim holds only where the method lies "
            "closer to all_reduce than the control does, beyond both noises; where the control lies within its "
            f"noise of all_reduce, no margin can tell them apart and the verdict is **{CANNOT_DISCRIMINATE}** (or "
            f"**{FAILS}**, where the method surely fails the claim). The whole rule: [Noise and verdicts](#{ANCHOR}).")
