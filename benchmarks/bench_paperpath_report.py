"""Part 8 of benchmarks/results.md (the paper path's costs measurable here), from what
bench_paperpath.py measured, and its plot."""
import matplotlib.pyplot as plt

from .tables import save, table

FIGURE_NAME = "paperpath"
MIB = 2**20


def section(part, targets):
    folder, criteo, snapshots, device = (part[key] for key in ("imagefolder", "criteo", "snapshots", "device_copy"))
    ranks = folder["ranks"]
    one = snapshots["one_reader"]["bytes_read"]
    targets.append(("ImageNet's file list: one scan per machine", f"{folder['once_listed']:,} of "
                    f"{folder['plain_listed']:,} entries listed", folder["once_listed"] == folder["files"],
                    "the ranks of a machine must share the first one's scan (file_datasets.ScannedImageFolder)"))
    targets.append(("a model of k ranks reads a peer snapshot once", f"{one / MIB:.1f} MiB of "
                    f"{snapshots['every_rank']['bytes_read'] / MIB:.1f} MiB", one == 4 * snapshots["params"],
                    "its first rank must read and broadcast (FileCheckpointExchange's model_group)"))
    rows = [
        ["ImageNet file list (ImageFolder)", f"{folder['files']:,} files, {ranks} ranks",
         f"{folder['plain_listed']:,} entries, {folder['plain_s']:.2f} s",
         f"{folder['once_listed']:,} entries, {folder['once_s']:.2f} s"],
        ["Criteo TSV (parse)", f"{criteo['rows']:,} rows, {ranks} ranks",
         f"{criteo['plain_read_bytes'] / MIB:.1f} MiB read, {criteo['plain_s']:.2f} s, "
         f"{criteo['plain_memory_bytes'] / MIB:.1f} MiB of rows held",
         f"{criteo['once_read_bytes'] / MIB:.1f} MiB read, {criteo['once_s']:.2f} s, "
         f"{criteo['once_memory_bytes'] / MIB:.1f} MiB mapped (shared)"],
        ["snapshot files (transport=files)", f"{snapshots['params']:,} float32, {snapshots['ranks']} ranks of a model",
         f"{snapshots['every_rank']['bytes_read'] / MIB:.1f} MiB read, {snapshots['every_rank']['seconds']:.3f} s",
         f"{one / MIB:.1f} MiB read + a broadcast, {snapshots['one_reader']['seconds']:.3f} s"],
        ["in-memory training set on each GPU (paper Criteo, from sizes)", f"{device['rows']:,} rows",
         f"{device['whole_bytes'] / 2**30:.2f} GiB copied whole",
         f"{device['per_batch_bytes'] / MIB:.2f} MiB per batch of 2048 (sets above "
         f"{device['limit_bytes'] / 2**30:.0f} GiB stay in host memory)"]]
    return [f"The ranks of one {ranks}-GPU server, run one after another on this machine's local disk (on a "
            "shared file system the entries listed and bytes read are what costs).", "",
            table(["what", "size", "every rank for itself", "now"], rows), "",
            "On a local disk the scan is cheap in seconds; the count of entries listed is what loads a shared "
            "file system's metadata servers. Criteo's rows are mapped copy-on-write from one .npy per machine, "
            "so the page cache holds them once for all its ranks."]


def plot(part, path):
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    bars = [("ImageNet list\n(entries listed)", part["imagefolder"]["plain_listed"], part["imagefolder"]["once_listed"]),
            ("Criteo TSV\n(MiB read)", part["criteo"]["plain_read_bytes"] / MIB, part["criteo"]["once_read_bytes"] / MIB),
            ("snapshot of a peer\n(MiB read per model)", part["snapshots"]["every_rank"]["bytes_read"] / MIB,
             part["snapshots"]["one_reader"]["bytes_read"] / MIB)]
    for ax, (title, before, after) in zip(axes, bars):
        ax.bar(["every rank", "once"], [before, after], color=["tab:gray", "tab:blue"])
        ax.set_title(title, fontsize=10)
    fig.suptitle("Paper path: what the ranks of one server read, every rank for itself vs once (mini sizes)")
    save(fig, path)
