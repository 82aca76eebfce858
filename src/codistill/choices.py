"""The library's lists of choices, in a module without torch: a config check (the experiments' compose-time
validation) reads them here without importing torch, and the modules that implement each choice
import it from here."""

EXCHANGES = ("predictions", "checkpoints", "sharded_checkpoints")   # exchange.py
PREDICTION_BITS = (32, 16, 8)                   # exchange.py: exchanged logits as float32, float16, int8 (row scale)
DISTILL_LOSSES = ("mse", "kl", "soft_ce")       # losses.py: the distillation term D
ALPHA_SCHEDULES = ("constant", "step", "exponential")   # schedules.AlphaSchedule
LR_KINDS = ("step", "cosine")                   # schedules.LRSchedule
SNAPSHOT_MODES = ("lockstep", "async")          # snapshots.py: which peer snapshot a reader takes
TRANSPORTS = ("collectives", "files")          # how checkpoint teachers travel: one world, or files between model jobs
