"""The experiments' names a config may use, in a module without torch: compose-time validation
(`config.py`, `translation/checks.py`) reads them here, so a dry run or a sweep's validation never
imports torch. The modules that implement each name import them from here too; the library's own
choices are codistill.choices."""

# Mini stand-ins of the paper's architectures (workloads.py): hidden widths of digits' MLPs, and
# (width, residual blocks) of clusters_resnet's residual MLPs.
MINI_ARCHS = {"resnet18": [128], "resnet50": [256, 256], "resnext101_32x8d": [512, 512, 512]}
MINI_RESNETS = {"resnet18": (64, 1), "resnet50": (128, 2), "resnext101_32x8d": (256, 3)}
# The model settings workload.models may give each model group, per workload (workloads.py).
MODEL_KEYS = {"digits_mlp": {"hidden", "arch"}, "clusters_resnet": {"arch"}, "imagenet": {"arch", "num_classes"},
              "cifar10": {"num_classes"}, "multiview_mini": set()}
SCENARIOS = ("full", "pretrained_frozen", "pretrained_trainable", "random_init")   # multi-view (Fig. 6)
# Translation's alpha schedules (schedules.AlphaSchedule's, less "step": its inverse square-root LR
# has no decays) and label-smoothing schedules (translation/label_smoothing.py).
TRANSLATION_ALPHA_SCHEDULES = ("constant", "exponential")
LABEL_SMOOTHING_SCHEDULES = ("constant", "exponential")
