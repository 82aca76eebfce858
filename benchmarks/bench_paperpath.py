"""Part 8 of `make bench`: the paper path's costs that this machine can measure, each before and after
its change, for the ranks of one 8-GPU server (run one after another here; on a server at once):
- ImageNet's file list: every rank scanning its ImageFolder vs one scan per machine
  (file_datasets.ScannedImageFolder), on a generated tree;
- Criteo's TSV: every rank parsing it vs one parse per machine mapped by all (tabular/criteo.py parsed_once),
  on a generated file, with the rows each rank holds in memory;
- snapshot files (method.transport=files, the translation runs): every rank of a model reading each
  peer snapshot vs its first rank reading and broadcasting (FileCheckpointExchange's model_group),
  2 real gloo ranks;
- what an in-memory training set puts on each GPU: all of Criteo's rows vs a batch
  (sampling.InMemoryBatches keeps sets above RESIDENT_LIMIT_BYTES in host memory), from sizes.
"""
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from codistill_experiments import datasets
from codistill_experiments.job_cost import PAPER_TRAIN_SIZES
from codistill_experiments.preflight import write_criteo_tsv, write_imagefolder
from codistill_experiments.tabular import criteo as criteo_data
from codistill_experiments.training.sampling import RESIDENT_LIMIT_BYTES
from codistill_experiments.vision.file_datasets import ScannedImageFolder

from .benchlib import machine, spawn
from .tables import save, table

RANKS = 8                 # the ranks of one server
CLASSES, PER_CLASS = 200, 50
CRITEO_ROWS = 20_000
SNAPSHOT_PARAMS = 4_000_000


def timed(function):
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def imagefolder(root, progress):
    import torchvision

    tree = write_imagefolder(root / "tree", {"train": PER_CLASS}, classes=[f"n{i:08d}" for i in range(CLASSES)])
    plain_s, _ = timed(lambda: [torchvision.datasets.ImageFolder(tree / "train") for _ in range(RANKS)])
    datasets.SCAN_CACHE = root / "scans"
    once_s, built = timed(lambda: [ScannedImageFolder(tree / "train") for _ in range(RANKS)])
    progress(f"imagefolder: {RANKS} scans {plain_s:.2f} s, one scan shared {once_s:.2f} s")
    files = CLASSES * PER_CLASS
    return {"files": files, "ranks": RANKS, "plain_s": plain_s, "once_s": once_s,
            "plain_listed": RANKS * files, "once_listed": files, "samples": len(built[-1])}


def criteo(root, progress):
    path = write_criteo_tsv(root / "criteo", rows=CRITEO_ROWS) / "train.txt"
    plain_s, parsed = timed(lambda: [criteo_data.read_criteo(path, 0.1, 0, 2) for _ in range(RANKS)])
    datasets.SCAN_CACHE = root / "scans"
    once_s, _ = timed(lambda: [criteo_data.parsed_once(path, 0.1, 0, 2) for _ in range(RANKS)])
    rows_bytes = sum(t.nbytes for part in parsed[0][:2] for t in part)
    progress(f"criteo: {RANKS} parses {plain_s:.2f} s, one parse mapped by all {once_s:.2f} s")
    return {"rows": CRITEO_ROWS, "tsv_bytes": path.stat().st_size, "plain_s": plain_s, "once_s": once_s,
            "plain_read_bytes": RANKS * path.stat().st_size, "once_read_bytes": path.stat().st_size,
            "plain_memory_bytes": RANKS * rows_bytes, "once_memory_bytes": rows_bytes}


def _snapshot_reads(rank, world_size, root, one_reader):
    import torch.distributed as dist

    from codistill import SnapshotStore
    from codistill.internals import FileCheckpointExchange

    loaded = []

    class CountedStore(SnapshotStore):
        def load(self, model, step):
            tensors = super().load(model, step)
            loaded.append(sum(t.nbytes for t in tensors.values()))
            return tensors

    teacher = torch.nn.Linear(SNAPSHOT_PARAMS // 1000, 1000, bias=False)
    exchange = FileCheckpointExchange(CountedStore(root), 0, 2, 1, [teacher],
                                      model_group=dist.group.WORLD if one_reader else None)
    dist.barrier()
    started = time.perf_counter()
    exchange.refresh(0, None)
    dist.barrier()
    return {"bytes_read": sum(loaded), "seconds": time.perf_counter() - started}


def snapshots(root, progress):
    from codistill import SnapshotStore

    peer = torch.nn.Linear(SNAPSHOT_PARAMS // 1000, 1000, bias=False)
    SnapshotStore(root / "snapshots").publish(1, 0, dict(peer.named_parameters()))
    out = {"params": SNAPSHOT_PARAMS, "ranks": 2}
    for name, one_reader in (("every_rank", False), ("one_reader", True)):
        ranks = spawn(2, _snapshot_reads, str(root / "snapshots"), one_reader)
        out[name] = {"bytes_read": sum(r["bytes_read"] for r in ranks), "seconds": max(r["seconds"] for r in ranks)}
        progress(f"snapshots, {name}: {out[name]['bytes_read'] / 2**20:.1f} MiB read in {out[name]['seconds']:.3f} s")
    return out


def device_copy():
    """Bytes an in-memory training set puts on each GPU: the whole set, or a batch of it."""
    rows = PAPER_TRAIN_SIZES["criteo"]
    whole = rows * (39 * 4 + 8)                # float32 inputs, int64 labels
    batch = 2048 * (39 * 4 + 8)
    return {"rows": rows, "whole_bytes": whole, "limit_bytes": RESIDENT_LIMIT_BYTES,
            "kept_on_host": whole > RESIDENT_LIMIT_BYTES, "per_batch_bytes": batch}


def run(progress=print):
    saved = datasets.SCAN_CACHE
    try:
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            return {"machine": machine(), "imagefolder": imagefolder(root, progress),
                    "criteo": criteo(root, progress), "snapshots": snapshots(root, progress),
                    "device_copy": device_copy()}
    finally:
        datasets.SCAN_CACHE = saved


# Part 8 of results.md, and its plot.

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


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))
