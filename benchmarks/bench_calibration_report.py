"""Part 3d of benchmarks/results.md (the step-time model's constants, measured alone by
bench_calibration.py): the collectives' fits per limit, the constants the model takes, the methods'
arithmetic alone, the plot."""
import matplotlib.pyplot as plt

from . import step_model_calibration as cal
from .tables import save, table

FIGURE_NAME = "calibration"
KIND_NAMES = {"broadcast": "broadcast (the link)", "all_reduce": "all_reduce",
              "all_gather_single": "chunked all_gather_single (checkpoints)", "all_gather": "all_gather (predictions)"}


def section(part, targets):
    if "skipped" in part:
        targets.append(("3d. calibration of the step-time model", "not run: " + part["skipped"], False,
                        "Cause: network namespaces and tc need root. Fix: run `make bench` as root."))
        return [f"Skipped: {part['skipped']}."]
    limits = part["limits"]
    fits = [[limit, KIND_NAMES[kind], f"{1000 * f['call_s']:.2f}", f"{1e9 * f['s_per_bit']:.3f}",
             f"{1 / f['s_per_bit'] / 1e9:.3g}", f"{1000 * f['intercept_s']:+.1f}",
             " / ".join(f"{1000 * s:,.0f}" for s in part["raw"]["collectives"][limit][kind]["seconds"])]
            for limit, at in limits.items() for kind, f in at["fits"].items()]
    constants = cal.constants_table(part)
    kinds = [[KIND_NAMES[kind], f"{c['wire']:.2f}", f"{1e9 * c['s_per_bit']:.3f}",
              " / ".join(f"{1000 * c['call_s'][limit]:.2f}" for limit in limits)]
             for kind, c in constants["collectives"].items()]
    alone = part["raw"]["alone"]
    arithmetic = [[name, " / ".join(f"{1000 * s:,.1f}" for s in alone[key]),
                   f"{1e9 * part['alone_s_per_bit'][key]:.3f}"]
                  for name, key in (("copy (copy_)", "copy"), ("torch's averager (local SGD)", "averaging"),
                                    ("DiLoCo's outer step (methods.DiLoCo)", "outer_step"))]
    sizes = " and ".join(f"{p:,}" for p in alone["params"])
    return ["Measured for the step-time model (section 6) and for nothing else: part 3's two namespaces and veth, "
            "one gloo rank in each, each collective alone on plain tensors of four sizes (the largest ~0.3 s of "
            f"transfer, at most 64 MiB; the fastest of {part['repeats']} calls per size: other processes only add "
            "time, and part 3 ran on a nearly idle machine), seconds against the bits of each rank's tensor fitted by "
            "least squares, and the per-call latency as the time per call of one-element calls back to back (the "
            "fastest of as many windows). The link's payload rate is the broadcast's (one direction, no "
            "arithmetic) 1 / slope.", "",
            table(["limit", "collective", "per call (ms)", "slope (ns/bit)", "1/slope (Gbit/s)", "intercept (ms)",
                   "times of the 4 sizes (ms)"], fits), "",
            "Constants the model takes (step_model_calibration.py): per collective, the **wire factor** (its slope at "
            "1 Gbit/s and 100 Mbit/s times the link rate, mean of the two: the times the ideal 2-rank transfer of "
            "each rank's tensor it takes; gloo's all_gathers take ~2 where all_reduce takes ~1), its **CPU time per "
            "bit** (its slope without a limit, where the veth moves bytes as fast as a copy, overlapping the "
            "transfer: the larger of the two counts) and its **per-call latency** at each limit (no limit / 1 Gbit/s "
            "/ 100 Mbit/s):", "",
            table(["collective", "wire factor", "CPU ns per bit", "per call (ms)"], kinds), "",
            "The methods' own arithmetic, no network, both ranks at once (as in part 3), on the shape twins of "
            f"{sizes} parameters (each on the real object on a one-rank group; slope per model bit). The checkpoint exchange "
            f"adds {cal.EXCHANGE_COPIES_PER_GATHERED_BIT} copies per gathered bit (its 4 copies of the model), DDP "
            f"{cal.DDP_COPIES_PER_BIT} per gradient bit (into its buckets and back):", "",
            table(["work", "seconds at the two sizes (ms)", "ns per model bit"], arithmetic)]


def plot(part, path):
    limits = list(part["limits"])
    fig, axes = plt.subplots(1, len(limits), figsize=(4.2 * len(limits), 3.6))
    for ax, limit in zip(axes, limits):
        for kind, series in part["raw"]["collectives"][limit].items():
            fit = part["limits"][limit]["fits"][kind]
            bits = [b / 1e6 for b in series["bits"]]
            line, = ax.plot(bits, [1000 * s for s in series["seconds"]], "o", label=KIND_NAMES[kind])
            ax.plot(bits, [1000 * (fit["intercept_s"] + fit["s_per_bit"] * 1e6 * b) for b in bits], "-",
                    color=line.get_color(), lw=0.8)
        ax.set_title(f"limit: {limit}")
        ax.set_xlabel("Mbit per rank's tensor")
    axes[0].set_ylabel("ms per call (points: fastest; lines: fit)")
    axes[0].legend(fontsize=7)
    save(fig, path)
