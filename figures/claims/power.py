"""Seeds from a power analysis: how many seeds per arm a mini-scale claim needs before its verdict
can decide, worked out from the pilot (the committed runs, three seeds per arm) before any new run.

Power is simulated through the claim's own check (checks.py, decided by rule.py), so that Welch's
degrees of freedom, the validation-sample term, the mini margin and the alpha = 0 control's cap all
act as they do in the report. One draw replaces every run's final value by a normal draw around its
setting's mean, for `seeds` seeds per setting, and evaluates the claim on those runs; the power at a
seed count is the share of draws whose verdict is decided (holds or does not hold).

What the runs are assumed to be (the alternative):
- an equivalence claim (a method within a margin of all_reduce, or at least all_reduce less one):
  the method's settings truly equal the reference's mean; every other setting, the control
  included, keeps its pilot mean. This is the power to find codistillation equal to all_reduce
  where it is.
- every other claim (a direction, a monotone sequence, a spread, a recovered share): every setting
  keeps its pilot mean, the effect the pilot estimates.
Each setting's spread is its pilot standard deviation over seeds, but never below the workload's
median single-run standard deviation: three seeds estimate a spread poorly, and an arm that
happened to agree with itself must not be promised power it lacks.

The declared count is the smallest of CANDIDATES that reaches TARGET, else CAP, and never more
added runs than CPU_CAP_MINUTES pays for. A claim whose power at the cap stays below FUTILE (an
effect the pilot puts near zero) keeps the pilot's three seeds: runs that would not decide it are
not spent on it. A claim the declared count cannot decide says how many
seeds would (`seeds_to_decide`: a one-sided t test's count at the assumed effect, for a directional
comparison; the power at each count tried is in its record). Paper scale keeps the paper's three seeds. `python -m figures.power --write`
writes each claim's result into its figure's record (paper/figures/<id>.yaml) and this protocol with the
pilot's commits into paper/power.yaml, committed before the runs it asks for."""
import functools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from scipy.stats import norm

from .. import records
from ..paths import REPO
from .checks import CHECKS
from .control import control_group, equivalence_sides
from .groups import DERIVED, RESERVED, NotRun, config_keys, final_rows, select
from .noise import Context
from .rule import ALPHA, FAILS, HOLDS, SEEDS

POWER = REPO / "paper" / "power.yaml"
TARGET = 0.8                 # the power a declared seed count must reach
CANDIDATES = (3, 5, 8, 12)   # seed counts tried, smallest first
CAP = CANDIDATES[-1]         # no claim is promised more seeds than this: 12 Fig. 2 runs cost about 6 CPU-minutes
CPU_CAP_MINUTES = 120        # nor more added runs than two CPU-hours (a run's wall time x its ranks) per claim
FUTILE = TARGET / 2          # a claim below this power at the cap keeps the pilot's seeds: more would not decide it
DRAWS = 200                  # draws per seed count: the power's Monte Carlo s.e. is at most 3.5 points
RNG_SEED = 20261128
# The check kinds judged on each run's final value alone; the others (tradeoff, fewest_bits) read
# costs or whole curves, which a draw of final values does not model.
SIMULATED = ("value", "difference", "compare", "monotone", "spread", "recovers")


@dataclass
class Pilot:
    """Each run's final rows of one metric (all its models) with its setting: the runs a draw copies."""
    rows: pd.DataFrame       # the final record of each model of each run, with `setting` and `run_value`
    settings: pd.DataFrame   # per setting: template run, pilot mean, sd over seeds, seeds, CPU seconds per run
    floor_sd: float          # the workload's median single-run standard deviation


def pilot(records, metric):
    """The pilot of one metric from a figure's records."""
    if metric not in records.columns:   # a figure none of whose runs has been made: nothing to draw from
        raise NotRun(f"no run of this figure has {metric} yet: no pilot")
    rows = final_rows(records, metric).copy()
    rows["setting"] = config_keys(rows)
    rows["run_value"] = rows.groupby("run_id")[metric].transform("mean")
    runs = rows.drop_duplicates("run_id")
    cost = records.groupby("run_id")["wall_time"].max() if "wall_time" in records else pd.Series(dtype=float)
    ranks = pd.to_numeric(runs.set_index("run_id").get("cfg.world_size", pd.Series(1, index=runs["run_id"])),
                          errors="coerce").fillna(1)
    runs = runs.assign(cpu_s=runs["run_id"].map(cost).fillna(0).values * ranks.loc[runs["run_id"]].values)
    settings = runs.groupby("setting").agg(template=("run_id", "first"), mean=("run_value", "mean"),
                                            sd=("run_value", lambda v: v.std(ddof=1)), seeds=("run_id", "size"),
                                            cpu_s=("cpu_s", "mean"))
    sds = settings.loc[settings["seeds"] > 1, "sd"]
    return Pilot(rows, settings, float(sds.median()) if len(sds) else 0.0)


def _groups(check):
    """Every group a check names (its sides, a monotone's group, a recovered share's three)."""
    found = []
    for key in ("a", "b", "group", "base", "target", "treated", "minus", "control"):
        if isinstance(check.get(key), dict):
            found.append(check[key])
    return found


def why_not_simulated(claim):
    """Why a claim's power cannot be simulated, or None."""
    check = claim["check"]
    if "mini" not in claim.get("scales", ["mini", "paper"]) or claim.get("untestable", {}).get("mini"):
        return "not decided at mini scale"
    if check["kind"] not in SIMULATED:
        return f"a {check['kind']} check reads more than each run's final value"
    if any("metric" in group or "best_over" in group for group in _groups(check)):
        return "a group reads another metric or picks its best setting"
    return None


class Simulation:
    """Draws of one claim's runs at a seed count, evaluated by the claim's own check."""

    def __init__(self, claim, records, resolution):
        self.claim, self.check = claim, claim["check"]
        self.metric = self.check.get("metric", claim.get("metric"))
        self.pilot = pilot(records, self.metric)
        self.context = Context("mini", resolution)
        self.means = self.pilot.settings["mean"].copy()
        sides = equivalence_sides(self.check) if self.check["kind"] == "compare" else None
        self.alternative = "pilot means"
        if sides:
            method_side, reference_side, _ = sides
            reference = self._settings_of(self.check[reference_side])
            method = self._settings_of(self.check[method_side])
            self.means[method] = self.pilot.settings.loc[reference, "mean"].mean()
            self.alternative = "the method equal to its reference, the control at its pilot mean"
        self.sds = self.pilot.settings["sd"].fillna(0).clip(lower=self.pilot.floor_sd)

    def _settings_of(self, group):
        runs = select(self.pilot.rows, group)
        if runs.empty:
            raise NotRun(f"no pilot run matches {group}")
        return sorted(set(runs["setting"]))

    def arms(self):
        """The settings the claim reads: its groups', and the control of an equivalence claim."""
        groups = _groups(self.check)
        sides = equivalence_sides(self.check)
        if sides:
            groups.append(control_group(self.check[sides[0]], self.check))
        chosen = set()
        for group in groups:
            try:
                chosen |= set(self._settings_of(group))
            except NotRun:
                pass
        return sorted(chosen)

    def columns(self):
        """The columns the check reads (the config keys its groups and control name, each run's
        workload and validation size): a narrow frame makes a draw several times cheaper."""
        groups = _groups(self.check)
        sides = equivalence_sides(self.check)
        if sides:
            groups.append(control_group(self.check[sides[0]], self.check))
        keys = {key for group in groups for key in group if key not in RESERVED}
        keys |= {self.check[key] for key in ("by",) if key in self.check}
        keys |= {"workload.name", "workload.val_size", "workload.train_size"}
        wanted = ["run_id", "seed", "step", "model", self.metric, "val_samples", "setting", "run_value",
                  *DERIVED, *(f"cfg.{key}" for key in sorted(keys))]
        return [column for column in dict.fromkeys(wanted) if column in self.pilot.rows.columns]

    def cpu_minutes_per_seed(self):
        """CPU-minutes (a run's logged wall time x its ranks) of one more seed of every arm."""
        return float(self.pilot.settings.loc[self.arms(), "cpu_s"].sum()) / 60

    def frame(self, seeds):
        """The runs of `seeds` seeds per arm: each copies its setting's template rows."""
        settings = self.pilot.settings.loc[self.arms()]
        template = self.pilot.rows[self.pilot.rows["run_id"].isin(settings["template"])][self.columns()]
        parts = []
        for seed in range(seeds):
            part = template.copy()
            part["run_id"] = part["run_id"] + f"~{seed}"
            part["seed"] = seed
            if "cfg.seed" in part:
                part["cfg.seed"] = seed
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True)
        offset = frame[self.metric] - frame["run_value"]   # each model's place around its run's mean
        return frame, offset

    def power(self, seeds, draws=DRAWS, rng=None):
        """Share of draws decided at `seeds` seeds per arm."""
        rng = rng or np.random.default_rng(RNG_SEED)
        frame, offset = self.frame(seeds)
        runs = frame.drop_duplicates("run_id")[["run_id", "setting"]]
        means, sds = runs["setting"].map(self.means).values, runs["setting"].map(self.sds).values
        decided = 0
        for _ in range(draws):
            value = pd.Series(rng.normal(means, sds), index=runs["run_id"].values)
            frame[self.metric] = frame["run_id"].map(value).values + offset.values
            verdict = CHECKS[self.check["kind"]](frame, self.check, self.metric, self.claim, self.context)[0]
            decided += verdict in (HOLDS, FAILS)
        return decided / draws


def declared_count(powers, cpu_minutes_per_seed=0.0):
    """The smallest candidate count whose power reaches TARGET, else CAP where the cap's power is
    at least FUTILE (else the pilot's SEEDS: the runs would not decide it); never more added seeds
    than CPU_CAP_MINUTES pays for."""
    wanted = next((n for n in CANDIDATES if powers.get(n, 0) >= TARGET), None)
    if wanted is None:
        wanted = CAP if powers.get(CAP, 0) >= FUTILE else SEEDS
    affordable = SEEDS + (int(CPU_CAP_MINUTES // cpu_minutes_per_seed) if cpu_minutes_per_seed > 0 else CAP)
    return max(SEEDS, min(wanted, affordable))


def seeds_to_decide(simulation):
    """For a directional compare or difference the candidates cannot decide: the seeds per arm a
    one-sided t test at the rule's level needs for TARGET power at the assumed effect (statsmodels'
    TTestIndPower, the pooled test Welch's approaches); None for other kinds, or no effect at all."""
    from statsmodels.stats.power import TTestIndPower

    check = simulation.check
    if check["kind"] not in ("compare", "difference") or check.get("op") in ("within", "at_least"):
        return None
    per_run = [select(simulation.pilot.rows, check[side]).groupby("run_id")[simulation.metric].mean()
               for side in ("a", "b")]   # the models a group selects (one architecture of a mixed run)
    effect = abs(per_run[0].mean() - per_run[1].mean() - check.get("value", 0.0))
    spread = max(max(runs.std(ddof=1), simulation.pilot.floor_sd) for runs in per_run)
    if not effect > 0 or not spread > 0:
        return None
    size = effect / spread
    with warnings.catch_warnings():   # its root finder gives up on a tiny effect (thousands of seeds)
        warnings.simplefilter("ignore")
        seeds = TTestIndPower().solve_power(effect_size=size, alpha=ALPHA, power=TARGET, alternative="larger")
    if not math.isfinite(seeds):   # so many seeds that t is normal: 2 ((z_(1-alpha) + z_power) / d)^2
        seeds = 2 * ((norm.ppf(1 - ALPHA) + norm.ppf(TARGET)) / size) ** 2
    return math.ceil(seeds)


def analyse(claim, records, resolution, draws=DRAWS, powers=None):
    """The record of one claim: its power at each candidate count (`powers`: ones simulated
    before, kept), the declared count, its cost, and the seeds that would decide it where no
    candidate does."""
    reason = why_not_simulated(claim)
    if reason:
        return {"seeds": SEEDS, "simulated": False, "why": reason}
    simulation = Simulation(claim, records, resolution)
    powers = dict(powers or {})
    for seeds in CANDIDATES:
        if seeds not in powers:
            powers[seeds] = round(simulation.power(seeds, draws, np.random.default_rng(RNG_SEED + seeds)), 3)
        if powers[seeds] >= TARGET:
            break
    per_seed = simulation.cpu_minutes_per_seed()
    declared = declared_count(powers, per_seed)
    record = {"seeds": declared, "simulated": True, "power": powers, "alternative": simulation.alternative,
              "power_at_seeds": powers.get(declared), "cpu_minutes_per_seed": round(per_seed, 1),
              "cpu_minutes_added": round(per_seed * (declared - SEEDS), 1)}
    if (powers.get(declared) or 0) < TARGET:
        reached = [n for n in sorted(powers) if powers[n] >= TARGET]   # beyond the CPU cap
        record["seeds_to_decide"] = (reached[0] if reached else seeds_to_decide(simulation)
                                     or f"more than {max(powers)}")
    return record


def load_power(path=None):
    """{claim id: its power analysis}: every figure record's (paper/figures/), or a file of one's own's
    `claims:` ({} where there is none)."""
    return records.power() if path is None else dict(_read(str(path)))


@functools.lru_cache(maxsize=4)
def _read(path):
    path = Path(path)
    return tuple((yaml.safe_load(path.read_text()) or {}).get("claims", {}).items()) if path.exists() else ()


def undecided_note(claim_id, scale, power=None):
    """What the power analysis says of a claim left undecided: how many seeds would decide it
    ('' at paper scale, or for a claim it did not analyse)."""
    record = (load_power() if power is None else power).get(claim_id) if scale == "mini" else None
    if not record or not record.get("simulated"):
        return ""
    where = f"paper/figures/{records.owner(claim_id).id}.yaml" if power is None else "its power analysis"
    if "seeds_to_decide" in record:
        return (f"; power analysis: {record['seeds_to_decide']} seeds per arm would decide it with "
                f"{100 * TARGET:.0f} % power ({where})")
    return (f"; power analysis: {record['seeds']} seeds per arm decide it in {100 * record['power_at_seeds']:.0f} % "
            f"of simulated draws ({where})")


def declared_seeds(claim_id, scale, power=None):
    """Seeds per arm a verdict of this claim is meant to rest on at this scale."""
    if scale != "mini":
        return SEEDS
    record = (load_power() if power is None else power).get(claim_id)
    return record["seeds"] if record else SEEDS


def declared_power(claim_id, scale, power=None):
    """The claim's simulated power at its declared seeds (None where none was simulated: paper
    scale, or a claim the analysis did not simulate)."""
    record = (load_power() if power is None else power).get(claim_id) if scale == "mini" else None
    return record.get("power_at_seeds") if record and record.get("simulated") else None


HEADER = ("# The power analysis's protocol and its pilot (the committed runs at three seeds): figures/claims/power.py\n"
          "# says how (`python -m figures.power --write`). Each claim's result (its power at each seed count tried,\n"
          "# the seeds declared: the smallest count reaching the target, else the cap) is in its figure's record,\n"
          "# paper/figures/<id>.yaml, written before the runs it asks for.\n")

