"""The supervised term of a vision model's loss, with label smoothing towards a prior: Anil et al.
2018 (Sec. 3.3, Fig. 2a) compare codistillation with two label smoothing baselines, one matching
the uniform distribution, one the unigram distribution (the classes' frequencies).

    loss = (1 - w) CE(y, p) + w H(prior, p),   H(q, p) = -sum_c q_c log p_c

With the uniform prior this is torch's F.cross_entropy(label_smoothing=w); with w = 0 it is plain
cross-entropy, computed by F.cross_entropy itself (a run at w = 0 trains exactly what it trained
before the option existed)."""
import torch
import torch.nn.functional as F
from torch.utils.data import Subset


def dataset_targets(dataset):
    """The class of every sample of a data set, in its order, read from its `targets` (an
    InMemoryDataset's tensor, torchvision's ImageFolder and CIFAR10 lists) through any Subsets,
    without loading a sample."""
    if isinstance(dataset, Subset):
        return dataset_targets(dataset.dataset)[torch.as_tensor(dataset.indices)]
    return torch.as_tensor(dataset.targets)


def class_frequencies(targets, num_classes):
    """The unigram distribution of `targets`: each class's share of the samples."""
    counts = torch.bincount(torch.as_tensor(targets).flatten(), minlength=num_classes).double()
    return (counts / counts.sum()).float()


class SupervisedLoss:
    """(1 - w) CE(y, p) + w H(prior, p), averaged over the batch. prior: uniform, or unigram: the
    class frequencies of `targets`. The engine passes the targets of the training set that
    data.holdout and data.fraction leave, before data.split cuts it into shards: with disjoint
    shards every model smooths towards the same prior, that of the whole training set."""

    def __init__(self, weight, prior, num_classes, targets=None):
        self.weight = float(weight)
        if prior == "uniform":
            self.prior = torch.full((num_classes,), 1.0 / num_classes)
        elif prior == "unigram":
            self.prior = class_frequencies(targets, num_classes)
        else:
            raise ValueError(f"supervised.smoothing_prior={prior!r}: uniform or unigram")

    @classmethod
    def from_config(cls, supervised, num_classes, train_set):
        """supervised: the config's `supervised` block. The training targets are read only for a
        unigram prior that is used (w > 0)."""
        weight, prior = float(supervised.label_smoothing), supervised.smoothing_prior
        targets = dataset_targets(train_set) if weight and prior == "unigram" else None
        return cls(weight, prior if weight else "uniform", num_classes, targets)

    def __call__(self, logits, targets):
        if not self.weight:
            return F.cross_entropy(logits, targets)
        if self.prior.device != logits.device:
            self.prior = self.prior.to(logits.device)
        log_p = F.log_softmax(logits.float(), dim=-1)
        nll = -log_p.gather(-1, targets[:, None]).squeeze(-1)
        smoothing = -(log_p * self.prior).sum(-1)
        return ((1 - self.weight) * nll + self.weight * smoothing).mean()
