"""The checkpoint exchanges through collectives (Anil et al. 2018), and a model's parameters as one
vector (flat_parameters, load_flat_parameters, param_hash).

- checkpoints: peers all_gather their parameters every T updates; each rank keeps the stale
  copies as teachers and runs them forward on its own batch (teachers.py says how).
- sharded_checkpoints: the same teachers, but each of a model group's k ranks sends only its 1/k
  shard to its peers and the group assembles the shards over its own (in-server) links.
- either compressed (bits < 32: quantised per block; delta_fraction: sparse deltas against the
  vector every rank holds): CompressedWire, on compression.py's primitives.

The vectors travel through the kept buffers of checkpoint_wire.py, each collective counted
(counting.py).
"""
import ctypes
import functools
import hashlib

import torch
import torch.distributed as dist

from .checkpoint_wire import CheckpointWire, FlatParameters
from .choices import check_checkpoint_compression
from .compression import QuantizedBlocks, quantize_blocks, top_k_chunks
from .counting import counted_all_gather_into
from .peer_check import Wire


def flat_parameters(module):
    """All parameters as one detached vector (works for channels-last weights, unlike
    torch.nn.utils.parameters_to_vector)."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def load_flat_parameters(vector, module):
    """The inverse of flat_parameters, copying in place (each parameter keeps its memory format)."""
    offset = 0
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(vector[offset:offset + p.numel()].view(p.shape))
            offset += p.numel()


def param_hash(module):
    """A short hash of the bytes of flat_parameters(module): the parameters in order, each in
    row-major order. Each parameter is hashed where it lies, without copying (traced runs hash
    every update, and copying a ResNet-50's parameters twice cost three times the hash itself); a
    channels-last or otherwise non-contiguous one is made contiguous first. Parameters of mixed
    dtypes (flattened together they take the promoted dtype), off the CPU, or not plain strided
    tensors go through flat_parameters' one vector. The bytes are read through ctypes: the
    library needs torch alone, and torch does not require numpy."""
    parameters = [p.detach() for p in module.parameters()]
    if len({p.dtype for p in parameters}) != 1 or any(
            p.device.type != "cpu" or p.layout != torch.strided or p.is_quantized for p in parameters):
        parameters = [flat_parameters(module).cpu()]   # no parameters: raises as flat_parameters does
    digest = hashlib.sha1()
    for p in parameters:
        p = p.resolve_conj().resolve_neg().contiguous()
        size = p.numel() * p.element_size()
        if size:
            digest.update((ctypes.c_char * size).from_address(p.data_ptr()))
    return digest.hexdigest()[:16]


def parameters_dtype(module):
    """The dtype a module's parameters travel in: theirs (the widest, should they differ)."""
    return functools.reduce(torch.promote_types, (p.dtype for p in module.parameters()))


def _dtensor_type():
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:     # torch < 2.5
        from torch.distributed._tensor import DTensor
    return DTensor


def check_held_parameters(model, held=None):
    """Checkpoint exchanges read and write `model`'s parameters in place, as the plain tensors they
    were when the exchange was built (`held`). Raises ValueError naming the parameter when one is a
    DTensor (FSDP2's fully_shard, tensor parallelism: not supported by checkpoint exchanges) or, with
    `held`, no longer the tensor held (replaced after the exchange was built: fully_shard, or a move
    to another device or dtype), which would otherwise exchange stale parameters without a word."""
    dtensor = _dtensor_type()
    parameters = list(model.named_parameters())
    for index, (name, parameter) in enumerate(parameters):
        if isinstance(parameter, dtensor):
            raise ValueError(f"checkpoint exchanges do not support DTensor parameters ({name!r} is one: FSDP2's "
                             "fully_shard or tensor parallelism); use exchange='predictions', or DDP inside the "
                             "model group (docs/library.md, 'compile, AMP, FSDP')")
        if held is not None and (len(held) != len(parameters) or parameter.data_ptr() != held[index].data_ptr()):
            raise ValueError(f"the model's parameter {name!r} is no longer the tensor the checkpoint exchange was "
                             "built on (fully_shard, or a move to another device or dtype, after the Codistiller "
                             "was built): build the Codistiller once the model is on its device and wrapped")


class CheckpointExchange:
    """Every `period` updates, peers swap parameters into `teachers` (fresh instances of the
    peers' models, teachers.build_teachers), which each rank runs forward on its own batch in
    between. The teacher at update s is the peer from update floor(s/T)*T; the first exchange is
    at the first update `refresh` is called at (the first after a burn-in). Only parameters
    (b_model) travel, in their own dtype (a float64 model's as float64, counted as such). Peers
    may have other architectures (Figs. 14-15): parameter vectors of unequal length are
    zero-padded to the longest (the padding is counted: it travels).

    The vectors travel through kept buffers (checkpoint_wire.py), cut into chunks all_gathered
    together. sharded=True (ShardedCheckpointExchange) splits them into one shard per rank of
    the model group instead of sending the whole vector from each rank.

    bits (CHECKPOINT_BITS; 32: as above) and delta_fraction (None: as above) compress what travels
    instead, one or the other (CompressedWire: quantised per block of CHECKPOINT_BLOCK values, or
    sparse deltas per chunk of CHECKPOINT_DELTA_CHUNK values); its gathers run one after another,
    on buffers allocated per exchange, not chunked."""

    sends = "checkpoints"

    def __init__(self, groups, counter, period, group_index, model, teachers, sharded=False, bits=32,
                 delta_fraction=None):
        check_checkpoint_compression(bits, delta_fraction)
        self.groups, self.counter, self.period, self.group_index = groups, counter, period, group_index
        self.teachers = teachers
        self.shards = dist.get_world_size(groups.group) if sharded else 1
        self.shard = dist.get_rank(groups.group) if sharded else 0
        check_held_parameters(model)
        self.own = FlatParameters(model)
        self.teacher_flats = [FlatParameters(teacher) for teacher in teachers]
        padded_size = max(flat.size for flat in (self.own, *self.teacher_flats))
        device = next(model.parameters()).device
        self.bits, self.delta_fraction = bits, delta_fraction
        self.padded_size, self.dtype = padded_size, parameters_dtype(model)
        self.source_step = None  # update index the teachers' parameters come from
        if bits == 32 and delta_fraction is None:
            self.compressed = None
            self.wire = CheckpointWire(len(teachers) + 1, padded_size, self.shards, device, parameters_dtype(model))
            self.own_copies, self.teacher_copies = self._plan_copies()
        else:
            self.compressed = CompressedWire(self, padded_size, device, parameters_dtype(model))

    def _plan_copies(self):
        """Per chunk: (own parameter part, wire part) pairs of this rank's shard, and (teacher
        parameter part, wire part) pairs of every shard of every other group."""
        chunks = range(len(self.wire.chunks))
        own = [self.wire.copies(self.own, self.group_index, self.shard, chunk) for chunk in chunks]
        rows = [row for row in range(len(self.teachers) + 1) if row != self.group_index]
        teachers = [[pair for row, flat in zip(rows, self.teacher_flats) for shard in range(self.shards)
                     for pair in self.wire.copies(flat, row, shard, chunk)] for chunk in chunks]
        return own, teachers

    def is_due(self, step):
        """Whether update `step` exchanges: every `period`-th update, the first call, and the first
        call after an exchange point that was skipped (alpha 0 there: Codistiller)."""
        # Also on the first call after a burn-in that ended between exchange points.
        return step % self.period == 0 or self.source_step is None or step - self.source_step >= self.period

    def wire_description(self):
        """How the parameters travel (peer_check.Wire): in their dtype, vectors of padded_size values."""
        return Wire(self.dtype, self.padded_size, self.bits, self.delta_fraction)

    def publish(self, step, model):
        """Nothing to do before an exchange point: the parameters travel in `refresh`."""

    def refresh(self, step, model):
        """At an exchange point (or the first call), every teacher gets its peer's current
        parameters: the teachers then hold the peers to use at `step`."""
        if self.is_due(step):
            check_held_parameters(model, self.own.params)
            self._exchange()
            self.source_step = step

    def held_steps(self):
        """The update the teachers' parameters come from (None before the first exchange)."""
        return self.source_step

    def present(self):
        """Per teacher: whether it holds a peer (all of them once the first exchange is done)."""
        return [self.source_step is not None] * len(self.teachers)

    def teacher_ages(self, step):
        """Per teacher: updates between `step` and the parameters it holds (None before the first exchange)."""
        return [None if self.source_step is None else step - self.source_step] * len(self.teachers)

    def _exchange(self):
        """One exchange: every teacher gets its peer's current parameters."""
        if self.compressed is not None:
            with torch.no_grad():
                self.compressed.exchange()
            return
        with torch.no_grad():
            self.own.fill()
            works = [self._send(chunk, copies) for chunk, copies in zip(self.wire.chunks, self.own_copies)]
            if self.shards > 1:
                works = [self._assemble(chunk, work) for chunk, work in zip(self.wire.chunks, works)]
            for work, copies in zip(works, self.teacher_copies):
                work.wait()
                for teacher_part, wire_part in copies:
                    teacher_part.copy_(wire_part)
            for flat in self.teacher_flats:
                flat.drain()

    def _send(self, chunk, own_copies):
        """Copies this rank's part of the chunk in and starts the peers' all_gather of it."""
        for own_part, wire_part in own_copies:
            wire_part.copy_(own_part)
        block = chunk[self.shard]
        return counted_all_gather_into(block.view(-1), block[self.group_index], self.groups.peers, self.counter,
                                       self.groups.peers_span_nodes)

    def _assemble(self, chunk, peers_work):
        """Once the peers' shards are in, the model group's all_gather of every shard."""
        peers_work.wait()
        return counted_all_gather_into(chunk.view(-1), chunk[self.shard].view(-1), self.groups.group, self.counter,
                                       self.groups.group_spans_nodes)

    def state_dict(self):
        """The stale teachers (flat parameter vectors) and the update they come from; with sparse
        deltas also every model's vector as the peers reconstructed it ("reconstructed")."""
        state = {"vectors": [flat_parameters(t) for t in self.teachers], "source_step": self.source_step}
        if self.delta_fraction is not None:
            held = self.compressed.reconstructed
            state["reconstructed"] = None if held is None else held.clone()
        return state

    def load_state_dict(self, state):
        """Puts a state_dict()'s parameter vectors back into the teachers, and their update (and,
        with sparse deltas, the reconstructed vectors: the next exchange then sends what an
        uninterrupted run would)."""
        for teacher, vector in zip(self.teachers, state["vectors"], strict=True):
            load_flat_parameters(vector, teacher)
        self.source_step = state["source_step"]
        if self.delta_fraction is not None:
            held = state.get("reconstructed")
            self.compressed.reconstructed = None if held is None else held.to(self.compressed.x.device,
                                                                               self.compressed.x.dtype).clone()


# Compressed checkpoints (CheckpointExchange's bits / delta_fraction; compression.py).
CHECKPOINT_BLOCK = 64          # values per float32 scale of a quantised checkpoint
CHECKPOINT_DELTA_CHUNK = 4096  # values per chunk of a sparse delta (int16 indices)


class CompressedWire:
    """What a compressed checkpoint exchange sends and keeps: this rank's shard of its model's
    vector (`x`, zero-padded as CheckpointWire's), quantised (quantize_blocks) or as a sparse
    update of the vector every rank holds of it (top_k_chunks), gathered over the peers and then,
    sharded, over the model group; each tensor handed to a collective lives on the parameters'
    device and is charged as it travels (counted_all_gather_into).

    Sparse deltas: `reconstructed` [shards, n_groups, shard_size] is every model's vector as all
    ranks hold it (the same on every rank of the world: each is built from the same messages, the
    sender's own row included, so nobody drifts). The first exchange sends x whole; later ones,
    in each chunk of CHECKPOINT_DELTA_CHUNK values of the shard, the k positions where x differs
    most from its reconstruction, with x's values there, which overwrite the reconstruction
    (x - reconstruction added without its rounding; a value not sent keeps its gap, sent once it
    is among the largest: error feedback by construction). fraction 1 sends every value: the
    teachers are the uncompressed exchange's bit for bit."""

    def __init__(self, exchange, padded_size, device, dtype):
        self.owner = exchange
        shards, n_groups = exchange.shards, len(exchange.teachers) + 1
        self.shard_size = -(-padded_size // shards)
        lo = exchange.shard * self.shard_size
        self.x = torch.zeros(self.shard_size, device=device, dtype=dtype)
        self.own_copies = [(part, self.x[at:at + part.numel()])
                           for part, at in exchange.own.slices(lo, lo + self.shard_size)]
        rows = [row for row in range(n_groups) if row != exchange.group_index]
        self.teacher_copies = [(row, shard, part, at) for row, flat in zip(rows, exchange.teacher_flats)
                               for shard in range(shards)
                               for part, at in flat.slices(shard * self.shard_size, (shard + 1) * self.shard_size)]
        self.n_groups = n_groups
        self.reconstructed = None

    def _gather(self, tensor):
        """`tensor` of every rank: [shards, n_groups, *tensor.shape] (int16 travels as its bytes:
        gloo and NCCL all_gather no int16; an all_gather copies, so bytes are values)."""
        exchange = self.owner
        sent = tensor.view(torch.uint8) if tensor.dtype == torch.int16 else tensor
        output = torch.empty((exchange.shards, self.n_groups, *sent.shape), dtype=sent.dtype, device=sent.device)
        block = output[exchange.shard]
        counted_all_gather_into(block.view(-1), sent.contiguous().view(-1), exchange.groups.peers, exchange.counter,
                                exchange.groups.peers_span_nodes).wait()
        if exchange.shards > 1:
            counted_all_gather_into(output.view(-1), block.view(-1), exchange.groups.group, exchange.counter,
                                    exchange.groups.group_spans_nodes).wait()
        return output.view(torch.int16) if tensor.dtype == torch.int16 else output

    def exchange(self):
        """One exchange: every teacher gets its peer's vector as it arrives (dequantised, or
        the reconstruction the sparse deltas update)."""
        exchange = self.owner
        exchange.own.fill()
        for part, wire_part in self.own_copies:
            wire_part.copy_(part.view(-1))
        if exchange.delta_fraction is None:
            sent = quantize_blocks(self.x, exchange.bits, CHECKPOINT_BLOCK)
            codes, scales = self._gather(sent.codes), self._gather(sent.scales)
            vectors = torch.stack([QuantizedBlocks(c, s, sent.bits, sent.numel, sent.block).dequantize()
                                   for c, s in zip(codes.view(-1, codes.shape[-1]), scales.view(-1, scales.shape[-1]))])
            vectors = vectors.view(exchange.shards, self.n_groups, self.shard_size)
        elif self.reconstructed is None:   # the first exchange: the vectors whole
            self.reconstructed = vectors = self._gather(self.x)
        else:
            vectors = self.reconstructed
            sparse = top_k_chunks(self.x - vectors[exchange.shard, exchange.group_index], exchange.delta_fraction,
                                  CHECKPOINT_DELTA_CHUNK)
            positions = sparse.positions()
            offsets = positions - sparse.indices.to(torch.int64)     # each entry's chunk start
            indices, values = self._gather(sparse.indices), self._gather(self.x[positions])
            rows = vectors.view(-1, self.shard_size)
            rows.scatter_(1, indices.view(rows.shape[0], -1).to(torch.int64) + offsets, values.view(rows.shape[0], -1))
        for row, shard, part, at in self.teacher_copies:
            part.copy_(vectors[shard, row, at:at + part.numel()])
        for flat in exchange.teacher_flats:
            flat.drain()


class ShardedCheckpointExchange(CheckpointExchange):
    """The checkpoint exchange with k times fewer bits between servers (k ranks per model): each
    rank of a model group sends only its 1/k shard of the vector to its peers (the same position in
    every group), then the model group all_gathers the peers' shards inside its server. Every rank
    ends with the same teachers as CheckpointExchange, bit for bit. Per device and exchange:
    (n-1) b_model / k across the peers' link, (k-1) n b_model / k across the model group's (the own
    model's shards travel too: one collective per chunk). Vectors are zero-padded to a multiple of
    k (at most k-1 values, counted)."""

    def __init__(self, groups, counter, period, group_index, model, teachers, bits=32, delta_fraction=None):
        super().__init__(groups, counter, period, group_index, model, teachers, sharded=True, bits=bits,
                         delta_fraction=delta_fraction)
