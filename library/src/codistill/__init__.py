"""codistill: codistillation for distributed training on torch.distributed (torch only).

The public API is `from codistill import <name>` for each name of __all__: the method, and what a
user of it calls, catches or checks a config against (docs/library.md lists them; the README's
own-loop example shows Codistiller in a plain DDP loop). The parts the method is built of (the
exchanges, the counted collectives, compression, atomic writes) are not public:
`codistill.internals` names those the repository's own clients use, without promising to keep
them. The experiments (package codistill_experiments) and the fairseq plugin (codistill_fairseq)
are clients of this library, which imports neither (import-linter contracts in pyproject.toml hold
that); they, the benchmarks and the figures import `codistill` and `codistill.internals` only,
never another submodule (a contract there too).

Names are imported when first used, so that a config check reads the torch-free choices.py
without importing torch.

  codistiller.py    Codistiller: the method in one object (exchange, distillation term, alpha,
                    burn-in, teachers and how they run, bits), used by every client
  losses.py         the distillation term D (Algorithm 1, line 4), per sample or token-level
  exchange.py       make_exchange: the exchange through collectives a Codistiller runs
  predictions.py    the prediction exchange (logits all_gathered; compressed predictions)
  checkpoints.py    the checkpoint exchanges (whole, sharded, compressed) and a model's
                    parameters as one vector (flat_parameters, param_hash)
  checkpoint_wire.py  the kept buffers checkpoints travel in, cut into chunks
  teachers.py       how checkpoint teachers are built and run forward (one policy, every client);
                    frozen teachers (nothing exchanged)
  counting.py       the bit counter, the counted collectives, DDP with counted all_reduce
  file_exchange.py  the checkpoint exchange through files; snapshots.py its snapshot store
  compression.py    blockwise quantisation and per-chunk top-k of flat vectors, with their exact
                    wire bits (compressed checkpoints; the experiments' compressed averaging)
  groups.py         the layout of n model groups x k ranks, its process groups and DeviceMesh
  evaluate.py       at the end: each model's top-1, the ensemble's, the model to keep
  dcp_state.py      the run's state through torch.distributed.checkpoint (Codistiller.dcp_state)
  peer_check.py     peers checked against each other at exchanges (step, batch, shapes, models)
  collapse_guard.py CollapseWarning: a model that stopped telling inputs apart (the collapse)
  schedules.py      the alpha schedule
  choices.py        the lists of choices (torch-free); atomic_write.py atomic file writes
  internals.py      the non-public names the repository's clients use
"""
import importlib
import sys

__version__ = "0.2.0"   # the distribution's version (library/pyproject.toml reads it from here)

# Public name -> the module defining it.
_EXPORTS = {
    "Codistiller": "codistiller",
    **dict.fromkeys(("Layout", "make_process_groups"), "groups"),
    "CommCounter": "counting",
    "AlphaSchedule": "schedules",
    **dict.fromkeys(("codistill_loss", "distill_loss", "TopKLogits"), "losses"),
    "evaluate_models": "evaluate",
    "PeerMismatch": "peer_check",
    **dict.fromkeys(("CollapseWarning", "CollapseGuard"), "collapse_guard"),
    **dict.fromkeys(("SnapshotStore", "SnapshotTimeout"), "snapshots"),
    # torch-free: a config check reads the choices without importing torch
    **dict.fromkeys(("EXCHANGES", "DISTILL_LOSSES", "PREDICTION_BITS", "CHECKPOINT_BITS", "ALPHA_SCHEDULES",
                     "SNAPSHOT_MODES", "TRANSPORTS", "prediction_row_bits"), "choices"),
}
__all__ = list(_EXPORTS)


def _lazy_exports(module_name, exports):
    """A module's __getattr__ (PEP 562) that imports each name of `exports` (name -> the
    submodule of codistill defining it) when first used, and keeps it in the module."""
    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"codistill.{exports[name]}"), name)
        setattr(sys.modules[module_name], name, value)
        return value
    return __getattr__


__getattr__ = _lazy_exports(__name__, _EXPORTS)


def __dir__():
    return sorted({*globals(), *_EXPORTS})
