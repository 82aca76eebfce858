"""Checks that a configuration decides without a run: the bits part of a paper-scale claim, counted
from the paper's configs as the engine's counters count them (codistill_experiments.vision.
configured_bits), so that it is decided before any GPU run while the claim's top-1 part waits for one.

- configured_ratio: the bits per update of job `a` (overrides at paper scale) are at least
  `min_ratio` times those of job `b`."""
from functools import cache

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from codistill_experiments.config import validate
from codistill_experiments.vision.configured_bits import bits_per_update

from ..paths import REPO
from .rule import ratio_verdict

CONF = REPO / "src" / "conf"


@cache
def configured_job(overrides):
    """The validated paper-scale job of a tuple of overrides, composed as `python src/run.py` would."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return validate(compose("codistill", overrides=["scale=paper", *overrides]))


def check_configured_ratio(check):
    """(verdict, what it was computed from)."""
    a, b = (bits_per_update(configured_job(tuple(check[side]))) for side in ("a", "b"))
    ratio = a / b
    shown = (f"from the paper's configs: {a:.3g} vs {b:.3g} bits per update and device, {ratio:,.0f}x "
             f"(at least {check['min_ratio']:g}x)")
    return ratio_verdict(ratio, check["min_ratio"]), shown


CONFIGURED = {"configured_ratio": check_configured_ratio}
