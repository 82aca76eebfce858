"""The workloads by name: `workload.name` chooses a builder among the three kinds, vision
(codistill_experiments/vision/), tabular (codistill_experiments/tabular/: Criteo's clicks) and
language model (codistill_experiments/language_model/), each of which returns a Workload
(codistill_experiments/datasets.py: its data sets and model factory) that the training engine runs."""
from .datasets import InMemoryDataset, Workload, batch_is_ready  # noqa: F401  (also the workloads' public names)
from .vision.workloads import cifar10, clusters_resnet, digits_mlp, imagenet, multiview_mini


def click_prediction(cfg):
    """Criteo-like click prediction (tabular/criteo.py): generated clicks (criteo_mini), Criteo's TSV (criteo)."""
    from .tabular import criteo

    return getattr(criteo, cfg.name)(cfg)


def language_model(cfg):
    """A small transformer on the generated language-model corpus (language_model/transformer.py)."""
    from .language_model.transformer import lm_transformer_mini

    return lm_transformer_mini(cfg)


WORKLOADS = {"digits_mlp": digits_mlp, "clusters_resnet": clusters_resnet, "imagenet": imagenet, "cifar10": cifar10,
             "multiview_mini": multiview_mini, "criteo_mini": click_prediction, "criteo": click_prediction,
             "lm_transformer_mini": language_model}
# Modules each workload's ranks import; a launcher that forks imports them once beforehand.
IMPORTS = {"digits_mlp": ["sklearn.datasets"], "clusters_resnet": [], "imagenet": ["torchvision"],
           "cifar10": ["torchvision"], "multiview_mini": [], "criteo_mini": [], "criteo": ["pandas"],
           "lm_transformer_mini": []}


def build_workload(cfg):
    return WORKLOADS[cfg.name](cfg)
