"""paper/claims.yaml loaded (each claim's id unique, its check kind known, a mini margin where it
needs one) and each claim evaluated at one scale into an Outcome: its verdict and the numbers it was
computed from (figures/claims/__init__.py says how each check kind decides)."""
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..paths import REPO
from .checks import CHECKS, NEEDS_MINI_MARGIN
from .control import control_share
from .groups import NotRun
from .noise import Context, Resolution
from .verdicts import NOT_APPLICABLE, NOT_RUN

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
