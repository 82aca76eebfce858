"""The library's lists of choices, in a module without torch: a config check (the experiments' compose-time
validation) reads them here without importing torch, and the modules that implement each choice
import it from here."""

EXCHANGES = ("predictions", "checkpoints", "sharded_checkpoints")   # exchange.make_exchange
PREDICTION_BITS = (32, 16, 8)                   # predictions.py: exchanged logits as float32, float16, int8 (row scale)
CHECKPOINT_BITS = (32, 8, 4, 2)                 # checkpoints.py: checkpoints as they are (32), or quantised per block
DISTILL_LOSSES = ("mse", "kl", "soft_ce")       # losses.py: the distillation term D
ALPHA_SCHEDULES = ("constant", "step", "exponential")   # schedules.AlphaSchedule
SNAPSHOT_MODES = ("lockstep", "async")          # snapshots.py: which peer snapshot a reader takes
TRANSPORTS = ("collectives", "files")          # how checkpoint teachers travel: one world, or files between model jobs


# What each prediction setting costs on the wire (predictions.py counts these; torch-free, so that a
# dry run can cost a job without importing torch).
SCALE_BITS = 32              # the float32 scale of a quantised row


def index_bits(classes):
    """Bits of the smallest integer type that holds a class index < `classes`: 8 (uint8) up to
    256 classes, 16 (int16) up to 32768, else 32 (int32)."""
    return 8 if classes <= 2**8 else 16 if classes <= 2**15 else 32


def check_topk(topk):
    if topk is not None and (isinstance(topk, bool) or not isinstance(topk, int) or topk < 1):
        raise ValueError(f"prediction_topk={topk!r} is not None or a whole number >= 1")


def check_checkpoint_compression(bits=32, delta_fraction=None):
    """Raises ValueError naming the argument unless `bits` is one of CHECKPOINT_BITS and
    `delta_fraction` None or a number in (0, 1], and not both set (quantised values or sparse
    deltas, one at a time)."""
    if isinstance(bits, bool) or bits not in CHECKPOINT_BITS:
        raise ValueError(f"checkpoint_bits={bits!r} is not one of {CHECKPOINT_BITS}")
    if delta_fraction is not None and (isinstance(delta_fraction, bool) or not isinstance(delta_fraction, (int, float))
                                       or not 0 < delta_fraction <= 1):
        raise ValueError(f"checkpoint_delta_fraction={delta_fraction!r} is not None or a number in (0, 1]")
    if bits != 32 and delta_fraction is not None:
        raise ValueError(f"checkpoint_bits={bits!r} and checkpoint_delta_fraction={delta_fraction!r} do not combine: "
                         "checkpoints travel quantised (checkpoint_bits < 32) or as sparse deltas, not both")


def prediction_row_bits(classes, topk=None, bits=32):
    """Bits one rank sends per row of logits (an example, or a token) at one exchange, before the
    all_gather's (m-1) factor: what the counter charges per row. Dense (topk None or = classes):
    classes x bits, + the 32-bit scale when bits = 8; top-k: k x (bits + index bits) (index bits:
    index_bits(classes)), + the 32-bit scale when bits = 8."""
    if bits not in PREDICTION_BITS:
        raise ValueError(f"bits={bits!r} is not one of {PREDICTION_BITS}")
    check_topk(topk)
    if topk is not None and topk > classes:
        raise ValueError(f"prediction_topk={topk} exceeds the {classes} classes")
    scale = SCALE_BITS if bits == 8 else 0
    if topk is None or topk == classes:
        return classes * bits + scale
    return topk * (bits + index_bits(classes)) + scale
