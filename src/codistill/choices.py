"""The library's lists of choices, in a module without torch: a config check (the experiments' compose-time
validation) reads them here without importing torch, and the modules that implement each choice
import it from here."""

DISTILL_LOSSES = ("mse", "kl", "soft_ce")       # losses.py: the distillation term D
SNAPSHOT_MODES = ("lockstep", "async")          # snapshots.py: which peer snapshot a reader takes
