"""Mini stand-in for the multi-view experiment (paper Sec. 5.1, Fig. 6; Allen-Zhu and Li 2020):
generated data with real multi-view structure, and split models over per-view features.

Data: 10 classes, 8 views; an input is 8 blocks of 16 numbers. Each (class, view) has a random
prototype of norm 4; block k = s_k * prototype[y, k] + N(0, 1) noise. 70 % of samples are
multi-view (each view strong, s = 1, with probability 0.8, else weak, s = 0.3); 30 % are
single-view (one strong view, the others weak). Half the training labels are replaced at random.

Model: a first layer of per-view features (block k -> 64 channels, ReLU, standardised on the
training set: the analogue of the pretrained Wide-ResNet's first block group, whose 8 channel
splits are the 8 views), then a linear classifier on the split a model sees. Scenarios as at
paper scale: pretrained_frozen / pretrained_trainable (model i sees view i's features; the first
layer frozen or trained), random_init (a dense random first layer that mixes all views, trained;
every model sees split 0), full (all 8 splits: the whole network).
"""
import torch
from torch import nn

CLASSES, VIEWS, BLOCK, FEATURES = 10, 8, 16, 64


def generate(n_samples, generator, prototypes, label_noise=0.0):
    labels = torch.randint(0, CLASSES, (n_samples,), generator=generator)
    strong = torch.rand(n_samples, VIEWS, generator=generator) < 0.8
    single = torch.rand(n_samples, generator=generator) < 0.3
    only = torch.randint(0, VIEWS, (n_samples,), generator=generator)
    strong[single] = False
    strong[single, only[single]] = True
    scale = torch.where(strong, 1.0, 0.3)
    blocks = scale.unsqueeze(-1) * prototypes[labels] + torch.randn(n_samples, VIEWS, BLOCK, generator=generator)
    if label_noise:
        noisy = torch.rand(n_samples, generator=generator) < label_noise
        labels = torch.where(noisy, torch.randint(0, CLASSES, (n_samples,), generator=generator), labels)
    return blocks.reshape(n_samples, VIEWS * BLOCK), labels


def make_data(train_size, val_size, label_noise, seed):
    generator = torch.Generator().manual_seed(seed)
    prototypes = torch.randn(CLASSES, VIEWS, BLOCK, generator=generator)
    prototypes = 4.0 * prototypes / prototypes.norm(dim=-1, keepdim=True)
    train = generate(train_size, generator, prototypes, label_noise)
    val = generate(val_size, generator, prototypes)
    return train, val


class ViewFeatures(nn.Module):
    """8 x 16 inputs -> 8 x 64 features, standardised with statistics of the training inputs at
    build. `by_view`: starts block-diagonal (view k's features depend on block k only), as a
    pretrained first layer whose splits are views; training may then mix views, freezing keeps
    them apart. Otherwise a dense random layer that mixes the views from the start."""

    def __init__(self, by_view, train_inputs):
        super().__init__()
        self.linear = nn.Linear(VIEWS * BLOCK, VIEWS * FEATURES)
        if by_view:
            with torch.no_grad():
                self.linear.weight.mul_(torch.block_diag(*[torch.ones(FEATURES, BLOCK)] * VIEWS))
        with torch.no_grad():
            features = self.raw(train_inputs)
            # Standardised on the training inputs: centred per feature, one overall scale folded
            # into the layer itself (ReLU commutes with a positive scale), so a trainable layer's
            # updates are not amplified by 1/std. Dividing outputs by per-feature stds instead
            # blew up features dead at build once training woke them (codistillation of the
            # pretrained_trainable scenario went to NaN).
            scale = (features - features.mean(0)).std().clamp_min(1e-3)
            self.linear.weight.div_(scale)
            self.linear.bias.div_(scale)
        self.register_buffer("mean", features.mean(0) / scale)

    def raw(self, x):
        return torch.relu(self.linear(x))

    def forward(self, x):
        return self.raw(x) - self.mean


class SplitLinear(nn.Module):
    def __init__(self, features, splits, frozen):
        super().__init__()
        self.features, self.splits = features, list(splits)
        if frozen:
            self.features.requires_grad_(False)
        self.head = nn.Linear(FEATURES * len(self.splits), CLASSES)

    def view(self, x):
        out = self.features(x).reshape(len(x), VIEWS, FEATURES)
        return out[:, self.splits].reshape(len(x), -1)

    def forward(self, x):
        return self.head(self.view(x))


def split_model(scenario, index, train_inputs, seed):
    torch.manual_seed(seed)
    features = ViewFeatures(by_view=scenario != "random_init", train_inputs=train_inputs)
    splits = {"full": range(VIEWS), "random_init": [0]}.get(scenario, [index % VIEWS])
    return SplitLinear(features, splits, frozen=scenario == "pretrained_frozen")
