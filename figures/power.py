"""`python -m figures.power`: the power analysis of figures/claims/power.py run on the pilot's logs
(the committed runs), its records merged into paper/power.yaml, which is committed before the runs
it asks for. Default: the headline findings and Figure 2's claims."""
import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

from . import registry
from .claims.evaluation import load_claims
from .claims.findings import HEADLINES
from .claims.groups import NotRun
from .claims.power import CANDIDATES, CAP, DRAWS, HEADER, RNG_SEED, SEEDS, TARGET, analyse, load_power
from .report import resolutions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("claims", nargs="*", help="claim ids (default: the headline findings and Fig. 2's claims)")
    parser.add_argument("--results", default="paper/logs", help="the pilot's logs")
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--write", default=None, help="merge the records into this file (paper/power.yaml)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the powers the --write file already holds; simulate only the counts it lacks")
    args = parser.parse_args(argv)
    claims = {claim["id"]: claim for claim in load_claims()}
    wanted = args.claims or [c for c in claims if c in HEADLINES or claims[c]["figure"] == "fig2"]
    figures = {claims[c]["figure"] for c in wanted}
    data = {"mini": {spec.id: registry.load(spec, args.results, "mini") for spec in registry.SPEC_LIST}}
    resolution = resolutions(data)["mini"]
    records = {}
    before = load_power(args.write) if args.reuse and args.write else {}
    for claim_id in wanted:
        figure = data["mini"][claims[claim_id]["figure"]]
        try:
            records[claim_id] = analyse(claims[claim_id], figure.records, resolution, args.draws,
                                        before.get(claim_id, {}).get("power"))
        except NotRun as reason:
            records[claim_id] = {"seeds": SEEDS, "simulated": False, "why": str(reason)}
        print(claim_id, records[claim_id], flush=True)
    if args.write:
        path = Path(args.write)
        old = yaml.safe_load(path.read_text()) if path.exists() else {}
        merged = {**old.get("claims", {}), **records}
        commits = sorted({str(c) for f in figures for c in data["mini"][f].records.get("git_commit", pd.Series()).dropna()})
        header = {"target": TARGET, "candidates": list(CANDIDATES), "cap": CAP, "draws": args.draws,
                  "rng_seed": RNG_SEED, "pilot": args.results, "pilot_commits": commits or old.get("pilot_commits", [])}
        path.write_text(HEADER + yaml.safe_dump({**header, "claims": dict(sorted(merged.items()))}, sort_keys=False,
                                                width=110))
    return 0


if __name__ == "__main__":
    sys.exit(main())
