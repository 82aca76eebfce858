"""`python -m figures.power`: the power analysis of figures/claims/power.py run on the pilot's logs
(the committed runs), each claim's result written into its figure's record (paper/figures/<id>.yaml,
below its power mark) and the protocol with the pilot's commits into paper/power.yaml, both committed
before the runs it asks for. Default: the headline findings and Figure 2's claims."""
import argparse
import sys

import pandas as pd
import yaml

from . import records, registry
from .claims.evaluation import load_claims
from .claims.findings import HEADLINES
from .claims.groups import NotRun
from .claims.power import CANDIDATES, CAP, DRAWS, HEADER, POWER, RNG_SEED, SEEDS, TARGET, analyse, load_power
from .report import resolutions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("claims", nargs="*", help="claim ids (default: the headline findings and Fig. 2's claims)")
    parser.add_argument("--results", default="paper/logs", help="the pilot's logs")
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--write", action="store_true",
                        help="merge the results into the figures' records and the protocol into paper/power.yaml")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the powers the records already hold; simulate only the counts they lack")
    args = parser.parse_args(argv)
    claims = {claim["id"]: claim for claim in load_claims()}
    wanted = args.claims or [c for c in claims if c in HEADLINES or claims[c]["figure"] == "fig2"]
    figures = {claims[c]["figure"] for c in wanted}
    data = {"mini": {spec.id: registry.load(spec, args.results, "mini") for spec in registry.SPEC_LIST}}
    resolution = resolutions(data)["mini"]
    records_by_claim = {}
    before = load_power() if args.reuse else {}
    for claim_id in wanted:
        figure = data["mini"][claims[claim_id]["figure"]]
        try:
            records_by_claim[claim_id] = analyse(claims[claim_id], figure.records, resolution, args.draws,
                                        before.get(claim_id, {}).get("power"))
        except NotRun as reason:
            records_by_claim[claim_id] = {"seeds": SEEDS, "simulated": False, "why": str(reason)}
        print(claim_id, records_by_claim[claim_id], flush=True)
    if args.write:
        records.write_power(records_by_claim)
        old = yaml.safe_load(POWER.read_text()) if POWER.exists() else {}
        commits = sorted({str(c) for f in figures for c in data["mini"][f].records.get("git_commit", pd.Series()).dropna()})
        header = {"target": TARGET, "candidates": list(CANDIDATES), "cap": CAP, "draws": args.draws,
                  "rng_seed": RNG_SEED, "pilot": args.results, "pilot_commits": commits or old.get("pilot_commits", [])}
        POWER.write_text(HEADER + yaml.safe_dump(header, sort_keys=False, width=110))
    return 0


if __name__ == "__main__":
    sys.exit(main())
