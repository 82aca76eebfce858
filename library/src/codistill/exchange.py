"""How models share information (paper Section 3): `make_exchange` builds the exchange through
collectives a Codistiller runs, from plain values.

- predictions (predictions.py): peers all_gather their logits every T updates.
- checkpoints, sharded_checkpoints (checkpoints.py): peers all_gather their parameters every T
  updates into stale copies, the teachers, which each rank runs on its own batch.
- through files (file_exchange.py) and frozen teachers (teachers.FrozenTeachers) are built by
  Codistiller.through_files and Codistiller.from_teachers.

An exchange moves what the peers send and keeps its state (`state_dict()` / `load_state_dict()`:
what a resumed run needs, e.g. the stale teachers). Everything else of the method (burn-in, the
distillation term, alpha, the teachers and how they run) is codistiller.Codistiller's, which every
client trains through. What each exchange costs is counted as counting.py says.
"""
from .checkpoints import CheckpointExchange, ShardedCheckpointExchange
from .choices import EXCHANGES, check_checkpoint_compression
from .predictions import PredictionExchange

CHECKPOINT_EXCHANGES = {"checkpoints": CheckpointExchange, "sharded_checkpoints": ShardedCheckpointExchange}


def make_exchange(kind, groups, counter, group_index, period=1, prediction_bits=None, model=None, teachers=(),
                  prediction_topk=None, checkpoint_bits=32, checkpoint_delta_fraction=None):
    """An exchange from plain values. kind: one of EXCHANGES; groups: this rank's ProcessGroups;
    group_index: its model group. Predictions travel as PredictionExchange's `bits` and `topk`
    say (prediction_bits, prediction_topk). (Sharded) checkpoints need the rank's `model` and
    `teachers`, one fresh module per other model group, in group order (teachers.build_teachers),
    and travel as CheckpointExchange's `bits` and `delta_fraction` say (checkpoint_bits,
    checkpoint_delta_fraction)."""
    check_checkpoint_compression(checkpoint_bits, checkpoint_delta_fraction)
    if kind == "predictions":
        if checkpoint_bits != 32 or checkpoint_delta_fraction is not None:
            raise ValueError(f"checkpoint_bits={checkpoint_bits!r} and checkpoint_delta_fraction="
                             f"{checkpoint_delta_fraction!r} apply to checkpoint exchanges only (exchange {kind!r})")
        return PredictionExchange(groups, counter, period, group_index, prediction_bits, prediction_topk)
    if kind in CHECKPOINT_EXCHANGES:
        return CHECKPOINT_EXCHANGES[kind](groups, counter, period, group_index, model, list(teachers),
                                          bits=checkpoint_bits, delta_fraction=checkpoint_delta_fraction)
    raise ValueError(f"exchange {kind!r} is not one of {EXCHANGES}")
