"""The vision workloads: workloads.py (the generated mini stand-ins, digits, ImageNet, CIFAR-10, the
multi-view stand-in), file_datasets.py (ImageNet and CIFAR-10 read from disk), wide_resnet.py (the
Wide-ResNet and Fig. 6's split model), multiview.py (the multi-view experiment's generated data and
split models), configured_bits.py (the bits per update of the paper's ImageNet configs)."""
