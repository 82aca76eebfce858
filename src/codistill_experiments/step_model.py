"""A step-time model past one machine: time and bits per update of all_reduce, of codistillation
(predictions, checkpoints, sharded checkpoints, either checkpoint exchange compressed) and of
PowerSGD, local SGD, DiLoCo, SparseLoCo and MuLoCo for n model groups x k GPUs per group, from a
compute time per update and a collective cost model (bandwidth term + latency term).

Bits follow the engine's counting convention (library/src/codistill/counting.py, module docstring; restated
here, but for the bits of a row of logits, codistill.prediction_row_bits): each collective is charged
per device the traffic of a bandwidth-optimal algorithm on the tensor handed to it, all_reduce of x
costs 2|x| and all_gather of x over m ranks (m-1)|x|, to the inter-server counter when the group
spans servers, else the intra one.

Time follows what the collectives do on a cluster of servers of g GPUs sharing one NIC each:
hierarchical all_reduce (inside the server over its fast links, then a ring or a tree across servers
carrying the whole gradient through each server's NIC), and all_gathers across servers whose
traffic from all g GPUs of a server shares that NIC. No overlap of communication with compute.

A method is a function (layout, workload, network) -> Cost in METHODS. Its constants on this machine
(bench_calibration.py) and its judgement on part 3 of `make bench` are in step_model_calibration.py.

    python -m benchmarks.bench --parts stepmodel   # section 6 of results.md and its figure, from this model
"""
import math
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np


@dataclass(frozen=True)
class Overhead:
    """How far one collective kind is from the ideal model (ideal: the defaults). Its bandwidth time
    is scaled by `wire`; `s_per_bit` x payload bits of CPU work (copies, reductions on one CPU thread)
    adds to it, or overlaps it (the larger of the two counts) when `overlap`; `extra_s_per_bit` x
    payload bits of the method's own work before or after the collective (flatten, load) adds;
    `call_s` is a fixed cost per call."""
    wire: float = 1.0
    s_per_bit: float = 0.0
    call_s: float = 0.0
    overlap: bool = False
    extra_s_per_bit: float = 0.0

    def apply(self, ideal_s, bits, calls=1):
        cpu = self.s_per_bit * bits
        busy = max(self.wire * ideal_s, cpu) if self.overlap else self.wire * ideal_s + cpu
        return busy + self.extra_s_per_bit * bits + self.call_s * calls


@dataclass(frozen=True)
class Network:
    inter_bits_per_s: float            # one NIC per server (payload rate)
    inter_latency_s: float = 10e-6     # per message step of a collective across servers
    intra_bits_per_s: float = 1.2e12   # NVLink-class, per GPU
    intra_latency_s: float = 5e-6
    gpus_per_server: int = 8
    algorithm: str = "ring"            # all_reduce across servers: "ring", "tree" or "best"
    all_reduce: Overhead = field(default_factory=Overhead)
    all_gather: Overhead = field(default_factory=Overhead)    # the logits' all_gather
    exchange: Overhead = field(default_factory=Overhead)      # a checkpoint exchange's (flatten, gather, load)
    averaging: Overhead = field(default_factory=Overhead)     # local SGD's / DiLoCo's model all_reduce
    # Device time of the methods' own arithmetic (0: free): PowerSGD's compression (error feedback,
    # the factors' matmuls, orthogonalisation, decompression) per gradient bit and per compressed
    # matrix; DiLoCo's outer step (parameter change, outer Nesterov SGD, loading) per model bit.
    compress_s_per_bit: float = 0.0
    compress_s_per_matrix: float = 0.0
    outer_s_per_bit: float = 0.0
    # DDP's copies of the gradients into its buckets and back, per gradient bit (0: free)
    ddp_s_per_bit: float = 0.0


@dataclass(frozen=True)
class Workload:
    name: str
    params: int
    compute_s: float                   # one update on one GPU (forward, backward, optimizer), measured
    logits_per_device: int             # values per device per update (batch x classes, or tokens x vocab)
    value_bits: int = 32
    classes: int = 1000                # values per row of logits (an example's classes, a token's vocabulary)
    teacher_forward_share: float = 1 / 3   # a teacher's forward pass, as a share of compute_s
    bucket_bytes: int = 25 * 2**20     # DDP's default bucket: one all_reduce call per bucket
    matrices: tuple = ()               # (rows, cols) of each tensor of > 1 dimension, as PowerSGD views it
    tensors: tuple = ()                # the shape of every parameter tensor, in the model's parameter order
                                       # (SparseLoCo's and MuLoCo's messages are per tensor); () : `matrices`,
                                       # then the parameters they leave as one vector (parameter_shapes)
    flops_per_update: float = 0.0      # forward + backward FLOPs of compute_s (0: unknown; MuLoCo's Muon then free)

    @property
    def model_bits(self):
        return self.value_bits * self.params

    @property
    def buckets(self):
        return max(1, math.ceil(self.params * self.value_bits / 8 / self.bucket_bytes))

    @property
    def parameter_shapes(self):
        """`tensors`, or when none are given `matrices` followed by one vector of the parameters they
        leave out (an assumed layout: its 1-D tensors lumped together)."""
        if self.tensors:
            return self.tensors
        left = self.params - sum(math.prod(shape) for shape in self.matrices)
        return tuple(self.matrices) + (((left,),) if left > 0 else ())


@dataclass(frozen=True)
class Layout:
    n: int          # model groups
    k: int          # GPUs per group
    T: int = 1      # exchange period (updates); local SGD's and DiLoCo's H
    rank: int = 2   # PowerSGD's matrix approximation rank


@dataclass(frozen=True)
class Cost:
    seconds: float
    inter_bits: float   # per device per update, the engine's convention
    intra_bits: float


# ---------------------------------------------------------------- collective cost models
def ring_all_reduce_s(bits, ranks, bits_per_s, latency_s):
    """Ring: reduce-scatter then all_gather, 2(m-1) steps each moving bits/m."""
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * bits / bits_per_s + 2 * (ranks - 1) * latency_s


def tree_all_reduce_s(bits, ranks, bits_per_s, latency_s):
    """Pipelined (double binary) tree: reduce then broadcast, 2 bits through each link, 2 log2 m steps."""
    if ranks <= 1:
        return 0.0
    return 2 * bits / bits_per_s + 2 * math.ceil(math.log2(ranks)) * latency_s


def ring_all_gather_s(bits_each, ranks, bits_per_s, latency_s):
    """Ring all_gather of bits_each per rank: m-1 steps, each moving bits_each."""
    if ranks <= 1:
        return 0.0
    return (ranks - 1) * bits_each / bits_per_s + (ranks - 1) * latency_s


def servers(ranks, net):
    return math.ceil(ranks / net.gpus_per_server)


def all_reduce_s(bits, ranks, net, calls=1):
    """Hierarchical all_reduce of `bits` over `ranks` GPUs in `calls` calls (DDP buckets)."""
    inside, across = min(ranks, net.gpus_per_server), servers(ranks, net)
    t = calls * ring_all_reduce_s(bits / calls, inside, net.intra_bits_per_s, net.intra_latency_s)
    across_s = 0.0
    if across > 1:
        args = (bits / calls, across, net.inter_bits_per_s, net.inter_latency_s)
        ring, tree = ring_all_reduce_s(*args), tree_all_reduce_s(*args)
        across_s = calls * {"ring": ring, "tree": tree, "best": min(ring, tree)}[net.algorithm]
    return t + net.all_reduce.apply(across_s, bits, calls)


def peer_all_gather_s(bits_each, peers, sharing_nic, net, crosses=True, overhead=None):
    """all_gather of bits_each over `peers` ranks (one per model group); `sharing_nic` GPUs of a
    server do the same at once through its NIC."""
    if peers <= 1:
        return 0.0
    if not crosses:
        return ring_all_gather_s(bits_each, peers, net.intra_bits_per_s, net.intra_latency_s)
    ideal = ring_all_gather_s(bits_each * sharing_nic, peers, net.inter_bits_per_s, net.inter_latency_s)
    return (overhead or net.all_gather).apply(ideal, bits_each * peers)


# ---------------------------------------------------------------- methods
def _group_all_reduce(layout, work, net):
    """The all_reduce inside each model group: (seconds, inter bits, intra bits) per update."""
    k = layout.k
    if k <= 1:
        return 0.0, 0.0, 0.0
    bits = 2 * work.model_bits
    crosses = k > net.gpus_per_server
    seconds = all_reduce_s(work.model_bits, k, net, work.buckets) + net.ddp_s_per_bit * work.model_bits
    return seconds, bits * crosses, bits * (not crosses)


def _peers_cross(layout, net):
    return layout.n * layout.k > net.gpus_per_server


def all_reduce(layout, work, net):
    """One model on all n*k GPUs (the baseline: n and T are ignored)."""
    single = Layout(n=1, k=layout.n * layout.k)
    t, inter, intra = _group_all_reduce(single, work, net)
    return Cost(work.compute_s + t, inter, intra)


def prediction_bits(work, topk=None, bits=None):
    """b_pred: the bits one device sends at one exchange, its rows of logits x the library's
    prediction_row_bits (every value at `bits`, default the workload's, or the top-k values and their
    indices; 8-bit values with a 32-bit scale per row)."""
    from codistill import prediction_row_bits

    rows = work.logits_per_device // work.classes
    return rows * prediction_row_bits(work.classes, topk, bits or work.value_bits)


def predictions(layout, work, net, topk=None, bits=None):
    """Every T updates each device all_gathers its logits with its n-1 peers: (n-1) b_pred / T;
    `topk`, `bits`: the exchange's compression (prediction_bits)."""
    t, inter, intra = _group_all_reduce(layout, work, net)
    b_pred = prediction_bits(work, topk, bits)
    crosses = _peers_cross(layout, net)
    share = min(layout.k, net.gpus_per_server)
    t += peer_all_gather_s(b_pred, layout.n, share, net, crosses) / layout.T
    bits = (layout.n - 1) * b_pred / layout.T
    return Cost(work.compute_s + t, inter + bits * crosses, intra + bits * (not crosses))


def _teacher_compute(layout, work):
    return work.compute_s * (1 + (layout.n - 1) * work.teacher_forward_share)


def checkpoints(layout, work, net, message_bits=None):
    """Every T updates each device all_gathers the whole parameter vector with its n-1 peers:
    (n-1) b_model / T; every update it runs the n-1 stale teachers forward. `message_bits`: what one
    device sends per exchange in place of b_model (a compressed exchange: compressed_checkpoints)."""
    t, inter, intra = _group_all_reduce(layout, work, net)
    sent = work.model_bits if message_bits is None else message_bits
    crosses = _peers_cross(layout, net)
    share = min(layout.k, net.gpus_per_server)
    t += peer_all_gather_s(sent, layout.n, share, net, crosses, net.exchange) / layout.T
    bits = (layout.n - 1) * sent / layout.T
    return Cost(_teacher_compute(layout, work) + t, inter + bits * crosses, intra + bits * (not crosses))


def sharded_checkpoints(layout, work, net, shard_bits=None):
    """Each of the k ranks all_gathers only its 1/k shard with its peers ((n-1) b_model / (k T)),
    then the model group all_gathers the block of n shards it holds over k ranks ((k-1) n b_model /
    (k T), inside the server when k <= g): the engine's kept buffer gathers its own model's shard
    too (exchange.ShardedCheckpointExchange, checkpoint_wire.py), though only the n-1 teachers' are
    used. `shard_bits`: what one device sends per exchange in place of b_model / k (a compressed
    exchange: compressed_checkpoints)."""
    t, inter, intra = _group_all_reduce(layout, work, net)
    n, k, T = layout.n, layout.k, layout.T
    shard = work.model_bits / k if shard_bits is None else shard_bits
    crosses = _peers_cross(layout, net)
    share = min(k, net.gpus_per_server)
    t += peer_all_gather_s(shard, n, share, net, crosses, net.exchange) / T
    peer_bits = (n - 1) * shard / T
    group_crosses = k > net.gpus_per_server
    group_bits = (k - 1) * n * shard / T
    if group_crosses:
        t += peer_all_gather_s(n * shard, k, 1, net, True) / T
    else:
        t += ring_all_gather_s(n * shard, k, net.intra_bits_per_s, net.intra_latency_s) / T
    inter += peer_bits * crosses + group_bits * group_crosses
    intra += peer_bits * (not crosses) + group_bits * (not group_crosses)
    return Cost(_teacher_compute(layout, work) + t, inter, intra)


# Compressed checkpoints (library/src/codistill/checkpoints.py, CompressedWire; compression.py): the
# engine's constants, restated (tests/test_step_model.py checks them against the library's).
CHECKPOINT_BLOCK = 64          # checkpoints.CHECKPOINT_BLOCK: values per float32 scale of a quantised checkpoint
CHECKPOINT_DELTA_CHUNK = 4096  # checkpoints.CHECKPOINT_DELTA_CHUNK: values per chunk of a sparse delta
FLOAT_BITS = 32                # a float32 scale, mean or table entry


def index_bits(length):
    """Bits of the smallest integer type that holds an index < `length` (codistill.choices.index_bits):
    8 (uint8) up to 256, 16 (int16) up to 32768, else 32."""
    return 8 if length <= 2**8 else 16 if length <= 2**15 else 32


def absmax_bits(values, bits, block=CHECKPOINT_BLOCK):
    """Wire bits of quantize_blocks(x, bits, block) of `values` values (scheme absmax): the codes packed
    8 / bits to a byte and a float32 scale per block; bits 32 the float32 values."""
    if bits == 32:
        return FLOAT_BITS * values
    return 8 * math.ceil(values * bits / 8) + FLOAT_BITS * math.ceil(values / block)


def statistical_bits(values, bits, block):
    """Wire bits of quantize_blocks(x, bits, block, scheme="statistical"): the codes packed as absmax's and
    per block its mean and a value per code (1 + 2^bits float32); bits 32 the float32 values."""
    if bits == 32:
        return FLOAT_BITS * values
    return 8 * math.ceil(values * bits / 8) + FLOAT_BITS * (1 + 2 ** bits) * math.ceil(values / block)


def kept_per_chunks(values, fraction, chunk):
    """Values top_k_chunks(x, fraction, chunk) keeps of `values` values: max(1, round(fraction c)) in
    each chunk of c values (the last one shorter)."""
    full, last = divmod(values, chunk)
    return full * max(1, round(fraction * chunk)) + (max(1, round(fraction * last)) if last else 0)


def checkpoint_message_bits(values, value_bits=32, bits=32, delta_fraction=None):
    """What one device sends at one checkpoint exchange of a vector (or shard) of `values` parameters
    of `value_bits` each (the library's checkpoints.CompressedWire): bits < 32, the vector quantised per block of
    64 (absmax_bits); delta_fraction f, after the first exchange (which sends the vector whole) the
    kept values of each 4096-value chunk of the difference to the peers' reconstruction, an int16 index
    and the parameter's value each: K (16 + value_bits); neither: the vector as it is."""
    if delta_fraction is not None:
        kept = kept_per_chunks(values, delta_fraction, CHECKPOINT_DELTA_CHUNK)
        return kept * (index_bits(CHECKPOINT_DELTA_CHUNK) + value_bits)
    return absmax_bits(values, bits) if bits != 32 else values * value_bits


def compressed_checkpoints(layout, work, net, bits=32, delta_fraction=None, sharded=False):
    """checkpoints (sharded: sharded_checkpoints) with the vector each device sends compressed
    (checkpoint_message_bits of the whole vector, or of its 1/k shard, zero-padded to ceil(params / k)
    values as the engine pads it): the same collectives on fewer bits, the same teachers' forward
    passes. Sparse deltas are priced after the first exchange (the steady state; the first sends the
    vector whole). The quantisation's and the reconstruction's device time is left out (0)."""
    if not sharded:
        return checkpoints(layout, work, net, checkpoint_message_bits(work.params, work.value_bits, bits,
                                                                      delta_fraction))
    shard = math.ceil(work.params / layout.k)
    return sharded_checkpoints(layout, work, net, checkpoint_message_bits(shard, work.value_bits, bits,
                                                                          delta_fraction))


# SparseLoCo and MuLoCo (src/codistill_experiments/baselines/compressed_diloco.py): per parameter tensor.
SPARSELOCO = {"top_k": 128, "chunk_size": 64, "bits": 2}   # src/conf/method/sparseloco.yaml
MULOCO = {"bits": 2}                                         # src/conf/method/muloco.yaml


def largest_divisor_at_most(n, limit):
    """compressed_diloco.largest_divisor_at_most: SparseLoCo's chunk side for a tensor side of n."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def sparseloco_tensor_bits(shape, top_k=128, chunk_size=64, bits=2):
    """SparseLoCo's message for one tensor of `shape` (compressed_diloco.TopKCodec): the tensor as
    (shape[0], the rest) (a vector as (numel, 1)) in chunks of h x w (the largest divisors of its two
    sides <= chunk_size; a vector's w = 1), k = max(1, round(h w top_k / chunk_size^2)) values kept
    per chunk with their index in the chunk (index_bits(h w)), the K kept values quantised together
    (statistical_bits, one block); top_k >= chunk_size^2 sends every value quantised, without indices."""
    numel = math.prod(shape)
    rows, cols = (numel, 1) if len(shape) < 2 else (shape[0], numel // shape[0])
    h = largest_divisor_at_most(rows, chunk_size)
    w = largest_divisor_at_most(cols, chunk_size) if len(shape) >= 2 else 1
    fraction = top_k / chunk_size ** 2
    if fraction >= 1:
        return statistical_bits(numel, bits, max(1, numel))
    kept = kept_per_chunks(numel, fraction, h * w)
    return kept * index_bits(h * w) + statistical_bits(kept, bits, max(1, kept))


def sparseloco_message_bits(work, top_k=128, chunk_size=64, bits=2):
    """What one device sends at one SparseLoCo outer step: its group's message, every tensor's."""
    return sum(sparseloco_tensor_bits(shape, top_k, chunk_size, bits) for shape in work.parameter_shapes)


def muloco_message_bits(work, bits=2):
    """What one device sends at one MuLoCo outer step (compressed_diloco.RowCodec): each tensor of
    more than one dimension in rows of numel / shape[0] values, each row quantised (statistical_bits,
    a block a row), but the output layer (the last 2-D tensor) and every 1-D tensor in float32 (a
    convolution is its (out, in x kh x kw) rows, as the engine's Muon and MuLoCo's code flatten it)."""
    shapes = work.parameter_shapes
    flat = [index for index, shape in enumerate(shapes) if len(shape) == 2]
    head = max(flat) if flat else None
    total = 0
    for index, shape in enumerate(shapes):
        numel = math.prod(shape)
        full = len(shape) < 2 or index == head
        total += statistical_bits(numel, 32 if full else bits, max(1, numel // shape[0]) if len(shape) >= 2
                                  else max(1, numel))
    return total


def compressed_outer(layout, work, net, message_bits):
    """DiLoCo whose outer gradient is all_gathered compressed: each group all_reduces its gradients
    every update; every H = layout.T updates every rank all_gathers its group's message of
    `message_bits` with its n-1 peers (the k ranks of a group at once, a server's GPUs through its
    NIC), (n-1) message / H per device, then takes DiLoCo's outer step (its device time per model bit).
    Encoding and decoding the messages cost no device time here (left out)."""
    t, inter, intra = _group_all_reduce(layout, work, net)
    n = layout.n
    crosses = _peers_cross(layout, net)
    every_h = peer_all_gather_s(message_bits, n, min(layout.k, net.gpus_per_server), net, crosses)
    every_h += net.outer_s_per_bit * work.model_bits if n > 1 else 0.0
    bits = (n - 1) * message_bits / layout.T
    return Cost(work.compute_s + t + every_h / layout.T, inter + bits * crosses, intra + bits * (not crosses))


def sparseloco(layout, work, net, top_k=SPARSELOCO["top_k"], chunk_size=SPARSELOCO["chunk_size"],
               bits=SPARSELOCO["bits"]):
    """SparseLoCo: compressed_outer with sparseloco_message_bits (defaults: sparseloco.yaml's)."""
    return compressed_outer(layout, work, net, sparseloco_message_bits(work, top_k, chunk_size, bits))


MUON_NS_STEPS = 5   # torch.optim.Muon's Newton-Schulz iterations (its default, as compressed_diloco.py builds it)


def muon_flops(work, steps=MUON_NS_STEPS):
    """FLOPs of the Newton-Schulz iterations of one Muon step (torch's _zeropower_via_newtonschulz) on
    every tensor Muon takes in MuLoCo (each of more than one dimension as (shape[0], the rest), but the
    output layer): per iteration on an a x b matrix, m = min(a, b), n = max(a, b), X X^T (2 m^2 n),
    A A (2 m^3) and B X (2 m^2 n)."""
    shapes = work.parameter_shapes
    flat = [index for index, shape in enumerate(shapes) if len(shape) == 2]
    head = max(flat) if flat else None
    total = 0
    for index, shape in enumerate(shapes):
        if len(shape) < 2 or index == head:
            continue
        a, b = shape[0], math.prod(shape) // shape[0]
        m, n = min(a, b), max(a, b)
        total += steps * (4 * m * m * n + 2 * m ** 3)
    return total


def muon_s(work):
    """Device time of Muon's orthogonalisation per update, every rank orthogonalising every matrix (torch's
    Muon, as the engine runs it): muon_flops at the update's own FLOP rate (flops_per_update / compute_s);
    0 when flops_per_update is unknown. The engine's copies of a convolution into its 2-D matrix and back
    are left out."""
    return muon_flops(work) / work.flops_per_update * work.compute_s if work.flops_per_update else 0.0


def muloco(layout, work, net, bits=MULOCO["bits"]):
    """MuLoCo: compressed_outer with muloco_message_bits (the average's second rounding is local:
    nothing more travels), and every update Muon's orthogonalisation (muon_s)."""
    cost = compressed_outer(layout, work, net, muloco_message_bits(work, bits))
    return replace(cost, seconds=cost.seconds + muon_s(work))


def powersgd_elements(work, rank, min_compression_rate=2):
    """(elements all_reduced per update, matrices compressed) of torch's powerSGD_hook: a matrix
    n x m as its factors P (n x r) and Q (m x r), r = min(n, m, rank), when (n + m) r x
    min_compression_rate < n m (torch's _should_compress), else whole; every vector whole."""
    elements = work.params - sum(n * m for n, m in work.matrices)
    compressed = 0
    for n, m in work.matrices:
        r = min(n, m, rank)
        small = (n + m) * r * min_compression_rate < n * m
        elements += (n + m) * r if small else n * m
        compressed += small
    return elements, compressed


def powersgd(layout, work, net):
    """One model on all n*k GPUs (as all_reduce); each DDP bucket all_reduces its whole tensors, then P,
    then Q (3 calls): 2 x 32 E bits per device for E elements. Compression costs device time."""
    ranks = layout.n * layout.k
    if ranks <= 1:
        return Cost(work.compute_s, 0.0, 0.0)
    elements, compressed = powersgd_elements(work, layout.rank)
    bits = elements * work.value_bits
    compress = net.compress_s_per_bit * work.model_bits + net.compress_s_per_matrix * compressed
    crosses = ranks > net.gpus_per_server
    t = all_reduce_s(bits, ranks, net, 3 * work.buckets)
    return Cost(work.compute_s + compress + t, 2 * bits * crosses, 2 * bits * (not crosses))


def peer_average_s(layout, work, net, overhead=None):
    """One all_reduce of the whole model among the n peers (rank i of every group, torch's averager on
    the peers' group), the k ranks of a group at once: a server's GPUs share its NIC. `overhead`:
    the collective's (default: the averaging's, torch's averager with its flatten and division)."""
    n = layout.n
    if n <= 1:
        return 0.0
    if not _peers_cross(layout, net):
        return ring_all_reduce_s(work.model_bits, n, net.intra_bits_per_s, net.intra_latency_s)
    args = (work.model_bits * min(layout.k, net.gpus_per_server), n, net.inter_bits_per_s, net.inter_latency_s)
    ring, tree = ring_all_reduce_s(*args), tree_all_reduce_s(*args)
    ideal = {"ring": ring, "tree": tree, "best": min(ring, tree)}[net.algorithm]
    return (overhead or net.averaging).apply(ideal, work.model_bits)


def localsgd(layout, work, net):
    """Each group all_reduces its gradients every update; every H = layout.T updates the n peers
    average the parameters: 2 b_model / H per device."""
    t, inter, intra = _group_all_reduce(layout, work, net)
    t += peer_average_s(layout, work, net) / layout.T
    bits, crosses = 2 * work.model_bits / layout.T * (layout.n > 1), _peers_cross(layout, net)
    return Cost(work.compute_s + t, inter + bits * crosses, intra + bits * (not crosses))


def diloco(layout, work, net):
    """Local SGD's bits (the outer gradient is one all_reduce of b_model among the peers every H); its
    time: the group's all_reduce every update, and every H the peers' plain all_reduce (not torch's
    averager) plus the outer step's device time (parameter change, outer optimizer, loading)."""
    cost = localsgd(layout, work, net)
    t, _, _ = _group_all_reduce(layout, work, net)
    outer = net.outer_s_per_bit * work.model_bits if layout.n > 1 else 0.0
    every_h = peer_average_s(layout, work, net, net.all_reduce) + outer
    return replace(cost, seconds=work.compute_s + t + every_h / layout.T)


# Compressed checkpoint exchanges priced in METHODS: every checkpoint_bits < 32, and sparse deltas at
# f = 0.01 (ours: no config default; docs/library.md's example, ~0.48 bits a value after the first).
CHECKPOINT_COMPRESSIONS = {"8-bit": {"bits": 8}, "4-bit": {"bits": 4}, "2-bit": {"bits": 2},
                           "delta 1%": {"delta_fraction": 0.01}}
METHODS = {"all_reduce": all_reduce, "predictions": predictions, "checkpoints": checkpoints,
           "sharded checkpoints": sharded_checkpoints, "powersgd": powersgd, "localsgd": localsgd,
           "diloco": diloco,
           **{f"{kind} {name}": partial(compressed_checkpoints, sharded=kind == "sharded checkpoints", **options)
              for kind in ("checkpoints", "sharded checkpoints") for name, options in CHECKPOINT_COMPRESSIONS.items()},
           "sparseloco": sparseloco, "muloco": muloco}


# ---------------------------------------------------------------- the authors' slides
SLIDES_MS = {1: 412, 2: 956, 4: 1568, 8: 1593}   # 229M-parameter transformer, all_reduce, 8 GPUs/node
TRANSFORMER_PARAMS = 229_000_000
SLIDES_NET = Network(inter_bits_per_s=10e9, inter_latency_s=25e-6)   # Ethernet; rate fitted below


def fit_slides(fit_on=(1, 8), net=SLIDES_NET, params=TRANSFORMER_PARAMS):
    """Fits the compute time per update and the inter-server payload rate (t is linear in compute
    and in 1 / rate) on the slides' points `fit_on`; latencies and NVLink rate are assumed."""
    g = net.gpus_per_server
    work = Workload("transformer 229M", params, 0.0, logits_per_device=0)
    rows, target = [], []
    for nodes in fit_on:
        fixed = all_reduce(Layout(1, nodes * g), work, replace(net, inter_bits_per_s=math.inf)).seconds
        across = servers(nodes * g, net)
        bandwidth_bits = (2 * (across - 1) / across if net.algorithm == "ring" else 2 * (across > 1)) \
            * work.model_bits
        rows.append([1.0, bandwidth_bits])
        target.append(SLIDES_MS[nodes] / 1000 - fixed)
    (compute, inverse_rate), *_ = np.linalg.lstsq(np.array(rows), np.array(target), rcond=None)
    fitted_net = replace(net, inter_bits_per_s=1 / inverse_rate)
    work = replace(work, compute_s=compute)
    predicted = {nodes: 1000 * all_reduce(Layout(1, nodes * g), work, fitted_net).seconds for nodes in SLIDES_MS}
    return {"compute_s": compute, "inter_bits_per_s": 1 / inverse_rate, "fit_on": list(fit_on),
            "predicted_ms": predicted,
            "error_pct": {nodes: 100 * (predicted[nodes] / SLIDES_MS[nodes] - 1) for nodes in SLIDES_MS}}


# ---------------------------------------------------------------- predictions up to 4096 GPUs
def resnet50_matrices():
    """(rows, cols) of ResNet-50's convolutions (out x in*kh*kw) and classifier, as PowerSGD views them:
    the stem, then stages of 3/4/6/3 bottlenecks (1x1, 3x3, 1x1 x4, a 1x1 projection on each first)."""
    shapes, channels = [(64, 3 * 7 * 7)], 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            shapes += [(width, channels), (width, width * 9), (4 * width, width)]
            if block == 0:
                shapes.append((4 * width, channels))
            channels = 4 * width
    return tuple(shapes + [(1000, channels)])


def resnet50_tensors():
    """The shape of every parameter of torchvision's resnet50(), in its parameter order: the stem's
    convolution and batch norm (weight, bias), then per bottleneck conv1, bn1, conv2, bn2, conv3, bn3
    and on each stage's first its projection (convolution, batch norm), then the classifier."""
    def conv_bn(out, inp, side):
        return [(out, inp, side, side), (out,), (out,)]
    shapes, channels = conv_bn(64, 3, 7), 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            shapes += conv_bn(width, channels, 1) + conv_bn(width, width, 3) + conv_bn(4 * width, width, 1)
            if block == 0:
                shapes += conv_bn(4 * width, channels, 1)
            channels = 4 * width
    return tuple(shapes + [(1000, channels), (1000,)])


def transformer_matrices(params, d=1024, ffn=4096, vocab=32000):
    """Assumed shapes (the slides give none): a 32,000 x d embedding, layers of four d x d attention
    matrices and a d x ffn, ffn x d feed-forward pair while they fit, the rest as one d-wide matrix."""
    shapes, left = [(vocab, d)], params - vocab * d
    layer = [(d, d)] * 4 + [(ffn, d), (d, ffn)]
    while left >= sum(n * m for n, m in layer):
        shapes += layer
        left -= sum(n * m for n, m in layer)
    return tuple(shapes + [(left // d, d)])


VOCABULARY = 32000
LINKS_GBIT = (10, 25, 100, 400)
# Compressed prediction exchanges (top-k, value bits), n = 2 models, every update: settings fixed
# before the model's result for them was looked at, to judge the goal set for them (at least
# all_reduce's speed for the 229M transformer on 128 GPUs at 10 Gbit/s) without choosing the setting
# that meets it.
COMPRESSED = {"predictions 8-bit": (None, 8), "predictions top-64": (64, 32), "predictions top-64 8-bit": (64, 8),
              "predictions top-8 8-bit": (8, 8)}
GOAL = {"workload": "transformer 229M", "gpus": 128, "link_gbit": 10}
GPUS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# forward FLOPs of one 224 x 224 image (job_cost.VISION_SHAPES, counted by torch's FlopCounterMode); an
# update of 64 images forward and backward, the backward taken as twice the forward
RESNET50_FORWARD_FLOPS = 8_178_368_512
RESNET50 = Workload("ResNet-50", 25_557_032, compute_s=0.100, logits_per_device=64 * 1000, classes=1000,
                    matrices=resnet50_matrices(), tensors=resnet50_tensors(),
                    flops_per_update=3 * 64 * RESNET50_FORWARD_FLOPS)
PERIOD_CHECKPOINTS, PERIOD_PREDICTIONS = 625, 1
PERIOD_LOCALSGD, PERIOD_DILOCO, POWERSGD_RANK = 16, 500, 2   # src/conf/method/{localsgd,diloco,powersgd}.yaml
PERIOD_SPARSELOCO, PERIOD_MULOCO = 15, 30                   # src/conf/method/{sparseloco,muloco}.yaml
PERIODS = {"predictions": PERIOD_PREDICTIONS, "localsgd": PERIOD_LOCALSGD, "diloco": PERIOD_DILOCO,
           "sparseloco": PERIOD_SPARSELOCO, "muloco": PERIOD_MULOCO}
EFFICIENCY = 0.9   # payload rate / nominal link rate, assumed
PER_SERVER = "predictions, n = N/8"   # one model per server: no all_reduce across servers at all
# The methods' own arithmetic on a GPU (assumed, V100-class: 900 GB/s of memory, memory bound):
# PowerSGD reads or writes the gradient ~6 times (error feedback, M Q, M^T P, P Q^T, the new error)
# plus ~30 us of kernel launches per compressed matrix (orthogonalisation, matmuls); DiLoCo's outer
# step ~8 passes over the parameters (change, mean, Nesterov SGD, loading).
GPU_BITS_PER_S = 8 * 900e9
GPU_COSTS = dict(compress_s_per_bit=6 / GPU_BITS_PER_S, compress_s_per_matrix=30e-6, outer_s_per_bit=8 / GPU_BITS_PER_S)


def scenarios(transformer_compute_s):
    transformer = Workload("transformer 229M", TRANSFORMER_PARAMS, transformer_compute_s,
                           logits_per_device=4096 * VOCABULARY, classes=VOCABULARY,
                           matrices=transformer_matrices(TRANSFORMER_PARAMS))
    return [RESNET50, transformer]


def predict_grid(transformer_compute_s, links=LINKS_GBIT, gpus=GPUS, n=2):
    """Time per update of each method, n models of N/n GPUs (all_reduce and PowerSGD: one model on N),
    and the speed-up over all_reduce at equal samples per second (same per-GPU batch, same N)."""
    out = []
    for work in scenarios(transformer_compute_s):
        for gbit in links:
            net = Network(inter_bits_per_s=EFFICIENCY * gbit * 1e9, algorithm="best", **GPU_COSTS)
            for total in gpus:
                base = all_reduce(Layout(n, total // n), work, net)
                runs = [(name, method, Layout(n, total // n, PERIODS.get(name, PERIOD_CHECKPOINTS), POWERSGD_RANK))
                        for name, method in METHODS.items()]
                g = net.gpus_per_server
                runs.append((PER_SERVER, predictions, Layout(max(1, total // g), min(total, g), PERIOD_PREDICTIONS)))
                runs += [(name, partial(predictions, topk=topk, bits=bits), Layout(n, total // n, PERIOD_PREDICTIONS))
                         for name, (topk, bits) in COMPRESSED.items()]
                for name, method, layout in runs:
                    cost = method(layout, work, net)
                    out.append({"workload": work.name, "link_gbit": gbit, "gpus": total, "method": name,
                                "seconds": cost.seconds, "inter_bits": cost.inter_bits,
                                "intra_bits": cost.intra_bits, "speedup": base.seconds / cost.seconds})
    return out
