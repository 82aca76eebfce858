"""What a translation model records, apart from fairseq: its `eval` records, built from exact sums
of the criterion's outputs over the group's ranks (not fairseq's smoothed meters), and its share of
the run state beside each fairseq checkpoint (what fairseq's checkpoint does not hold), for resume.
The fairseq task (codistill_fairseq/task.py) feeds them from its hooks. No fairseq import here.
"""
import json
import math
from pathlib import Path

from codistill.internals import atomic_write_bytes

# The criterion's logging outputs the records are computed from (fairseq sums them over ranks).
SUMS = ("loss", "ce_loss", "nll_loss", "distill", "ntokens", "nsentences", "sample_size")
PHASES = ("train", "valid")


class EvalSums:
    """Sums of the criterion's logging outputs since the last validation, per phase, and the
    number of training updates they cover."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.phases = {phase: dict.fromkeys(SUMS, 0.0) for phase in PHASES}
        self.train_updates = 0

    def add(self, phase, logging_outputs):
        sums = self.phases[phase]
        for key in SUMS:
            sums[key] += float(sum(log.get(key, 0) for log in logging_outputs))
        if phase == "train":
            self.train_updates += 1


def _per_token_bits(sums, key):
    return sums[key] / sums["ntokens"] / math.log(2) if sums["ntokens"] else None


def _per_sample(sums, key):
    return sums[key] / sums["sample_size"] if sums["sample_size"] else None


def epoch_fraction(epoch, epoch_start, updates_per_epoch, step):
    """Epochs done at update `step` of fairseq's epoch `epoch` (1-based), which began at update
    epoch_start; the whole epoch number before fairseq has counted an epoch's updates."""
    if not updates_per_epoch:
        return float(epoch)
    return epoch - 1 + (step - epoch_start) / updates_per_epoch


def eval_record(sums, step, epoch, model, alpha, label_smoothing, lr, teachers_from_step, counter, wall_time):
    """One model's record after a validation at update `step`: losses in bits per token (NLL), the
    schedules' values, the teachers' steps and the bits counted in `counter` (a CommCounter)."""
    train, valid = sums.phases["train"], sums.phases["valid"]
    val_nll = _per_token_bits(valid, "nll_loss")
    return {
        "kind": "eval",
        "step": step,
        "epoch": epoch,
        "model": model,
        "train_loss": _per_token_bits(train, "nll_loss"),
        "train_smoothed_loss": _per_sample(train, "ce_loss") / math.log(2) if train["sample_size"] else None,
        "train_distill_loss": _per_sample(train, "distill"),
        "val_nll": val_nll,
        "val_loss": val_nll,
        "val_ppl": 2.0 ** val_nll if val_nll is not None else None,
        "alpha": alpha,
        "label_smoothing": label_smoothing,
        "lr": lr,
        "tokens_per_update": train["ntokens"] / sums.train_updates if sums.train_updates else None,
        "teachers_from_step": teachers_from_step,
        "comm_bits_inter_node": counter.inter_node_bits,
        "comm_bits_intra_node": counter.intra_node_bits,
        "wall_time": wall_time,
    }


def progress_line(record, tag=""):
    """The one-line report of an eval record."""
    return (f"{tag}model {record['model']}: update {record['step']} (epoch {record['epoch']:.2f}) "
            f"val_nll {record['val_nll']:.3f} train_loss {record['train_loss'] or float('nan'):.3f} "
            f"alpha {record['alpha'] or 0:.3g} bits {record['comm_bits_inter_node']:.3g}\n")


class TaskStateFiles:
    """The task's state at each fairseq checkpoint, `<folder>/step<s>.json` (written atomically;
    the newest `keep` are kept): a resume at update s reads the newest of step <= s."""

    def __init__(self, folder, keep=3):
        self.folder, self.keep = Path(folder), keep

    def _saved(self):
        return sorted((int(path.stem[len("step"):]), path) for path in self.folder.glob("step*.json"))

    def save(self, step, state):
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(state).encode()
        atomic_write_bytes(self.folder / f"step{step}.json", lambda handle: handle.write(text))
        for _, old in self._saved()[:-self.keep]:
            old.unlink(missing_ok=True)

    def load(self, step):
        usable = [path for saved_step, path in self._saved() if saved_step <= step]
        if not usable:
            raise RuntimeError(f"resuming at update {step} but {self.folder} holds no task state of that update "
                               "or before")
        return json.loads(usable[-1].read_text())
