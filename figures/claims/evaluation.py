"""The claims of the figures' records (paper/figures/<id>.yaml) loaded (each claim's id unique, its check kind known, a mini margin where it
needs one) and each claim evaluated at one scale into an Outcome: its verdict and the numbers it was
computed from (figures/claims/__init__.py says what each check kind compares; rule.py decides)."""
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import records
from ..paths import SAFE_LOADER
from .checks import CHECKS, NEEDS_MINI_MARGIN
from .configured import CONFIGURED
from .control import control_share
from .groups import NotRun, select
from .multiplicity import TESTED, adjust, corrected_status, p_value
from .noise import Context, Resolution
from .power import declared_seeds, undecided_note
from .rule import BORDERLINE, FAILS, HOLDS, NOT_APPLICABLE, NOT_RUN, VERDICTS, seeds_flag


def load_claims(path=None):
    """Every claim of the figures' records (paper/figures/), its groups resolved to their arms' selectors;
    or those of a claims file of one's own (`claims:`, a list of claims each naming its `figure`, groups
    written out)."""
    if path is None:
        claims, path = records.claims(), records.RECORDS
    else:
        claims = yaml.load(Path(path).read_text(), Loader=SAFE_LOADER)["claims"]
    ids = [claim["id"] for claim in claims]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ValueError(f"{path}: duplicated claim ids {sorted(duplicated)}")
    for claim in claims:
        if "value" in claim and not isinstance(claim["value"], (int, float)):
            raise ValueError(f"{path}: claim {claim['id']}: value {claim['value']!r} is not a number")
        if claim["check"]["kind"] not in CHECKS and claim["check"]["kind"] not in CONFIGURED:
            raise ValueError(f"{path}: claim {claim['id']}: unknown check kind {claim['check']['kind']!r}")
        if needs_mini_margin(claim) and not {"mini_margin_se", "mini_margin_of"} & set(claim["check"]):
            raise ValueError(f"{path}: claim {claim['id']}: a margin checked at mini scale needs mini_margin_se "
                             "(or, for a loss, mini_margin_of)")
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
    comparison: tuple = None   # what was compared (comparison_of): claims with the same one share a verdict
    same_as: str = None  # the first claim (in the records' order) of the same comparison, when not this one
    p: float = None         # the verdict's p-value (multiplicity.p_value), where it is decided
    adjusted: float = None  # that p-value after the correction across the scale's decided comparisons

    @property
    def borderline(self):
        """A decided verdict whose interval lies within one validation sample of its boundary."""
        return self.status in (HOLDS, FAILS) and BORDERLINE in self.reproduced


def configured_outcome(claim, scale):
    """The outcome at one scale of a claim its configs decide without logs (CONFIGURED)."""
    if scale not in claim.get("scales", ["mini", "paper"]):
        return Outcome(NOT_APPLICABLE, "decided from the paper's configs, at paper scale")
    return Outcome(*CONFIGURED[claim["check"]["kind"]](claim["check"]))


def evaluate(claim, data, resolution=None):
    """data: the registry.FigureData of the claim's figure at one scale; resolution: the scale's
    Resolution over every figure (default: from this figure's records alone). A paper-scale
    number at another scale is n/a; the value the logs give there is still shown, marked as such."""
    applicable = data.scale in claim.get("scales", ["mini", "paper"])
    not_applicable = "paper-scale number: not comparable at this scale"
    untestable = claim.get("untestable", {}).get(data.scale)
    if untestable:
        return Outcome(NOT_APPLICABLE, f"not testable at {data.scale} scale: {untestable}")
    if claim["check"]["kind"] in CONFIGURED:
        return configured_outcome(claim, data.scale)
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
    shown += seeds_flag(seeds, declared_seeds(claim["id"], data.scale))
    if verdict not in (HOLDS, FAILS):
        shown += undecided_note(claim["id"], data.scale)
    if not applicable:
        return Outcome(NOT_APPLICABLE, f"{data.scale.upper()} value {shown.split(' (paper')[0]}; {not_applicable}", seeds)
    return Outcome(verdict, shown, seeds, control_share(data.records, check, metric) if check["kind"] in
                   ("compare", "difference") else "", comparison_of(data.records, check, metric, verdict))


# Keys of a check that set only its margin: two claims that differ in them alone and reach the same
# verdict on the same runs made the same comparison (Fig. 2's "within 0.5" and Fig. 13's "within 1",
# both capped at the control's distance).
MARGIN_KEYS = {"margin", "mini_margin_se", "mini_margin_of", "tolerance", "rel_tolerance", "max"}


def comparison_of(records, check, metric, verdict):
    """What a claim compared, as a value two claims share when they test the same runs the same way
    (its metric, verdict, every setting of its check but the margin's, and the runs each of its
    groups selects): such claims are one comparison, counted once."""
    def runs(group):
        try:
            return frozenset(select(records, group["group"] if "group" in group and "label" in group else group)["run_id"])
        except NotRun:   # a group on a key no run has (4-bit checkpoints before their runs) selects none
            return frozenset()

    parts = [metric, verdict]
    for key in sorted(check):
        values = check[key] if isinstance(check[key], list) else [check[key]]
        if any(isinstance(value, dict) for value in values):
            parts.append((key, tuple(runs(value) if isinstance(value, dict) else value for value in values)))
        elif key not in MARGIN_KEYS:
            parts.append((key, repr(check[key])))
    return tuple(parts)


def distinct_comparisons(claim_ids, outcomes, scale):
    """{the first claim of each comparison at `scale`: the later claims that share it}, in claim order."""
    first, shared = {}, {}
    for claim_id in claim_ids:
        outcome = outcomes[(claim_id, scale)]
        key = outcome.comparison if outcome.comparison is not None else claim_id
        if key in first:
            shared[first[key]].append(claim_id)
        else:
            first[key], shared[claim_id] = claim_id, []
    return shared


def comparison_counts(all_claims, outcomes, scale, corrected=False):
    """{verdict: comparisons with that verdict at `scale`}, each comparison counted once (the claims
    that repeat another's, `same_as`, are not counted again); `corrected`: the verdicts after the
    correction for many comparisons (multiplicity.corrected_status)."""
    counted = [outcomes[(c["id"], scale)] for c in all_claims if outcomes[(c["id"], scale)].same_as is None]
    status_of = corrected_status if corrected else (lambda outcome: outcome.status)
    return {status: sum(status_of(outcome) == status for outcome in counted) for status in VERDICTS}


def correct(all_claims, outcomes, data, resolutions, scale):
    """Sets p and adjusted on the outcomes at `scale`: each tested comparison's p-value (its first
    claim's), corrected across them (multiplicity.adjust); the claims that repeat a comparison share its values.
    data: {figure id: FigureData}; resolutions: {claim id: the Resolution its margins use}."""
    p_values = {}
    for claim in all_claims:
        outcome = outcomes[(claim["id"], scale)]
        if outcome.same_as is None and outcome.status in TESTED and claim["check"]["kind"] in CHECKS:
            p = p_value(claim, data[claim["figure"]].records, scale, resolutions[claim["id"]])
            if p is not None:
                p_values[claim["id"]] = p
    for claim_id, (p, adjusted, _) in adjust(p_values).items():
        outcomes[(claim_id, scale)].p, outcomes[(claim_id, scale)].adjusted = p, adjusted
    for claim in all_claims:
        outcome = outcomes[(claim["id"], scale)]
        if outcome.same_as is not None:
            first = outcomes[(outcome.same_as, scale)]
            outcome.p, outcome.adjusted = first.p, first.adjusted
