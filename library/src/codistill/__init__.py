"""codistill: codistillation for distributed training on torch.distributed (torch only).

The public API is `from codistill import <name>` for each name of __all__ (docs/library.md lists
them; the README's own-loop example shows Codistiller in a plain DDP loop). The experiments
(package codistill_experiments) and the fairseq plugin (codistill_fairseq) are clients of this
library, which imports neither (import-linter contracts in pyproject.toml hold that); they, the
benchmarks and the figures import these names only, never a submodule (a contract there too).

Names are imported when first used, so that a config check reads the torch-free choices.py
without importing torch.

  codistiller.py    Codistiller: the method in one object (exchange, distillation term, alpha,
                    burn-in, teachers and how they run, bits), used by every client
  losses.py         the distillation term D (Algorithm 1, line 4), per sample or token-level
  exchange.py       the exchanges through collectives (predictions, checkpoints, sharded
                    checkpoints), frozen teachers (nothing exchanged), the bit counter, DDP
                    with counted all_reduce
  teachers.py       how checkpoint teachers are built and run forward (one policy, every client)
  file_exchange.py  the checkpoint exchange through files; snapshots.py its snapshot store
  checkpoint_wire.py  the kept buffers checkpoints travel in
  compression.py    blockwise quantisation and per-chunk top-k of flat vectors, with their exact
                    wire bits (compressed checkpoints; the experiments' compressed averaging)
  groups.py         the layout of n model groups x k ranks, its process groups and DeviceMesh
  evaluate.py       at the end: each model's top-1, the ensemble's, the model to keep
  dcp_state.py      the run's state through torch.distributed.checkpoint (Codistiller.dcp_state)
  peer_check.py     peers checked against each other at exchanges (step, batch, shapes, models)
  collapse_guard.py a warning when a model's logits stop varying across the batch (one class)
  collapse_guard.py CollapseWarning: a model that stopped telling inputs apart (the collapse)
  schedules.py      learning-rate, weight-decay and alpha schedules
  choices.py        the lists of choices (torch-free); atomic_write.py atomic file writes
"""
import importlib

__version__ = "0.2.0"   # the distribution's version (library/pyproject.toml reads it from here)

# Public name -> the module defining it.
_EXPORTS = {
    "Codistiller": "codistiller",
    "evaluate_models": "evaluate",
    **dict.fromkeys(("codistill_loss", "distill_loss", "distill_term", "token_distill_term", "TopKLogits"), "losses"),
    **dict.fromkeys(("make_exchange", "PredictionExchange", "CheckpointExchange",
                     "ShardedCheckpointExchange", "FrozenTeachers", "CommCounter", "counted_all_gather",
                     "wrap_data_parallel", "flat_parameters", "load_flat_parameters", "param_hash", "tensor_bits"),
                    "exchange"),
    # torch-free: a config check reads the choices without importing torch
    **dict.fromkeys(("EXCHANGES", "DISTILL_LOSSES", "PREDICTION_BITS", "CHECKPOINT_BITS", "ALPHA_SCHEDULES", "LR_KINDS",
                     "SNAPSHOT_MODES", "TRANSPORTS", "prediction_row_bits"), "choices"),
    "atomic_write_bytes": "atomic_write",
    "chunk_lengths": "checkpoint_wire",
    **dict.fromkeys(("quantize_blocks", "QuantizedBlocks", "top_k_chunks", "SparseChunks"), "compression"),
    **dict.fromkeys(("teacher_mode", "build_teachers"), "teachers"),
    "FileCheckpointExchange": "file_exchange",
    **dict.fromkeys(("PeerMismatch", "PeerCheck"), "peer_check"),
    **dict.fromkeys(("CollapseWarning", "CollapseGuard"), "collapse_guard"),
    **dict.fromkeys(("SnapshotStore", "PeerReader", "SnapshotTimeout"), "snapshots"),
    **dict.fromkeys(("Layout", "ProcessGroups", "make_process_groups"), "groups"),
    **dict.fromkeys(("AlphaSchedule", "LRSchedule", "PiecewiseConstant", "Schedules", "epochs_to_steps"), "schedules"),
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS})
