"""Vision: the core library's first client. The per-rank training engine (engine.py: n model groups,
all_reduce inside a group, codistillation between groups), its workloads (generated mini stand-ins,
ImageNet, CIFAR-10, multi-view), batch sampling, and the methods it compares with codistillation
(methods.py: PowerSGD, local SGD, DiLoCo). Translation (codistill_experiments.translation) is the other client."""
