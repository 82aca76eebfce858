"""Wide-ResNet (Zagoruyko and Komodakis 2016) and the split model of the paper's multi-view
experiment (Sec. 5.1, Fig. 6).

WRN-d-k: a 3x3 stem of 16 channels, then three groups of (d-4)/6 pre-activation basic blocks
with 16k, 32k and 64k channels (strides 1, 2, 2), BN-ReLU, global average pooling, a linear
classifier. For WRN-28-10 the first group outputs 160 channels.
"""
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, fan_in, fan_out, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(fan_in), nn.Conv2d(fan_in, fan_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(fan_out), nn.Conv2d(fan_out, fan_out, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(fan_in, fan_out, 1, stride, bias=False)
                         if stride != 1 or fan_in != fan_out else None)

    def forward(self, x):
        pre = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
        return out + (self.shortcut(pre) if self.shortcut is not None else x)


def block_group(fan_in, fan_out, blocks, stride):
    return nn.Sequential(*[Block(fan_in if i == 0 else fan_out, fan_out, stride if i == 0 else 1)
                           for i in range(blocks)])


class Tail(nn.Module):
    """Groups 2 and 3 and the classifier: everything after the first block group."""

    def __init__(self, fan_in, widen, blocks, num_classes):
        super().__init__()
        self.group2 = block_group(fan_in, 32 * widen, blocks, 2)
        self.group3 = block_group(32 * widen, 64 * widen, blocks, 2)
        self.bn, self.fc = nn.BatchNorm2d(64 * widen), nn.Linear(64 * widen, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.group3(self.group2(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class WideResNet(nn.Module):
    def __init__(self, depth=28, widen=10, num_classes=10):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"workload.depth={depth}: a Wide-ResNet has depth 6n+4 (e.g. 28)")
        blocks = (depth - 4) // 6
        self.stem = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.group1 = block_group(16, 16 * widen, blocks, 1)
        self.tail = Tail(16 * widen, widen, blocks, num_classes)

    def prefix(self, x):
        """The layers up to the first block group's output (160 channels for WRN-28-10)."""
        return self.group1(self.stem(x))

    def forward(self, x):
        return self.tail(self.prefix(x))


class SplitWideResNet(nn.Module):
    """Model i of the multi-view experiment: the (pretrained or random) stem and first block group,
    of whose output channels it sees only split i of n_splits; a re-initialised tail takes those
    channels as its input. A frozen prefix gets no gradient and stays in eval mode, so neither its
    weights nor its batch-norm statistics change."""

    def __init__(self, prefix_source, split, n_splits, frozen, depth, widen, num_classes):
        super().__init__()
        self.stem, self.group1 = prefix_source.stem, prefix_source.group1
        width = self.group1[-1].conv2.out_channels
        if width % n_splits:
            raise ValueError(f"{width} channels do not split into workload.n_splits={n_splits}")
        self.channels = slice(split * width // n_splits, (split + 1) * width // n_splits)
        self.frozen = frozen
        if frozen:
            for module in (self.stem, self.group1):
                module.requires_grad_(False)
        self.tail = Tail(width // n_splits, widen, (depth - 4) // 6, num_classes)
        self.train()

    def train(self, mode=True):
        super().train(mode)
        if self.frozen:
            self.stem.eval()
            self.group1.eval()
        return self

    def view(self, x):
        return self.group1(self.stem(x))[:, self.channels]

    def forward(self, x):
        return self.tail(self.view(x))
