"""Which samples each rank sees. A fresh seeded permutation per epoch is cut into batches of
`batch_per_model`; rank r of a model group takes the r-th of k equal shards of each batch.
Groups given the same order seed see the same batches at the same positions: the coordinated
sampling that exchanging predictions needs (paper Section 3)."""
import torch
from torch.utils.data import Sampler, Subset


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

    def __iter__(self):
        order = epoch_permutation(self.n_samples, self.order_seed, self.epoch)
        start = self.rank_in_group * self.shard
        for batch in range(self.start_batch, len(self)):
            first = batch * self.batch_per_model + start
            yield order[first:first + self.shard].tolist()


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


def data_subset(train_set, data_cfg):
    """The fixed 1/k of the training set that every run with data.fraction = 1/k trains on
    (the same subset for every method and seed, chosen by data.subset_seed)."""
    if data_cfg.fraction >= 1.0:
        return train_set
    size = round(len(train_set) * data_cfg.fraction)
    order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(data_cfg.subset_seed))
    return Subset(train_set, order[:size].tolist())
