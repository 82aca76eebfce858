"""One record per figure or table: paper/figures/<id>.yaml, the only place anything about it is written.

A record holds
  id, kind (figure | table), title (as the paper's caption says it), section (later version unless it
      says "earlier version"), source (default: Sodhani et al. 2021), paper (false: an experiment beyond
      its source's, which does not set the mini noise unit), why_not_run ({scale: why the sweep has no
      runs there}, said on the figure drawn instead)
  sweep     the sweep whose runs it reads (sweeps/<sweep>.yaml; default: the id)
  draw      <module>.<function> of figures/drawing that draws it
  arms      each arm once: its name -> the runs it selects (keys of the resolved config, or derived
            columns: figures/claims/groups.py says what a selector may hold)
  drawn     the arms the drawing shows, in its legend's order (where it draws named arms)
  regimes   (fig2_regimes) the regimes of the stand-in, by name -> their selector
  controls  the settings whose alpha = 0 control the report's control table shows: label, arm, metric,
            and the all_reduce arm it is set against (reference)
  claims    the paper's claims on it, machine-checkable (figures/claims/ says each check kind), in the
            report's order; `headline: true` marks the finding that heads its row of the Findings,
            `bottom_line: true` one whose verdict the report's bottom line states;
            groups name arms of this record; `tuning` names the sweep holding a tuned claim's budget
            (figures/tuning.py: the one protocol every arm of it went through)
  power     each mini claim's power analysis, seeds per arm included, written by `python -m figures.power
            --write` before the runs it asks for (figures/claims/power.py)

A claim's alpha = 0 control is its check's `control` arm, or else the verdict rule's (the method's arm
with method.name independent: figures/claims/control.py), which must be an arm of the record too, so
that every arm a verdict reads is named here. paper/figures/contents.yaml orders the records.
"""
import functools
from dataclasses import dataclass, field

import yaml

from .paths import REPO, SAFE_LOADER

RECORDS = REPO / "paper" / "figures"
CONTENTS = RECORDS / "contents.yaml"
SODHANI = "Sodhani et al. 2021"   # A Closer Look at Codistillation for Distributed Training: this repository's paper
ANIL = "Anil et al. 2018"         # Large scale distributed neural network training through online distillation
SOURCES = (SODHANI, ANIL)
# Where a check names groups of runs: each an arm's name in a record (a dict in a claims file of one's own).
GROUP_FIELDS = ("a", "b", "group", "control", "minus", "target", "base", "treated")
POWER_MARK = "# ---- written by `python -m figures.power --write` before the runs it asks for; do not edit below"
FIELDS = {"id", "kind", "title", "section", "draw", "sweep", "source", "paper", "why_not_run", "arms", "drawn",
          "regimes", "controls", "claims", "power"}


class RecordError(ValueError):
    pass


@dataclass(frozen=True)
class Record:
    id: str
    kind: str
    title: str
    section: str
    draw: str
    sweep: str = None
    source: str = SODHANI
    paper: bool = True
    why_not_run: dict = field(default_factory=dict)
    arms: dict = field(default_factory=dict)
    drawn: tuple = ()
    regimes: dict = field(default_factory=dict)
    controls: tuple = ()
    claims: tuple = ()
    power: dict = field(default_factory=dict)

    @property
    def path(self):
        return RECORDS / f"{self.id}.yaml"

    @property
    def sweep_id(self):
        return self.sweep or self.id

    def arm(self, name):
        """An arm's selector by its name."""
        if not isinstance(name, str) or name not in self.arms:
            raise RecordError(f"{self.path}: {name!r} is not an arm of {self.id} (its arms: {', '.join(self.arms)})")
        return dict(self.arms[name])

    def resolved(self, claim):
        """A claim with its figure named and each group its arm's selector (what figures/claims reads)."""
        check = dict(claim["check"])
        for key in GROUP_FIELDS:
            if key in check and not isinstance(check[key], list):   # a list: the overrides of a job a
                check[key] = self.arm(check[key])                    # configured check composes, not runs
        if "candidates" in check:
            check["candidates"] = [{**c, "group": self.arm(c["group"])} for c in check["candidates"]]
        return {**{k: v for k, v in claim.items() if k not in ("headline", "bottom_line")}, "figure": self.id,
                "check": check}


def _record(fid):
    path = RECORDS / f"{fid}.yaml"
    if not path.exists():
        raise RecordError(f"{CONTENTS} lists {fid}, which has no record {path}")
    data = yaml.load(path.read_text(), Loader=SAFE_LOADER)
    unknown = set(data) - FIELDS
    if unknown or data.get("id") != fid:
        raise RecordError(f"{path}: " + (f"unknown fields {sorted(unknown)}" if unknown else f"id {data.get('id')!r}"))
    record = Record(**{**data, "drawn": tuple(data.get("drawn", ())), "controls": tuple(data.get("controls", ())),
                       "claims": tuple(data.get("claims", ()))})
    for name in record.drawn:
        record.arm(name)
    for row in record.controls:
        record.arm(row["arm"]), record.arm(row["reference"])
    return record


@functools.lru_cache(maxsize=1)
def _all():
    ids = yaml.load(CONTENTS.read_text(), Loader=SAFE_LOADER)
    on_disk = {p.stem for p in RECORDS.glob("*.yaml")} - {CONTENTS.stem}
    if set(ids) != on_disk or len(ids) != len(set(ids)):
        raise RecordError(f"{CONTENTS} must list each record of {RECORDS} once: listed {sorted(ids)}, "
                          f"records {sorted(on_disk)}")
    return tuple(_record(fid) for fid in ids)


def load_records():
    """Every record, in the report's order."""
    return list(_all())


def record(fid):
    for rec in _all():
        if rec.id == fid:
            return rec
    raise RecordError(f"no record {fid} in {RECORDS}")


def claims():
    """Every claim, its groups resolved to selectors, in the report's order."""
    return [rec.resolved(claim) for rec in _all() for claim in rec.claims]


def owner(claim_id):
    """The record holding a claim."""
    for rec in _all():
        if any(claim["id"] == claim_id for claim in rec.claims):
            return rec
    raise RecordError(f"no record has the claim {claim_id}")


def headlines(source=SODHANI):
    """The claims that head each figure's row of the Findings, of one paper's figures."""
    return [claim["id"] for rec in _all() if rec.source == source for claim in rec.claims if claim.get("headline")]


def controlled():
    """[(figure, label, codistillation group, metric, all_reduce group)]: the settings of the report's control
    table."""
    return [(rec.id, row["label"], rec.arm(row["arm"]), row["metric"], rec.arm(row["reference"]))
            for rec in _all() for row in rec.controls]


def bottom_line_claims():
    """The claims whose verdicts the report's bottom line states."""
    return [claim["id"] for rec in _all() for claim in rec.claims if claim.get("bottom_line")]


def power():
    """{claim id: its power analysis} over every record."""
    return {cid: entry for rec in _all() for cid, entry in (rec.power or {}).items()}


def write_power(entries):
    """Merge {claim id: power analysis} into the records of those claims (each below its POWER_MARK)."""
    owner = {claim["id"]: rec for rec in _all() for claim in rec.claims}
    missing = sorted(set(entries) - set(owner))
    if missing:
        raise RecordError(f"no record has the claims {missing}")
    for rec in {owner[cid].id: owner[cid] for cid in entries}.values():
        merged = {**(rec.power or {}), **{cid: e for cid, e in entries.items() if owner[cid] is rec}}
        merged = {claim["id"]: merged[claim["id"]] for claim in rec.claims if claim["id"] in merged}
        text = rec.path.read_text().split(POWER_MARK)[0].rstrip("\n")
        rec.path.write_text(text + "\n" + POWER_MARK + "\n" +
                            yaml.safe_dump({"power": merged}, sort_keys=False, width=110, allow_unicode=True))
    _all.cache_clear()
