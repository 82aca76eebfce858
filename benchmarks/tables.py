"""The table and plot helpers of every section of benchmarks/results.md: number formats, markdown
tables, a target's met/missed mark, the note on the machine's load under a part, and saving a plot
(matplotlib's Agg backend: the plots are files only)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def fmt_bits(bits):
    return f"{bits:.4g}"


def mark(met):
    return "**met**" if met else "**missed**"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def load_note(part):
    before, after = part["load_before"], part["load_after"]
    return (f"_{part['seconds']:.0f} s; load average {before[0]:.1f} before, {after[0]:.1f} after "
            f"(on {{cores}} cores: above {{cores}}, other processes were competing for the CPUs)._")


def legend_below(fig, ax, ncol=4):
    """One legend for the whole figure, from `ax`'s lines, below the panels (save keeps it)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=7, bbox_to_anchor=(0.5, 0.0))


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # keeps a legend placed below the panels
    plt.close(fig)
