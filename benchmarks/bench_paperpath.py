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

import torch

from codistill_experiments.job_cost import PAPER_TRAIN_SIZES
from codistill_experiments.preflight import write_criteo_tsv, write_imagefolder
from codistill_experiments import datasets
from codistill_experiments.tabular import criteo
from codistill_experiments.training.sampling import RESIDENT_LIMIT_BYTES
from codistill_experiments.vision.file_datasets import ScannedImageFolder

from .benchlib import machine, spawn

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
    plain_s, parsed = timed(lambda: [criteo.read_criteo(path, 0.1, 0, 2) for _ in range(RANKS)])
    datasets.SCAN_CACHE = root / "scans"
    once_s, _ = timed(lambda: [criteo.parsed_once(path, 0.1, 0, 2) for _ in range(RANKS)])
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


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))
