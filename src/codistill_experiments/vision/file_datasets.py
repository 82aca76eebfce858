"""The data sets read from files (ImageNet's folders, CIFAR-10's batches), as classes of a module:
a loader worker started by spawn or forkserver receives its data set pickled, and pickle finds a
class by its module and name, never one made inside a function. A rank that the local launchers
spawn (on a machine with GPUs) starts its loader workers by spawn."""
import hashlib
import json
import os

import torchvision

from codistill.internals import atomic_write_bytes

from .. import datasets
from ..data_checks import CIFAR_FILES
from ..file_lock import exclusive_lock


class ScannedImageFolder(torchvision.datasets.ImageFolder):
    """torchvision's ImageFolder whose file list is scanned once per machine and read back by the
    other ranks there (ImageNet's train/ is 1.28M files: every rank listing them loads a shared file
    system 8 times per server). The list is kept in datasets.SCAN_CACHE under the folder's path and
    the modification times of its class folders (a file added or removed changes its folder's),
    written atomically by the first rank under a lock the others wait on."""

    @staticmethod
    def make_dataset(directory, class_to_idx, extensions=None, is_valid_file=None, allow_empty=False):
        stamps = [(name, os.stat(os.path.join(directory, name)).st_mtime_ns) for name in sorted(class_to_idx)]
        key = hashlib.sha1(json.dumps([os.path.realpath(directory), stamps, extensions]).encode()).hexdigest()[:16]
        datasets.SCAN_CACHE.mkdir(parents=True, exist_ok=True)
        cache = datasets.SCAN_CACHE / f"{key}.json"
        with exclusive_lock(datasets.SCAN_CACHE / f"{key}.lock"):
            if not cache.exists():
                samples = torchvision.datasets.ImageFolder.make_dataset(directory, class_to_idx, extensions,
                                                                        is_valid_file, allow_empty)
                atomic_write_bytes(cache, lambda handle: handle.write(json.dumps(samples).encode()))
        return [tuple(sample) for sample in json.loads(cache.read_text())]


class LocalCIFAR10(torchvision.datasets.CIFAR10):
    """CIFAR-10 from a local copy: present is enough (torchvision's md5 sums guard its own downloads)."""
    train_list = [[name, None] for name in CIFAR_FILES[:5]]
    test_list = [["test_batch", None]]
    meta = {"filename": "batches.meta", "key": "label_names", "md5": None}
