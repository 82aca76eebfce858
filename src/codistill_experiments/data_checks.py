"""Whether a paper-scale data set is on disk in the layout its loader reads, without torch: compose-time
validation (config.data_problem) runs these before a job is queued or a dry run lists it."""
from pathlib import Path


def check_imagefolder_root(root):
    """The layout ImageNet must have on disk; returns a message, or None when it is usable."""
    root = Path(root)
    for split in ("train", "val"):
        split_dir = root / split
        if not split_dir.is_dir() or not any(p.is_dir() for p in split_dir.iterdir()):
            return (f"workload.data_root={str(root)!r}: expected {split_dir}/<class>/<image>.JPEG "
                    "(torchvision ImageFolder layout, one folder per class, same classes in train/ and val/)")
    return None


CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def check_cifar_root(root):
    folder = Path(root) / "cifar-10-batches-py"
    missing = [name for name in CIFAR_FILES if not (folder / name).is_file()]
    if missing:
        return (f"workload.data_root={str(root)!r}: expected CIFAR-10's python version in {folder}/ "
                f"({', '.join(CIFAR_FILES)}); missing: {', '.join(missing)}")
    return None


CRITEO_FILE = "train.txt"
CRITEO_FIELDS = 1 + 13 + 26   # label, integer features, categorical features


def check_criteo_root(root):
    """Criteo Display Advertising Challenge's train.txt (tab-separated, no header), by its first line."""
    path = Path(root) / CRITEO_FILE
    expected = (f"workload.data_root={str(root)!r}: expected Criteo's {path} (the Display Advertising Challenge's "
                f"train.txt: label, 13 integer and 26 hexadecimal categorical columns, tab-separated, no header)")
    if not path.is_file():
        return expected
    with open(path, encoding="utf-8", errors="replace") as handle:
        fields = handle.readline().rstrip("\n").split("\t")
    if len(fields) != CRITEO_FIELDS:
        return f"{expected}; its first line has {len(fields)} tab-separated fields, not {CRITEO_FIELDS}"
    return None
