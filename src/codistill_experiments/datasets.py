"""What every workload builds (vision/workloads.py's image and cluster workloads, tabular/criteo.py's
clicks, language_model/transformer.py's text): a Workload (data sets and model factory) and the
in-memory data set the mini workloads share."""
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

# Where the ranks of a machine share what one of them read from a data set once (ImageNet's file
# list, Criteo's parsed rows): vision/file_datasets.py's ScannedImageFolder, tabular/criteo.py's parsed_once.
SCAN_CACHE = Path(os.environ.get("CODISTILL_SCAN_CACHE", Path(tempfile.gettempdir()) / "codistill-scans"))


@dataclass
class Workload:
    train_set: Dataset
    val_set: Dataset
    num_classes: int
    make_model: Callable[..., nn.Module]  # (init seed, per-group spec dict or None) -> model
    collate: Callable = default_collate


class InMemoryDataset(Dataset):
    """Tensors in memory, fetched a whole batch at a time (DataLoader calls __getitems__)."""

    def __init__(self, inputs, targets):
        self.inputs, self.targets = inputs, targets

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.inputs[index], self.targets[index]

    def __getitems__(self, indices):
        indices = torch.as_tensor(indices)
        return self.inputs[indices], self.targets[indices]


def batch_is_ready(batch):
    return batch
