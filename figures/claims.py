"""Checks paper/claims.yaml against the collected logs. At each scale a claim holds, does not hold,
is inconclusive (the logs cannot decide either way), was not run, or is n/a (a paper-scale
number, e.g. 76.1 % top-1, that a mini stand-in cannot check; the mini value is still shown).

A claim's `check` selects groups of runs from its figure's collected records and compares the
mean over seeds of one metric at each run's last evaluation (mean over the run's models, or
over the models of one architecture with `model_arch`). Every comparison is a difference d
between means, judged with its noise

    noise = 2 x (combined standard error over seeds of d) + one validation sample,

one validation sample being 100 / val_samples points for a top-1 metric (val_samples from the
eval records; for older logs from the run's workload config: digits 1797 - train_size,
workload.val_size, ImageNet 50,000, CIFAR-10 10,000) and 0 for any other metric. The logs decide
when the interval [d - noise, d + noise] lies on one side of the claim's bound:

- value:      |mean - value| <= tolerance (or rel_tolerance x |value|): holds when the whole
              interval lies inside the tolerance, does not hold when it lies wholly outside
- difference: mean(a) - mean(b) - value, as `value`
- compare:    d = mean(a) - mean(b) against `margin`: greater (d > margin), less (d < -margin),
              at_least (d >= -margin), within (|d| <= margin)
- monotone:   the means of `group` (minus those of `minus`, matched on `by`) increase or decrease
              along the sorted values of `by`: every step beyond its noise holds; a step beyond
              its noise the wrong way, or flat without noise, does not hold
- spread:     max - min of the means of `group` over the values of `by` is at most `max`
              (judged on the extreme pair, as `within`)
- tradeoff:   some `by` value of group a reaches mean(b) - tolerance on `metric` (as `at_least`)
              while group b costs at least `min_ratio` times more on `cost` (Fig. 1)
- recovers:   of the gap mean(target) - mean(base), group `treated` recovers more than `share`:
              (treated - base) - share x (target - base) > 0 beyond its noise, the gap itself
              being beyond its noise (Fig. 2: decaying weight decay recovers most of what constant
              weight decay costs)
- fewest_bits: of `candidates` (each a labelled group with its knob `by`), the `expect` ones
              reach mean(b) - tolerance (as `at_least`) at a lower `cost` than any other
              candidate possibly does: holds when their cheapest setting that surely reaches
              costs less than the cheapest of the others' settings not ruled out; does not hold
              when another surely reaches at no more than theirs could (frontier)

Margins and tolerances (`margin` of within / at_least, `max` of spread, `tolerance` of tradeoff)
are the paper's at paper scale. At mini scale they are `mini_margin_se` times the workload's seed
standard error of the metric (the median, over every setting of that workload at that scale in
the paper's experiments, of the standard error of its final value over seeds; the frontier, beyond
the paper, does not move it): a margin in mini units, never in paper units.

A claim that a method comes close to all_reduce (compare within / at_least, tradeoff, fewest_bits)
is judged against the alpha = 0 control as well (method=independent, the method group's other
keys; or the check's `control` group; figures/claims_control.py): at mini scale no margin is wider
than the control's distance from all_reduce, the claim is decided only where the control fails it
(else **cannot discriminate**), and a method reaches all_reduce only where it also beats the
control beyond the noise. For a compare or difference between a codistillation group and an
all_reduce group, the outcome also reports the gap codistillation - all_reduce and the share of it
that the control already shows.

A group maps config keys (dotted, as in the resolved config), or derived columns (model_arch,
setup, n_way, gamma), to a value, a list of values, or min / max (the extreme value present among
the runs the other keys select); `best_over: <key>` with `best: min|max` keeps the best mean over
that key's values (alpha_gamma: each γ with its best initial α).
"""
from dataclasses import dataclass
from pathlib import Path

import yaml

from .claims_checks import CHECKS, NEEDS_MINI_MARGIN
from .claims_control import control_share
from .claims_groups import NotRun, group_stats  # noqa: F401  (group_stats: for callers of figures.claims)
from .claims_noise import (CANNOT_DISCRIMINATE, FAILS, HOLDS, INCONCLUSIVE, NOISE_SES, NOT_APPLICABLE,  # noqa: F401
                           NOT_RUN, VERDICTS, Context, Resolution)
from .paths import REPO

CLAIMS = REPO / "paper" / "claims.yaml"


def load_claims(path=CLAIMS):
    claims = yaml.safe_load(Path(path).read_text())["claims"]
    ids = [claim["id"] for claim in claims]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValueError(f"{path}: duplicated claim ids {sorted(duplicated)}")
    for claim in claims:
        if "value" in claim and not isinstance(claim["value"], (int, float)):
            raise ValueError(f"{path}: claim {claim['id']}: value {claim['value']!r} is not a number")
        if claim["check"]["kind"] not in CHECKS:
            raise ValueError(f"{path}: claim {claim['id']}: unknown check kind {claim['check']['kind']!r}")
        if needs_mini_margin(claim) and "mini_margin_se" not in claim["check"]:
            raise ValueError(f"{path}: claim {claim['id']}: a margin checked at mini scale needs mini_margin_se")
    return claims


def needs_mini_margin(claim):
    check = claim["check"]
    if "mini" not in claim.get("scales", ["mini", "paper"]):
        return False
    return check["kind"] in ("spread", "tradeoff") or (check["kind"] == "compare" and check["op"] in NEEDS_MINI_MARGIN)


@dataclass
class Outcome:
    status: str          # one of VERDICTS
    reproduced: str      # the numbers the status was computed from
    seeds: int = 0       # fewest seeds behind any mean used
    control: str = ""    # codistillation - all_reduce gap and the alpha = 0 control's share of it


def evaluate(claim, data, resolution=None):
    """data: the registry.FigureData of the claim's figure at one scale; resolution: the scale's
    Resolution over every figure (default: from this figure's records alone). A paper-scale
    number at another scale is n/a; the value the logs give there is still shown, marked as such."""
    applicable = data.scale in claim.get("scales", ["mini", "paper"])
    not_applicable = "paper-scale number: not comparable at this scale"
    if data.records.empty:
        return Outcome(NOT_RUN, data.problem or "no finished run") if applicable else \
            Outcome(NOT_APPLICABLE, not_applicable)
    check = claim["check"]
    metric = check.get("metric", claim.get("metric"))
    context = Context(data.scale, resolution or Resolution([data.records]))
    try:
        verdict, shown, seeds = CHECKS[check["kind"]](data.records, check, metric, claim, context)
    except NotRun as reason:
        return Outcome(NOT_RUN, str(reason)) if applicable else Outcome(NOT_APPLICABLE, not_applicable)
    if seeds < 3:
        shown += f" [FEWER THAN 3 SEEDS: {seeds}]"
    if not applicable:
        return Outcome(NOT_APPLICABLE, f"{data.scale.upper()} value {shown.split(' (paper')[0]}; {not_applicable}", seeds)
    return Outcome(verdict, shown, seeds, control_share(data.records, check, metric) if check["kind"] in
                   ("compare", "difference") else "")
