"""Vision: a client of the codistill library. The per-rank training engine (engine.py: n model groups,
all_reduce inside a group, codistillation between groups through codistill.Codistiller; evaluation.py
what each evaluation measures and logs), its workloads (generated mini stand-ins, ImageNet,
CIFAR-10, multi-view), batch sampling, and the methods it compares with codistillation (methods.py:
PowerSGD, local SGD, DiLoCo). Translation (codistill_experiments.translation) is the other client."""
