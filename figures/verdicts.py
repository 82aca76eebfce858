"""`make verdicts`: each claim's verdict from your runs beside the committed one, for every figure
whose sweep you ran (a manifest in your results folder), and whether your runs came from the CPU
family and commit of the committed logs.

Both sides are judged by the same rule (figures/claims/rule.py) with the same margins: a mini margin
is a multiple of the workload's seed standard error, and that unit is taken from the committed logs
for both, so that a rerun of one figure is not judged in a unit its few runs would set; as in the
report, it is the unit of the claim's own paper's experiments (Sodhani et al.'s or Anil et al.'s). A claim
agrees when both sides reach the same verdict. Two machines' CPU kernels round differently, so a
rerun on another CPU family is a new draw of the noise, not a copy: verdicts decided with room to
spare should agree, borderline ones may not (each row says which side is borderline). A claim the
power analysis could not bring to its target power within the seed cap is decided by a fresh draw
of its runs only in about its declared power's share of draws: each row gives that power, and a
disagreement on such a claim is told apart from one the analysis did not expect."""
import argparse
import sys
from pathlib import Path

import pandas as pd

from . import registry
from .claims.evaluation import evaluate, load_claims
from .claims.power import TARGET, declared_power, declared_seeds, load_power
from .logs.provenance import provenance
from .report import resolutions

COMMITTED = "paper/logs"
SHOWN = ["claim", "figure", "committed", "yours", "agree", "seeds committed", "seeds yours", "seeds declared", "power"]


def ran_figures(results_root, scale):
    """The figure ids whose sweep has a manifest at `scale` in results_root."""
    return [spec.id for spec in registry.SPEC_LIST
            if (Path(results_root) / "sweeps" / spec.sweep_id / f"{scale}.json").exists()]


def _cell(outcome):
    return outcome.status + (" (borderline)" if outcome.borderline else "")


def compare(results_root, committed=COMMITTED, scale="mini", figures=None):
    """DataFrame, one row per claim of the figures run in results_root (or `figures`): the committed
    verdict, yours, whether they agree, and the seeds behind each against the declared count."""
    figures = figures or ran_figures(results_root, scale)
    claims = [claim for claim in load_claims() if claim["figure"] in figures]
    # A claim's margins are in the noise unit of its figure's source, from the committed logs of that
    # source's own experiments (report.resolutions, as the report judges it): only those and the
    # compared figures are read.
    sources = {registry.SPECS[claim["figure"]].source for claim in claims}
    read = [spec for spec in registry.SPEC_LIST
            if spec.id in figures or (spec.paper and spec.source in sources)]
    committed_data = {spec.id: registry.load(spec, committed, scale) for spec in read}
    units = {source: resolutions({scale: committed_data}, source)[scale] for source in sources}
    power = load_power()
    rows = []
    for claim in claims:
        unit = units[registry.SPECS[claim["figure"]].source]
        theirs = evaluate(claim, committed_data[claim["figure"]], unit)
        yours = evaluate(claim, registry.load(registry.SPECS[claim["figure"]], results_root, scale), unit)
        rows.append({"claim": claim["id"], "figure": claim["figure"], "committed": _cell(theirs),
                     "yours": _cell(yours), "agree": theirs.status == yours.status,
                     "seeds committed": theirs.seeds, "seeds yours": yours.seeds,
                     "seeds declared": declared_seeds(claim["id"], scale, power),
                     "power": declared_power(claim["id"], scale, power),
                     "numbers committed": theirs.reproduced, "numbers yours": yours.reproduced})
    return pd.DataFrame(rows, columns=[*SHOWN, "numbers committed", "numbers yours"])


def disagreements(table):
    """Lines on the claims whose verdicts differ: those whose declared power is below the target
    (a fresh draw decides them in about that share of draws, so a difference is the expected
    chance), and the others (a difference the analysis did not expect: the code, the data or a
    machine's rounding beyond another seed's)."""
    differing = table[~table["agree"]]
    if differing.empty:
        return []
    weak = differing[differing["power"].notna() & (differing["power"] < TARGET)]
    lines = []
    if len(weak):
        named = ", ".join(f"{row.claim} ({100 * row.power:.0f} %)" for row in weak.itertuples())
        lines.append(f"{len(weak)} of the {len(differing)} differing claims have less than {100 * TARGET:.0f} % power "
                     f"at their declared seeds (their records' seed cap kept them short of it): {named}. A rerun "
                     "reaches a decided verdict on such a claim only in about that share of draws, so these "
                     "differences are within the chance the records declare.")
    others = differing.drop(weak.index)
    if len(others):
        lines.append(f"{len(others)} differing claim(s) had at least {100 * TARGET:.0f} % power or none simulated: "
                     f"{', '.join(others['claim'])}. Not expected from a new draw of the noise alone.")
    for _, row in differing.iterrows():   # the numbers each side's verdict was computed from
        lines += [f"- {row['claim']}", f"  committed: {row['numbers committed']}", f"  yours:     {row['numbers yours']}"]
    return lines


def machines(results_root, committed):
    """Lines on where your runs and the committed runs of the same ids were made, and whether
    they share one CPU family."""
    yours = provenance(results_root)
    theirs = provenance(committed)
    theirs = theirs[theirs["run_id"].isin(yours["run_id"])]

    def described(frame):
        parts = [f"{n} run(s) on {machine} [{signature}] at {str(commit)[:10]}"
                 for (machine, signature, commit), n in
                 frame.fillna("not recorded").groupby(["machine", "signature", "commit"]).size().items()]
        return "; ".join(parts) or "none"
    same = set(yours["signature"].dropna()) == set(theirs["signature"].dropna()) and len(set(yours["signature"])) == 1
    return [f"Your runs: {described(yours)}.", f"The committed runs of the same ids: {described(theirs)}.",
            ("Same CPU family: a difference is the code's or the seeds', not the machine's rounding." if same else
             "Another CPU family (or a mix): CPU kernels round differently, so your runs are a new draw of the "
             "noise; verdicts decided with room to spare should still agree.")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results", help="your results folder (make reproduce's RESULTS)")
    parser.add_argument("--committed", default=COMMITTED)
    parser.add_argument("--scale", default="mini")
    parser.add_argument("--figures", nargs="*", help="figure ids (default: every figure whose sweep you ran)")
    args = parser.parse_args(argv)
    figures = args.figures or ran_figures(args.results, args.scale)
    if not figures:
        print(f"no sweep run at {args.scale} scale in {args.results}: run one first (make reproduce)")
        return 0
    table = compare(args.results, args.committed, args.scale, figures)
    shown = table.assign(agree=table["agree"].map({True: "yes", False: "DIFFERS"}),
                         power=table["power"].map(lambda value: "" if pd.isna(value) else f"{100 * value:.0f} %"))
    print(f"Verdicts at {args.scale} scale, figures {', '.join(figures)}: yours ({args.results}) beside the "
          f"committed ({args.committed})")
    print(shown[SHOWN].to_markdown(index=False))
    agree = int(table["agree"].sum())
    print(f"\n{agree} of {len(table)} claims agree.")
    for line in disagreements(table):
        print(line)
    short = table[table["seeds yours"] < table["seeds declared"]]
    if len(short):
        print(f"{len(short)} of your verdicts rest on fewer seeds than their power analysis declares "
              "(each figure's record, paper/figures/): `make reproduce SEEDS=all` runs every seed the sweep lists.")
    print("\n".join(machines(args.results, args.committed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
