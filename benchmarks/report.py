"""benchmarks/results.md and figures/out/bench_*.png from the numbers bench.py measured
(benchmarks/results.json): each part's section and plot, drawn by the module that measures it
(bench_<part>.py: section(part, targets) and plot(part, path)), in the order of SECTIONS; a table of
the targets marked met or missed, and for a missed target its cause and what would fix it."""
from pathlib import Path

import seaborn as sns

from figures import kill_rejoin

from . import (
    bench_bytes,
    bench_calibration,
    bench_collect,
    bench_listing,
    bench_loop,
    bench_modeljobs,
    bench_network,
    bench_network_methods,
    bench_overhead,
    bench_paperpath,
    bench_peer_check,
    bench_sharded,
    bench_stepmodel,
)
from .tables import load_note, mark, table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_MD = HERE / "results.md"
FIGURES = ROOT / "figures" / "out"

# (part in results.json, title, the module that measures it and draws its section): in the order of
# results.md. Part 3 draws two sections: its own, and 3c from the methods it measured for
# bench_network_methods.py.
SECTIONS = [("bytes", "1. Bits per update: engine counters vs the paper's formulas", bench_bytes),
            ("overhead", "2. Engine overhead per update (CPU, gloo)", bench_overhead),
            ("network", "3. Simulated slow network", bench_network),
            ("sharded", "3b. Checkpoint exchanges alone, one and two ranks per node", bench_sharded),
            ("network", "3c. PowerSGD, local SGD and DiLoCo on the same network", bench_network_methods),
            ("calibration", "3d. The step-time model's constants, measured alone on the same network",
             bench_calibration),
            ("loop", "4. Training loop: engine vs a plain PyTorch loop", bench_loop),
            ("collect", "5. Figures pipeline: collect at scale", bench_collect),
            ("stepmodel", "6. Step-time model past one machine", bench_stepmodel),
            ("modeljobs", "7. " + kill_rejoin.TITLE, bench_modeljobs),
            ("paperpath", "8. The paper path: what the ranks of a server read, every rank for itself vs once",
             bench_paperpath),
            ("peercheck", "9. The library's peer check: its cost per update", bench_peer_check),
            ("listing", "10. Sweeps: composing every job before anything is queued", bench_listing)]


def remeasured_lines(results):
    """Which parts were measured again after the run above, by what, when and at which commit."""
    lines = []
    for run in results.get("remeasured", []):
        m = run["machine"]
        lines.append(f"Measured again since, replacing those parts: {', '.join(run['parts'])}, by `{run['command']}` on "
                     f"{m['date']}, commit {m['git_commit']} ({run['total_seconds'] / 60:.1f} min).")
    return [*lines, ""] if lines else []


def write(results):
    sns.set_theme(style="whitegrid")
    FIGURES.mkdir(parents=True, exist_ok=True)
    m = results["machine"]
    lines = ["# Benchmark results", "",
             f"Written by `{results['command']}` (benchmarks/bench.py) on {m['date']}, commit {m['git_commit']}: "
             f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}, "
             f"torch {m['torch']}, no GPU. Total {results['total_seconds'] / 60:.1f} min. Raw numbers: "
             "benchmarks/results.json; plots: figures/out/bench_*.png (made by the same command).", "",
             *remeasured_lines(results),
             "These measure this implementation on this machine (CPU, gloo, shape twins of the paper's models on "
             "generated data): they are not the paper's numbers.", ""]
    targets, written, body = [], [], []
    for key, title, module in SECTIONS:
        part = results["parts"].get(key)
        body += [f"## {title}", ""]
        if part is None:
            body += ["Not run in this invocation.", ""]
            continue
        body += module.section(part, targets)
        if "seconds" in part:
            body += ["", load_note(part).format(cores=m["cores"])]
        if "skipped" not in part:
            path = FIGURES / f"bench_{getattr(module, 'FIGURE_NAME', key)}.png"
            module.plot(part, path)
            written.append(path)
            body += ["", f"Plot: `figures/out/{path.name}`."]
        body.append("")
    lines += ["## Targets", "", table(["target", "measured", "status"],
                                      [[name, value, mark(met)] for name, value, met, _ in targets]), ""]
    missed = [(name, why) for name, _, met, why in targets if not met]
    if missed:
        lines += ["### Why a target was missed, and what would fix it", ""]
        lines += [f"- **{name}.** {why}" for name, why in missed]
        lines.append("")
    lines += body
    RESULTS_MD.write_text("\n".join(lines).rstrip() + "\n")
    return [RESULTS_MD, *written]
