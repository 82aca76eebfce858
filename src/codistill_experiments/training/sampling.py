"""Which samples each rank sees. A fresh seeded permutation per epoch is cut into batches of
`batch_per_model`; rank r of a model group takes the r-th of k equal shards of each batch.
Groups given the same order seed see the same batches at the same positions: the coordinated
sampling that exchanging predictions needs (paper Section 3). The random augmentations of a
batch (crops, flips) are drawn from a seed of its own, made of the same order seed, the epoch,
the batch and the rank's place in its model group: peers see the same views of the same images,
the ranks of one model different ones, whatever process or loader worker reads them.
`batch_source` turns the sampler into the batches a rank trains on, on its device."""
import copy
import hashlib
import random

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from ..datasets import InMemoryDataset, batch_is_ready


def epoch_permutation(n_samples, order_seed, epoch):
    generator = torch.Generator().manual_seed(order_seed * 100_003 + epoch)
    return torch.randperm(n_samples, generator=generator)


class CoordinatedBatchSampler(Sampler):
    def __init__(self, n_samples, batch_per_model, ranks_per_group, rank_in_group, order_seed):
        self.n_samples, self.batch_per_model = n_samples, batch_per_model
        self.shard = batch_per_model // ranks_per_group
        self.rank_in_group, self.order_seed = rank_in_group, order_seed
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch, start_batch=0):
        """start_batch > 0 when a resumed run re-enters an epoch part-way."""
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self):
        return self.n_samples // self.batch_per_model

    def index_batches(self, device=None):
        """This rank's shard of each remaining batch of the epoch, as index tensors (on `device`:
        one copy of the permutation per epoch, none per batch)."""
        order = epoch_permutation(self.n_samples, self.order_seed, self.epoch).to(device)
        start = self.rank_in_group * self.shard
        for batch in range(self.start_batch, len(self)):
            first = batch * self.batch_per_model + start
            yield order[first:first + self.shard]

    def __iter__(self):
        """Each remaining batch's indices for this rank, with the seed of its augmentations."""
        for batch, indices in enumerate(self.index_batches(), start=self.start_batch):
            yield SeededBatch(indices.tolist(), augmentation_seed(self.order_seed, self.epoch, batch,
                                                                  self.rank_in_group))


def augmentation_seed(order_seed, epoch, batch, rank_in_group):
    """The seed of the random transforms of one rank's share of one batch: a function of where
    the batch stands (order seed, epoch, batch) and of the rank's place in its model group only,
    so that peers draw the same ones (Python's hash of a tuple is salted per process; sha256 is not)."""
    digest = hashlib.sha256(f"{order_seed}/{epoch}/{batch}/{rank_in_group}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1   # torch.manual_seed takes up to 2**63 - 1


class SeededBatch(list):
    """A batch's sample indices and the seed of their augmentations (what a DataLoader hands its
    worker, or its own fetcher, for one batch)."""

    def __init__(self, indices, seed):
        super().__init__(indices)
        self.seed = seed


class SeededAugmentation(Dataset):
    """`dataset`, fetched a batch at a time with torch's and Python's random streams seeded by the
    batch's own seed (SeededBatch): torchvision's random transforms draw from them, so a batch gets
    the same crops and flips in any process that reads it. The process's streams are left as they
    were (a loader without workers fetches in the training process)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def __getitems__(self, batch):
        fetch = getattr(self.dataset, "__getitems__", None)   # a Subset's, or a data set's own batch read
        python_stream = random.getstate()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(batch.seed)
                random.seed(batch.seed)
                return fetch(batch) if fetch else [self.dataset[index] for index in batch]
        finally:
            random.setstate(python_stream)


def in_memory_tensors(dataset):
    """(inputs, targets) of a data set of tensors in memory (an InMemoryDataset, or a Subset of
    one: its rows taken once), else None (files read and transformed per sample)."""
    if isinstance(dataset, Subset):
        tensors = in_memory_tensors(dataset.dataset)
        if tensors is None:
            return None
        rows = torch.as_tensor(dataset.indices)
        return tuple(tensor[rows] for tensor in tensors)
    # A subclass that fetches its own way (e.g. augments) keeps the DataLoader.
    if getattr(type(dataset), "__getitems__", None) is not InMemoryDataset.__getitems__:
        return None
    return dataset.inputs, dataset.targets


RESIDENT_LIMIT_BYTES = 2**30   # in-memory training sets up to 1 GiB are copied onto the device whole


class InMemoryBatches:
    """The coordinated sampler's batches cut straight out of tensors held on the training device
    (the mini workloads' data: megabytes). A DataLoader yields the same batches
    (InMemoryDataset.__getitems__ indexes the same rows) at the cost of a list of indices, a
    fetcher, a collate call and a copy to the device per batch (benchmarks/results.md, part 4)."""

    def __init__(self, inputs, targets, sampler, device, resident_limit_bytes=RESIDENT_LIMIT_BYTES):
        size = inputs.nbytes + targets.nbytes
        # A set larger than the limit (Criteo's 6.4 GB of rows on a 16 GB V100) stays in host memory;
        # each batch is cut there and sent to the device.
        self.resident = device.type == "cpu" or size <= resident_limit_bytes
        where = device if self.resident else torch.device("cpu")
        self.inputs, self.targets = inputs.to(where), targets.to(where)
        self.sampler, self.device = sampler, device

    def __iter__(self):
        inputs, targets = self.inputs, self.targets
        for indices in self.sampler.index_batches(self.device if self.resident else torch.device("cpu")):
            if self.resident:
                yield inputs[indices], targets[indices]
            else:
                yield inputs[indices].to(self.device, non_blocking=True), targets[indices].to(self.device)


class EvalShardSampler(Sampler):
    """Rank r of k evaluates samples r, r+k, ... in batches; every sample once per group."""

    def __init__(self, n_samples, ranks_per_group, rank_in_group, batch_size):
        self.indices = list(range(rank_in_group, n_samples, ranks_per_group))
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.indices), self.batch_size):
            yield self.indices[start:start + self.batch_size]


def held_out_split(train_set, val_set, data_cfg):
    """(training set, evaluation set). With data.holdout = m > 0 (tuning a method's settings without
    looking at the validation set a figure reports), a fixed m training samples (the same for every
    method and seed, drawn by data.subset_seed) are taken out of training and evaluated on instead
    of the validation set, through the validation set's transforms (evaluation_view); data.fraction
    then applies to the rest."""
    holdout = data_cfg.get("holdout", 0)   # an optional key (+data.holdout)
    if holdout <= 0:
        return train_set, val_set
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(data_cfg.subset_seed)).tolist()
    return Subset(train_set, order[holdout:]), Subset(evaluation_view(train_set, val_set), order[:holdout])


def evaluation_view(train_set, val_set):
    """The training samples as the validation set is read: a torchvision data set (ImageFolder,
    CIFAR-10) copied with the validation set's transform, its file list shared; a data set without
    transforms (tensors in memory) as it is."""
    if getattr(train_set, "transform", None) is None:
        return train_set
    view = copy.copy(train_set)
    view.transform = val_set.transform
    return view


def data_subset(train_set, data_cfg):
    """The fixed 1/k of the training set that every run with data.fraction = 1/k trains on
    (the same subset for every method and seed, chosen by data.subset_seed)."""
    if data_cfg.fraction >= 1.0:
        return train_set
    size = round(len(train_set) * data_cfg.fraction)
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(data_cfg.subset_seed))
    return Subset(train_set, order[:size].tolist())


def shard_indices(n_samples, group, n_groups, seed):
    """The indices of shard `group` of `n_groups`: a permutation of range(n_samples) drawn by
    `seed`, cut into n_groups contiguous shards of n_samples // n_groups each. The shards are
    disjoint; the last n_samples % n_groups samples of the permutation are in none (dropped, so
    that every model has as many updates per epoch)."""
    size = n_samples // n_groups
    order = torch.randperm(n_samples, generator=torch.Generator().manual_seed(seed))
    return order[group * size:(group + 1) * size].tolist()


def model_shard(train_set, group, n_groups, seed):
    """data.split=disjoint (Anil et al. 2018 Sec. 3.3.2): the part of the training set that model
    group `group` of `n_groups` trains on (shard_indices, seed data.subset_seed), taken after
    data.holdout and data.fraction."""
    return Subset(train_set, shard_indices(len(train_set), group, n_groups, seed))


def to_device(device, batch, channels_last=False):
    inputs, targets = (tensor.to(device, non_blocking=True) for tensor in batch)
    if channels_last and inputs.dim() == 4:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return inputs, targets


class DeviceBatches:
    """A DataLoader's (or any) batches moved to the device, channels-last when asked."""

    def __init__(self, batches, device, channels_last):
        self.batches, self.device, self.channels_last = batches, device, channels_last

    def __iter__(self):
        for batch in self.batches:
            yield to_device(self.device, batch, self.channels_last)


def batch_source(workload, train_set, sampler, settings, device):
    """What the loop iterates each epoch: this rank's batches, on the device. Tensors held in
    memory are indexed directly (InMemoryBatches: the same batches, without a
    DataLoader's per-batch cost); data read from files, or with loader workers asked for, go
    through a DataLoader."""
    direct = workload.collate is batch_is_ready and settings.loader_workers == 0
    tensors = in_memory_tensors(train_set) if direct else None
    if tensors is not None:
        batches = InMemoryBatches(*tensors, sampler, device)
        return DeviceBatches(batches, device, True) if settings.channels_last else batches
    loader = DataLoader(SeededAugmentation(train_set), batch_sampler=sampler, collate_fn=workload.collate,
                        **loader_options(settings.loader_workers, device))
    return DeviceBatches(loader, device, settings.channels_last)


def loader_options(workers, device):
    """A DataLoader's workers, kept from one epoch (or evaluation) to the next rather than started
    again each time, and its pinned host memory when batches go to a GPU."""
    return {"num_workers": workers, "persistent_workers": workers > 0, "pin_memory": device.type == "cuda"}
