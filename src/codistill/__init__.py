"""codistill: codistillation for distributed training on torch.distributed.

Where things are:
  losses.py     the codistillation loss (Algorithm 1, line 4)
  exchange.py   how models share predictions or checkpoints, and the bit counters
  groups.py     the layout of n model groups x k ranks on nodes, and their process groups
  engine.py     the training loop of one rank
  schedules.py  learning-rate, weight-decay and alpha schedules
  launch.py     starting the ranks locally or under submitit/Slurm
  runlog.py     run ids, run directories and metrics.jsonl
  config.py     compose-time validation
"""
