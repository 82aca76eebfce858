"""The status of every figure's runs, read from the logs: per figure, the runs and seeds finished,
unfinished, missing, unreadable or failed, and those shared from other sweeps (`make status`).

    python -m figures.collect [--results paper/logs] [--scale mini] [--csv records.csv] [ids ...]
"""
import argparse

import pandas as pd

from . import registry
from .paths import COMMITTED


def main(argv=None):
    parser = argparse.ArgumentParser(description="status of every figure's runs, read from the logs")
    parser.add_argument("ids", nargs="*", help="figure/table ids (default: all)")
    parser.add_argument("--results", default=str(COMMITTED))
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    parser.add_argument("--csv", help="also write every collected record of these ids to this CSV file")
    args = parser.parse_args(argv)
    tables = []
    for spec in registry.select(args.ids):
        data = registry.load(spec, args.results, args.scale)
        print("\n".join(data.status_lines()))
        if args.csv and not data.records.empty:
            tables.append(data.records.assign(figure=spec.id))
    if args.csv:
        pd.concat(tables).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
