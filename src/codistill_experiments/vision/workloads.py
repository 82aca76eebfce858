"""The vision workloads: a data set pair and a model factory each (codistill_experiments/workloads.py
chooses one by `workload.name`).

Mini scale generates its data (Gaussian clusters, the multi-view stand-in) or reads data that ships
inside an installed package (scikit-learn's digits, for quick tests); paper scale reads ImageNet from
disk in the standard ImageFolder layout, and CIFAR-10 from a local copy. All go through the same
sampler, loader and engine.
"""
from pathlib import Path

import torch
from torch import nn

from ..data_checks import check_cifar_root, check_imagefolder_root
from ..datasets import InMemoryDataset, Workload, batch_is_ready
from ..names import MINI_ARCHS, MINI_RESNETS


def mini_hidden(cfg, spec):
    """Hidden widths: the group's own `hidden`, else its (or the workload's) `arch` stand-in."""
    if "hidden" in spec:
        return spec["hidden"]
    return MINI_ARCHS[spec.get("arch", cfg.arch)] if spec.get("arch", cfg.arch) else cfg.hidden


class ResidualMLP(nn.Module):
    """A small residual network on vectors: layer i maps sizes[i] -> sizes[i+1]; a hidden layer
    whose width equals the previous one is a residual block x + W relu(x); ReLU before the next
    layer and the classifier. 64-256-256-10 is a stem, one residual block and a classifier."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        x = self.layers[0](x)
        for layer in self.layers[1:-1]:
            x = x + layer(torch.relu(x)) if layer.in_features == layer.out_features else layer(torch.relu(x))
        return self.layers[-1](torch.relu(x))


def mlp(sizes, seed):
    torch.manual_seed(seed)
    return ResidualMLP(sizes)


# Mini stand-ins for the paper's ImageNet architectures: a cheaper and a larger variant around the
# ResNet-50 stand-in, for the mixed-architecture Figs. 14-15 (docs/mini-scale.md).


def digits_mlp(cfg):
    """scikit-learn's 8x8 digits (1797 images, bundled with the package): a fixed, seeded split,
    pixels / 16 standardised with one mean and std of the training set; an MLP classifier.
    (Per-pixel statistics would blow rarely-lit border pixels up to tens of standard deviations,
    which makes the unbounded MSE-between-logits term diverge.)"""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    inputs = torch.tensor(images, dtype=torch.float32) / 16.0
    targets = torch.tensor(labels, dtype=torch.long)
    order = torch.randperm(len(targets), generator=torch.Generator().manual_seed(cfg.split_seed))
    train_idx, val_idx = order[: cfg.train_size], order[cfg.train_size:]
    mean, std = inputs[train_idx].mean(), inputs[train_idx].std()
    inputs = (inputs - mean) / std
    return Workload(
        train_set=InMemoryDataset(inputs[train_idx], targets[train_idx]),
        val_set=InMemoryDataset(inputs[val_idx], targets[val_idx]),
        num_classes=10,
        make_model=lambda seed, spec=None: mlp([inputs.shape[1], *mini_hidden(cfg, spec or {}), 10], seed),
        collate=batch_is_ready,
    )


class PreActivationBlock(nn.Module):
    """A residual block on vectors in He et al.'s pre-activation order:
    x + W2 relu(bn2(W1 relu(bn1(x)))). As in the paper's ResNets, every weight feeds a batch norm,
    so weight decay acts on the effective learning rate, not on the function."""

    def __init__(self, width):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm1d(width), nn.BatchNorm1d(width)
        self.fc1, self.fc2 = nn.Linear(width, width, bias=False), nn.Linear(width, width, bias=False)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.bn2(self.fc1(torch.relu(self.bn1(x))))))


class ResNetMLP(nn.Module):
    """stem (linear) -> residual blocks -> batch norm, ReLU -> linear classifier."""

    def __init__(self, inputs, width, blocks, classes):
        super().__init__()
        self.stem = nn.Linear(inputs, width, bias=False)
        self.blocks = nn.Sequential(*(PreActivationBlock(width) for _ in range(blocks)))
        self.bn = nn.BatchNorm1d(width)
        self.classifier = nn.Linear(width, classes)

    def forward(self, x):
        return self.classifier(torch.relu(self.bn(self.blocks(self.stem(x)))))


# (width, residual blocks) standing in for the paper's ImageNet architectures: ResNet-50, a
# cheaper ResNet-18 and a larger ResNeXt-101 for the mixed-architecture Figs. 14-15.


def generated_clusters(cfg):
    """Gaussian clusters generated deterministically from workload.data_seed: each class owns
    clusters_per_class centres drawn from N(0, I) in `features` dimensions; a sample is its
    cluster's centre plus N(0, cluster_std^2 I) noise; a share label_noise of the labels is
    replaced by a class drawn at random (train and validation alike, as ImageNet's label noise).
    Features are standardised with the training set's statistics. Returns (train, val) pairs."""
    generator = torch.Generator().manual_seed(cfg.data_seed)
    samples, clusters = cfg.train_size + cfg.val_size, cfg.num_classes * cfg.clusters_per_class
    centres = torch.randn(clusters, cfg.features, generator=generator)
    cluster = torch.randint(clusters, (samples,), generator=generator)
    inputs = centres[cluster] + cfg.cluster_std * torch.randn(samples, cfg.features, generator=generator)
    targets = cluster // cfg.clusters_per_class
    relabel = torch.rand(samples, generator=generator) < cfg.label_noise
    targets = torch.where(relabel, torch.randint(cfg.num_classes, (samples,), generator=generator), targets)
    split = cfg.train_size
    mean, std = inputs[:split].mean(0), inputs[:split].std(0)
    inputs = (inputs - mean) / std
    return (inputs[:split], targets[:split]), (inputs[split:], targets[split:])


def clusters_resnet(cfg):
    """The vision mini stand-in for ImageNet (docs/mini-scale.md): generated 100-class clusters,
    residual networks with batch norm."""
    (train_x, train_y), (val_x, val_y) = generated_clusters(cfg)

    def make_model(seed, spec=None):
        torch.manual_seed(seed)
        width, blocks = MINI_RESNETS[(spec or {}).get("arch", cfg.arch)]
        return ResNetMLP(cfg.features, width, blocks, cfg.num_classes)

    return Workload(train_set=InMemoryDataset(train_x, train_y), val_set=InMemoryDataset(val_x, val_y),
                    num_classes=cfg.num_classes, make_model=make_model, collate=batch_is_ready)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def imagenet(cfg):
    """ImageNet from disk with the pytorch/examples transforms; a torchvision architecture."""
    from torchvision import transforms

    from .file_datasets import ScannedImageFolder

    problem = check_imagefolder_root(cfg.data_root)
    if problem:
        raise FileNotFoundError(problem)
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                 transforms.ToTensor(), normalize])
    root = Path(cfg.data_root)

    def make_model(seed, spec=None):
        torch.manual_seed(seed)
        return imagenet_model(cfg, spec)

    train_set = ScannedImageFolder(root / "train", train_tf)
    val_set = ScannedImageFolder(root / "val", val_tf)
    if train_set.classes != val_set.classes or len(train_set.classes) != cfg.num_classes:
        raise ValueError(f"workload.data_root={str(root)!r}: {len(train_set.classes)} classes in train/, "
                         f"{len(val_set.classes)} in val/, workload.num_classes={cfg.num_classes}: they must agree")
    return Workload(train_set=train_set, val_set=val_set, num_classes=cfg.num_classes, make_model=make_model)


def imagenet_model(cfg, spec=None):
    """The torchvision architecture of an ImageNet workload (spec: one model's own settings), built
    on the current default device (meta: its shape alone, no weights)."""
    import torchvision

    architecture = getattr(torchvision.models, (spec or {}).get("arch", cfg.arch))
    residual = {"zero_init_residual": cfg.zero_init_residual} if is_resnet(architecture) else {}
    return architecture(num_classes=cfg.num_classes, **residual)


def is_resnet(architecture):
    """A torchvision ResNet builder (resnet*, resnext*, wide_resnet*: those that build
    torchvision.models.ResNet, which takes zero_init_residual)."""
    return architecture.__name__.startswith(("resnet", "resnext", "wide_resnet"))


def multiview_mini(cfg):
    """Generated multi-view data and split linear models over per-view features (multiview.py)."""
    from .multiview import make_data, split_model

    (train_x, train_y), (val_x, val_y) = make_data(cfg.train_size, cfg.val_size, cfg.label_noise, cfg.data_seed)
    return Workload(
        train_set=InMemoryDataset(train_x, train_y),
        val_set=InMemoryDataset(val_x, val_y),
        num_classes=10,
        make_model=lambda seed, spec=None: split_model(cfg.scenario, (spec or {}).get("index", 0), train_x, seed),
        collate=batch_is_ready,
    )


CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
def cifar10(cfg):
    """CIFAR-10 from a local copy (nothing is downloaded), Wide-ResNet; with scenario != full, the
    split models of the multi-view experiment (paper Sec. 5.1, Fig. 6): model i sees split i of
    the first block group's channels (every model split 0 in the random-init scenario)."""
    from torchvision import transforms

    from .file_datasets import LocalCIFAR10
    from .wide_resnet import SplitWideResNet, WideResNet

    problem = check_cifar_root(cfg.data_root)
    if problem:
        raise FileNotFoundError(problem)

    normalize = transforms.Normalize(CIFAR_MEAN, CIFAR_STD)
    train_tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    val_tf = transforms.Compose([transforms.ToTensor(), normalize])

    def make_model(seed, spec=None):
        torch.manual_seed(seed)
        network = WideResNet(cfg.depth, cfg.widen, cfg.num_classes)
        if cfg.scenario == "full":
            return network
        if cfg.scenario.startswith("pretrained"):
            network.load_state_dict(torch.load(cfg.pretrained, map_location="cpu", weights_only=True))
        split = 0 if cfg.scenario == "random_init" else (spec or {}).get("index", 0)
        return SplitWideResNet(network, split, cfg.n_splits, cfg.scenario == "pretrained_frozen",
                               cfg.depth, cfg.widen, cfg.num_classes)

    return Workload(train_set=LocalCIFAR10(cfg.data_root, train=True, transform=train_tf),
                    val_set=LocalCIFAR10(cfg.data_root, train=False, transform=val_tf),
                    num_classes=cfg.num_classes, make_model=make_model)
