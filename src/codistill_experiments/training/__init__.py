"""The training engine every workload kind (vision, tabular, language model) and every method runs on,
codistillation and the baselines alike: engine.py (the training loop of one rank: n model groups,
all_reduce inside a group, codistillation between groups through codistill.Codistiller),
evaluation.py (what each evaluation measures and logs), sampling.py (which samples each rank sees),
supervised.py (the supervised term), two_phase.py (distillation from frozen teachers). Translation
(codistill_experiments.translation) is the other client, on fairseq."""
