"""codistill: codistillation for distributed training on torch.distributed.

The public API, `from codistill import <name>` for each name of __all__, needs torch only
(docs/library.md lists it; the README's "Codistillation in your own training loop" shows it in a
plain DDP loop). Each name is imported when first used, so that `import codistill.config` or
`codistill.runlog` (a dry run, a sweep's validation) does not import torch. The experiments
(`src/run.py`, Hydra configs, translation through fairseq, figures) import their modules by name.

Where things are:
  codistiller.py  Codistiller: codistillation added to an existing DDP loop
  losses.py       the codistillation loss (Algorithm 1, line 4), per sample or token-level
  exchange.py     how model groups share predictions or checkpoints through collectives (each
                  exchange owns its burn-in and state), the bit counter, DDP with counted all_reduce
  file_exchange.py  the checkpoint exchange through files (an exchange like exchange.py's)
  snapshots.py    checkpoint snapshots in files: their store, and which one each peer reads
  groups.py       the layout of n model groups x k ranks on nodes, and their process groups
  schedules.py    learning-rate, weight-decay and alpha schedules
  checkpoint.py   crash-safe run state; launch.py starting the ranks locally or under
                  submitit/Slurm (jobs.py: the job environment both launchers read); runlog.py
                  run ids, run directories, metrics.jsonl and atomic writes
  config.py       compose-time validation (experiments; imports OmegaConf)
  vision/         the vision experiments, a client of the above: engine.py the training loop of
                  one rank, workloads.py / multiview.py / wide_resnet.py / sampling.py their data
                  and models, methods.py PowerSGD, local SGD and DiLoCo
  translation/    the translation workloads, a client of the above trained by fairseq (the
                  plugin src/codistill_fairseq adapts fairseq's hooks to this core)
"""
import importlib

# Public name -> the module defining it.
_EXPORTS = {
    "Codistiller": "codistiller",
    **dict.fromkeys(("codistill_loss", "distill_loss", "distill_term", "token_distill_term", "DISTILL_LOSSES"),
                    "losses"),
    **dict.fromkeys(("make_exchange", "build_exchange", "EXCHANGES", "NoExchange", "PredictionExchange",
                     "CheckpointExchange", "CommCounter", "counted_all_gather", "wrap_data_parallel",
                     "flat_parameters", "load_flat_parameters"), "exchange"),
    "FileCheckpointExchange": "file_exchange",
    **dict.fromkeys(("SnapshotStore", "PeerReader", "SnapshotTimeout"), "snapshots"),
    **dict.fromkeys(("Layout", "ProcessGroups", "make_process_groups"), "groups"),
    **dict.fromkeys(("AlphaSchedule", "LRSchedule", "PiecewiseConstant", "Schedules", "build_schedules",
                     "epochs_to_steps"), "schedules"),
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
