"""The batches a rank trains on: tensors held in memory are indexed directly (no DataLoader), and
must give exactly the batches a DataLoader over the same coordinated sampler gives."""
from types import SimpleNamespace

import torch
from omegaconf import OmegaConf
from torch.utils.data import default_collate

from codistill_experiments.training.sampling import (
    CoordinatedBatchSampler,
    DeviceBatches,
    InMemoryBatches,
    batch_source,
    data_subset,
    in_memory_tensors,
)
from codistill_experiments.workloads import InMemoryDataset, Workload, batch_is_ready

CPU = torch.device("cpu")
SETTINGS = SimpleNamespace(loader_workers=0, channels_last=False)


def dataset(n=103):
    generator = torch.Generator().manual_seed(1)
    return InMemoryDataset(torch.randn(n, 5, generator=generator), torch.randint(10, (n,), generator=generator))


def workload(train_set, collate=batch_is_ready):
    return Workload(train_set=train_set, val_set=train_set, num_classes=10, make_model=None, collate=collate)


def epoch_batches(source, sampler, epoch, start_batch=0):
    sampler.set_epoch(epoch, start_batch)
    return list(source)


def dataloader_batches(train_set, sampler, epoch, start_batch=0):
    """What the engine trained on before: torch's DataLoader over the same sampler."""
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=batch_is_ready)
    return epoch_batches(loader, sampler, epoch, start_batch)


def test_in_memory_batches_equal_the_dataloaders():
    """Both ranks of a 2-rank group, a subset of the data (data.fraction), two epochs and a
    resume part-way through one: the same inputs and targets, batch for batch."""
    train_set = data_subset(dataset(), OmegaConf.create({"fraction": 0.8, "subset_seed": 3}))
    for rank in range(2):
        sampler = CoordinatedBatchSampler(len(train_set), 16, 2, rank, order_seed=7)
        source = batch_source(workload(train_set), train_set, sampler, SETTINGS, CPU)
        assert isinstance(source, InMemoryBatches)
        for epoch, start_batch in ((0, 0), (1, 0), (1, 3)):
            direct = epoch_batches(source, sampler, epoch, start_batch)
            reference = dataloader_batches(train_set, sampler, epoch, start_batch)
            assert len(direct) == len(reference) == len(sampler) - start_batch
            for (inputs, targets), (ref_inputs, ref_targets) in zip(direct, reference):
                assert inputs.shape == (8, 5)
                assert torch.equal(inputs, ref_inputs) and torch.equal(targets, ref_targets)


def test_data_that_is_not_plain_tensors_keeps_the_dataloader():
    class Augmented(InMemoryDataset):
        def __getitems__(self, indices):
            inputs, targets = super().__getitems__(indices)
            return inputs + 1, targets

    plain = dataset()
    augmented = Augmented(plain.inputs, plain.targets)
    assert in_memory_tensors(augmented) is None
    assert in_memory_tensors(torch.utils.data.TensorDataset(plain.inputs, plain.targets)) is None
    sampler = CoordinatedBatchSampler(len(augmented), 16, 1, 0, order_seed=0)
    source = batch_source(workload(augmented), augmented, sampler, SETTINGS, CPU)
    assert isinstance(source, DeviceBatches)
    [(inputs, _), *_] = epoch_batches(source, sampler, 0)
    assert torch.equal(inputs, plain.inputs[next(iter(sampler))] + 1)
    # Loader workers asked for, or a collate function of the workload's own: a DataLoader too.
    workers = SimpleNamespace(loader_workers=1, channels_last=False)
    assert isinstance(batch_source(workload(plain), plain, sampler, workers, CPU), DeviceBatches)
    assert isinstance(batch_source(workload(plain, default_collate), plain, sampler, SETTINGS, CPU), DeviceBatches)
