"""The frontier's tuning budget (sweeps/frontier_tuning.yaml): for each method, its 6 settings at one
knob value ranked by top-1 on the 10,000 training samples held out of training (never the
validation set the frontier reports); the best runs with 3 fresh seeds in the frontier sweep.

    python -m figures.tuning [--results paper/logs] [--scale mini]
"""
import argparse

import pandas as pd

from .claims.groups import final_per_run
from .drawing.frontier import TUNED, setting_value
from .logs.collect import collect
from .paths import COMMITTED

SWEEP = "frontier_tuning"


def ranking(records):
    """One row per tuning run: method, its tuned settings, held-out samples and final held-out top-1,
    best first within each method; `best` marks each method's chosen setting."""
    per_run = final_per_run(records, "val_top1")
    rows = []
    for _, run in per_run.iterrows():
        method = run["cfg.method.name"]
        setting = ", ".join(f"{key.split('.')[-1]}={setting_value(key, run[f'cfg.{key}'])}"
                            for key in TUNED.get(method, []))
        rows.append({"method": method, "setting": setting, "held_out_samples": int(run["val_samples"]),
                     "held_out_top1": float(run["value"])})
    table = pd.DataFrame(rows).sort_values(["method", "held_out_top1"], ascending=[True, False], ignore_index=True)
    table["best"] = ~table["method"].duplicated()
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(COMMITTED))
    parser.add_argument("--scale", default="mini", choices=["mini", "paper"])
    args = parser.parse_args(argv)
    records, _ = collect(args.results, SWEEP, args.scale, kinds=("eval",))
    if records.empty:
        raise SystemExit(f"no finished run of sweep {SWEEP} in {args.results} "
                         f"(python src/run.py -m sweep={SWEEP} scale={args.scale})")
    print(ranking(records).to_string(index=False))


if __name__ == "__main__":
    main()
