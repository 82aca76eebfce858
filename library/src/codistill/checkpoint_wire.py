"""Kept buffers of the checkpoint exchanges (checkpoints.py): what one exchange sends and receives,
allocated once, with the copies between them and the modules' parameters worked out once, so an
exchange copies parameters in and out and allocates, flattens and pads nothing.

The vector of a model is its parameters in `flat_parameters` order, zero-padded to `padded_size`
(the longest of the models: architectures may differ) and, sharded, to a multiple of the number of
shards. Shard r is the r-th of `shards` equal slices; each shard is cut into chunks of about
CHUNK_ELEMENTS values, and chunk c of every shard and every model group is one kept tensor
[shards, n_groups, length_c]: the layout in which
  - peers all_gather chunk c of shard r: output chunk[r] ([n_groups, length]), input chunk[r, g];
  - the model group then all_gathers the peers' block: output chunk ([shards, ...]), input chunk[r].
Each collective's output and input are contiguous views of the kept tensor, as
`dist.all_gather_single` (all_gather_into_tensor) needs.
"""
import torch

# Elements (float32: 4 MiB, float64: 8 MiB) per collective; ours. Chunks started together (async) keep gloo's link
# busy both ways: at 1 Gbit/s one all_gather call of the 102 MB vector takes ~1.4 s, the chunked
# exchange ~0.9 s (benchmarks/results.md: part 3's collectives table, part 3b).
# Small models stay one chunk.
CHUNK_ELEMENTS = 2**20


def chunk_lengths(total, chunk=None):
    """`total` cut into the fewest chunks of at most `chunk` (CHUNK_ELEMENTS), as equal as they can be."""
    count = max(1, -(-total // (chunk or CHUNK_ELEMENTS)))
    base, extra = divmod(total, count)
    return [base + (index < extra) for index in range(count)]


class FlatParameters:
    """A module's parameters seen as one flat vector without building it: `slices(lo, hi)` gives
    the parameters' parts that hold positions [lo, hi). A parameter not contiguous in memory
    (channels_last) has a kept contiguous shadow, which the slices read and write: `fill()` copies
    the parameters into their shadows before sending, `drain()` back after receiving. The module's
    parameters must keep their storage (in-place updates, as optimizers and load_state_dict do)."""

    def __init__(self, module):
        self.params = [p.detach() for p in module.parameters()]
        self.shadows = [None if p.is_contiguous() else torch.empty(p.shape, dtype=p.dtype, device=p.device)
                        for p in self.params]
        self.flats = [(p if shadow is None else shadow).view(-1) for p, shadow in zip(self.params, self.shadows)]
        self.offsets, offset = [], 0
        for flat in self.flats:
            self.offsets.append(offset)
            offset += flat.numel()
        self.size = offset

    def slices(self, lo, hi):
        """(part of a parameter, its position relative to lo) for every parameter overlapping [lo, hi)."""
        for flat, offset in zip(self.flats, self.offsets):
            start, end = max(lo, offset), min(hi, offset + flat.numel())
            if start < end:
                yield flat[start - offset:end - offset], start - lo

    def fill(self):
        for param, shadow in zip(self.params, self.shadows):
            if shadow is not None:
                shadow.copy_(param)

    def drain(self):
        for param, shadow in zip(self.params, self.shadows):
            if shadow is not None:
                param.copy_(shadow)


class CheckpointWire:
    """Every model group's vector as this rank holds it during an exchange (see the module doc)."""

    def __init__(self, n_groups, padded_size, shards, device, dtype=torch.float32):
        self.shards = shards
        self.shard_size = -(-padded_size // shards)
        self.lengths = chunk_lengths(self.shard_size)
        # The parameters' own dtype (checkpoints.py): a float64 model's teachers are not float32 copies.
        storage = torch.zeros(shards * n_groups * self.shard_size, device=device, dtype=dtype)
        self.chunks, self.starts, start, at = [], [], 0, 0
        for length in self.lengths:
            size = shards * n_groups * length
            self.chunks.append(storage[at:at + size].view(shards, n_groups, length))
            self.starts.append(start)
            start, at = start + length, at + size

    def copies(self, flat_parameters, row, shard, chunk):
        """(parameter part, wire part) pairs of model group `row`'s vector in chunk `chunk` of
        shard `shard`."""
        lo = shard * self.shard_size + self.starts[chunk]
        destination = self.chunks[chunk][shard, row]
        return [(part, destination[at:at + part.numel()])
                for part, at in flat_parameters.slices(lo, lo + self.lengths[chunk])]
