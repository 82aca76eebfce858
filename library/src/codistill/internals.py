"""Not public: the parts of the method the repository's own clients use beyond `codistill`'s API.

The experiments (codistill_experiments), the fairseq plugin, the benchmarks and the scripts are
built on more of the library than a user of the method needs: the exchanges on their own, the
counted collectives and DDP, the parameters as one vector and their hash, the compression of flat
vectors, the checkpoint exchange's chunking, atomic file writes. These live here because the
library itself runs on them (one implementation, used by both): the snapshots are written
atomically, the checkpoint exchanges chunk and compress, the Codistiller counts through them.
`from codistill.internals import <name>` is the one way in for those clients besides
`from codistill import <name>` (an import-linter contract in pyproject.toml refuses any other
submodule); the names may change with any release, without notice. Like `codistill`, each name is
imported when first used (docs/library.md, "Not public: codistill.internals").
"""
from . import _lazy_exports

# Name -> the module defining it.
_EXPORTS = {
    "make_exchange": "exchange",
    "PredictionExchange": "predictions",
    **dict.fromkeys(("CheckpointExchange", "ShardedCheckpointExchange", "flat_parameters", "load_flat_parameters",
                     "param_hash"), "checkpoints"),
    **dict.fromkeys(("FrozenTeachers", "teacher_mode", "build_teachers"), "teachers"),
    **dict.fromkeys(("counted_all_gather", "wrap_data_parallel", "tensor_bits"), "counting"),
    "FileCheckpointExchange": "file_exchange",
    "PeerReader": "snapshots",
    "PeerCheck": "peer_check",
    "ProcessGroups": "groups",
    **dict.fromkeys(("distill_term", "token_distill_term"), "losses"),
    **dict.fromkeys(("quantize_blocks", "QuantizedBlocks", "top_k_chunks", "SparseChunks"), "compression"),
    "chunk_lengths": "checkpoint_wire",
    "atomic_write_bytes": "atomic_write",
    **dict.fromkeys(("PULL_LIMIT", "SAFE_PERIOD"), "collapse_guard"),   # the collapse-risk warning's measured rule
}
__all__ = list(_EXPORTS)

__getattr__ = _lazy_exports(__name__, _EXPORTS)


def __dir__():
    return sorted({*globals(), *_EXPORTS})
