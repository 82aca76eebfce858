"""Part 9 of benchmarks/results.md (what Codistiller's peer check costs per update), from what
bench_peer_check.py measured, and its plot."""
import matplotlib.pyplot as plt

from .tables import save, table

FIGURE_NAME = "peer_check"
# docs/library.md states the check's cost on gloo as "about 1 to 2 ms per update"; a default check
# that costs more than that is a regression there.
DEFAULT_COST_LIMIT_MS = 2.0


def section(part, targets):
    per_update = part["seconds_per_update"]
    off = per_update["off"]
    default_ms = 1e3 * (per_update["every 100 (default)"] - off)
    targets.append(("peer check at its default (every 100 exchanges), 2 models x 1 rank on gloo",
                    f"+{default_ms:.2f} ms per update", default_ms <= DEFAULT_COST_LIMIT_MS,
                    "its all_gather of six numbers per exchange is what costs: gloo takes about a millisecond "
                    "for any size; fewer exchanges or NCCL (tens of microseconds) make it cheaper"))
    rows = [[name, f"{1e3 * seconds:.3f}", f"{1e3 * (seconds - off):+.3f}", f"{100 * (seconds / off - 1):+.1f} %",
             ", ".join(f"{1e3 * value:.2f}" for value in part["rounds"][name])]
            for name, seconds in per_update.items()]
    return [f"2 models x 1 rank (gloo, forked on this machine, one thread each), an MLP of {part['params']:,} "
            f"parameters at batch {part['batch']}, predictions exchanged at every update, {part['steps']} timed "
            "updates; the check off, read every 100 exchanges (the default) and read at every exchange. Medians "
            "over rounds that alternate the settings.", "",
            table(["peer check", "ms per update", "vs off (ms)", "vs off", "rounds (ms)"], rows), "",
            "The check all_gathers six numbers at every exchange (its cost on gloo: about a millisecond, whatever "
            "the size); reading them makes the host wait for the device, once per read. On GPUs through NCCL "
            "that all_gather takes tens of microseconds: not measured here (no GPU). The experiments' engine "
            "turns the check on for GPU runs and off on CPU."]


def plot(part, path):
    names = list(part["seconds_per_update"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(names, [1e3 * part["seconds_per_update"][name] for name in names], color=["tab:gray", "tab:blue", "tab:orange"])
    for index, name in enumerate(names):
        ax.scatter([index] * len(part["rounds"][name]), [1e3 * value for value in part["rounds"][name]],
                   color="black", s=10, zorder=3)
    ax.set_ylabel("ms per update")
    ax.set_title("Peer check: cost per update (2 models x 1 rank, gloo, CPU)", fontsize=10)
    save(fig, path)
