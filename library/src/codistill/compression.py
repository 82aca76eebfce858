"""Compression of flat vectors as they travel: blockwise quantisation and per-chunk top-k (torch only).

A codistillation teacher only supplies soft targets, so a checkpoint sent in 8 or 4 bits, or as the
few values that changed most since the last one, may cost nothing in top-1, where averaging
parameters (DiLoCo) needs exact values. The checkpoint exchanges (checkpoints.py: `checkpoint_bits`,
`checkpoint_delta_fraction`) and the parameter-averaging methods of the experiments build on the two
primitives here; each result says exactly how many bits it is as it travels (`wire_bits()`).

quantize_blocks(values, bits, block=64) -> QuantizedBlocks
    The flattened input cut into blocks of `block` consecutive values (the last block shorter).
    Per block a float32 scale s = absmax / L, L = 2**(bits-1) - 1 (8 bits: 127, 4: 7, 2: 1), and
    per value the code q = round(v / s) (half to even) in [-L, L]; a block of zeros has s = 0, q = 0.
    The dequantised value is q * s: 0 stays exactly 0, every value is within s/2 of its own, and
    the block's absmax comes back as L * (absmax / L), exact up to float32 rounding (exact when that
    product rounds back, e.g. absmax = L x a power of 2).
    Codes travel as unsigned q + 2**(bits-1) (8 bits: 1..255, 4: 1..15, 2: 1..3), packed 8 // bits
    to a byte, value i in byte i // (8 // bits) at bits (i % (8 // bits)) * bits and up (the first
    value in the low bits); the unused high bits of the last byte are 0.
    Wire bits: 8 * ceil(numel * bits / 8) + 32 * ceil(numel / block).
    bits=32 is the identity: codes are the values as float32 (no scale): 32 * numel bits, and
    dequantize() gives them back bit for bit.
    scheme="statistical" is the quantiser of SparseLoCo (arXiv 2508.15706; its code's
    TopKCompressor._quantize) and MuLoCo (arXiv 2505.23725; its code's QuantizationCompressor,
    row-wise: one block a row): per block of n values its mean m, sigma = ||v - m|| / sqrt(max(n - 1,
    1)), step s = range_sigmas * sigma / 2**bits (1 where that is 0 or not finite), and per value
    the code q = round((v - m) / s + 2**(bits-1)) (half to even) clipped to [0, 2**bits - 1],
    packed as above; the value of a code is the mean of the block's v - m that took it (0 for a
    code none took), plus m. Per block 1 + 2**bits float32 travel (m, then each code's value) in
    `scales`: wire bits 8 * ceil(numel * bits / 8) + 32 * (1 + 2**bits) * ceil(numel / block).

top_k_chunks(values, fraction, chunk=4096) -> SparseChunks
    The flattened input cut into chunks of `chunk` consecutive values (the last chunk shorter); in
    a chunk of length c the k = max(1, round(fraction * c)) values of largest |v| (round: Python's,
    half to even; ties broken by torch.topk) are kept, with their index within the chunk in the
    smallest integer type that holds chunk - 1 (uint8 up to chunk 256, int16 up to 32768, else
    int32: index_bits), both in chunk order then ascending index. fraction = 1 keeps every value
    (dense() gives the input back bit for bit).
    Wire bits: sum over chunks of k_c * (index_bits(chunk) + value_bits), value_bits = 32 for the
    float32 values.

Every tensor stays on the input's device: nothing is read back to the host per value, and the
shapes depend on numel, bits, block, fraction and chunk alone, so both functions run on `meta`
tensors (tests/test_compression.py runs them there, a stand-in for CUDA in a test without a GPU).
"""
from typing import NamedTuple

import torch

from .choices import index_bits

QUANTIZE_BITS = (2, 4, 8, 32)      # 32: the identity (float32 values, no scale)
QUANTIZE_SCHEMES = ("absmax", "statistical")
_INDEX_DTYPES = {8: torch.uint8, 16: torch.int16, 32: torch.int32}


def _levels(bits):
    return 2 ** (bits - 1) - 1


class QuantizedBlocks(NamedTuple):
    """A flat vector quantised per block (quantize_blocks): `codes` (uint8, 8 // bits codes a byte;
    bits=32: the float32 values), `scales` (float32, one per block of `block` values; bits=32:
    empty; scheme "statistical": 1 + 2**bits per block, its mean then each code's value), `bits`,
    `numel` (values encoded), `block`, `scheme`."""

    codes: torch.Tensor
    scales: torch.Tensor
    bits: int
    numel: int
    block: int
    scheme: str = "absmax"

    def dequantize(self):
        """The float32 1-D tensor of `numel` values the codes stand for: code x its block's scale."""
        if self.bits == 32:
            return self.codes.view(-1)
        shifts = torch.arange(0, 8, self.bits, device=self.codes.device, dtype=torch.uint8)
        mask = (1 << self.bits) - 1
        unpacked = (self.codes.view(-1, 1) >> shifts).bitwise_and(mask).view(-1)[:self.numel]
        blocks = -(-self.numel // self.block)
        if self.scheme == "statistical":   # each code's value in its block's table, plus the block's mean
            table = self.scales.view(blocks, 1 + 2 ** self.bits)
            codes = torch.nn.functional.pad(unpacked.to(torch.int64), (0, blocks * self.block - self.numel))
            return (table.gather(1, 1 + codes.view(blocks, self.block)) + table[:, :1]).view(-1)[:self.numel]
        steps = unpacked.to(torch.float32) - float(2 ** (self.bits - 1))
        padded = torch.nn.functional.pad(steps, (0, blocks * self.block - self.numel))
        return (padded.view(blocks, self.block) * self.scales.view(blocks, 1)).view(-1)[:self.numel]

    def wire_bits(self):
        """The exact bits it is as it travels: 8 x the codes' bytes + 32 x the scales."""
        return (self.codes.numel() * self.codes.element_size() + self.scales.numel() * self.scales.element_size()) * 8


class SparseChunks(NamedTuple):
    """A flat vector's k largest-magnitude values per chunk (top_k_chunks): `indices` (each within
    its chunk, uint8 / int16 / int32 as index_bits(chunk)), `values` (float32), `numel` (values of
    the input), `chunk`, `k_per_chunk` (a tuple: k of each chunk, the last chunk's possibly smaller).
    Selected entries lie chunk after chunk, ascending index within a chunk."""

    indices: torch.Tensor
    values: torch.Tensor
    numel: int
    chunk: int
    k_per_chunk: tuple

    def positions(self):
        """The selected entries' positions in the flat input (int64, on the values' device)."""
        full = self.numel // self.chunk
        device = self.indices.device
        offsets = [(torch.arange(full, device=device, dtype=torch.int64) * self.chunk).view(-1, 1)
                   .expand(-1, self.k_per_chunk[0] if self.k_per_chunk else 0).reshape(-1)]
        if len(self.k_per_chunk) > full:      # the shorter last chunk
            offsets.append(torch.full((self.k_per_chunk[-1],), full * self.chunk, device=device, dtype=torch.int64))
        return self.indices.to(torch.int64) + torch.cat(offsets)

    def dense(self):
        """The 1-D float32 tensor of `numel` values: the kept values at their positions, 0 elsewhere."""
        out = torch.zeros(self.numel, dtype=self.values.dtype, device=self.values.device)
        return out.scatter_(0, self.positions(), self.values)

    def wire_bits(self, value_bits=32):
        """The exact bits it is as it travels: every index in its dtype + `value_bits` per value."""
        count = sum(self.k_per_chunk)
        return count * (self.indices.element_size() * 8 + value_bits)


def quantize_blocks(values, bits, block=64, scheme="absmax", range_sigmas=6.0):
    """`values` flattened, quantised in `bits` (2, 4, 8; 32: the identity) per block of `block`
    values with a float32 absmax scale each, or with scheme="statistical" a mean and a table of
    2**bits values each, codes spanning range_sigmas standard deviations (the module doc: codes,
    packing, wire bits)."""
    if bits not in QUANTIZE_BITS:
        raise ValueError(f"bits={bits!r} is not one of {QUANTIZE_BITS}")
    if scheme not in QUANTIZE_SCHEMES:
        raise ValueError(f"scheme={scheme!r} is not one of {QUANTIZE_SCHEMES}")
    if isinstance(range_sigmas, bool) or not isinstance(range_sigmas, (int, float)) or not range_sigmas > 0:
        raise ValueError(f"range_sigmas={range_sigmas!r} is not a number > 0")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block={block!r} is not a whole number >= 1")
    flat = values.detach().reshape(-1).to(torch.float32)
    numel = flat.numel()
    if bits == 32:
        return QuantizedBlocks(flat.clone(), torch.empty(0, dtype=torch.float32, device=flat.device), 32, numel,
                               block, scheme)
    blocks = -(-numel // block)
    padded = torch.nn.functional.pad(flat, (0, blocks * block - numel)).view(blocks, block)
    if scheme == "statistical":
        unsigned, scales = _statistical_codes(padded, numel, bits, range_sigmas)
    else:
        levels = _levels(bits)
        scales = padded.abs().amax(dim=1) / levels
        divisor = torch.where(scales > 0, scales, torch.ones_like(scales)).view(blocks, 1)
        steps = (padded / divisor).round().clamp(-levels, levels).view(-1)[:numel]
        unsigned = (steps + 2 ** (bits - 1)).to(torch.uint8)
    per_byte = 8 // bits
    nbytes = -(-numel // per_byte)
    unsigned = torch.nn.functional.pad(unsigned, (0, nbytes * per_byte - numel)).view(nbytes, per_byte)
    shifts = torch.arange(0, 8, bits, device=flat.device, dtype=torch.uint8)
    codes = (unsigned << shifts).sum(dim=1, dtype=torch.uint8) if per_byte > 1 else unsigned.view(-1)
    return QuantizedBlocks(codes, scales.to(torch.float32), bits, numel, block, scheme)


def _statistical_codes(padded, numel, bits, range_sigmas):
    """scheme="statistical" on the (blocks, block) zero-padded values: the unsigned codes of the
    `numel` values (uint8) and per block its mean and each code's value (the module doc)."""
    blocks, block = padded.shape
    bins = 2 ** bits
    weight = (torch.arange(blocks * block, device=padded.device) < numel).view(blocks, block).to(torch.float32)
    count = weight.sum(dim=1)
    mean = padded.sum(dim=1) / count                      # the padding is 0
    centered = (padded - mean.view(-1, 1)) * weight
    sigma = centered.norm(dim=1) / (count - 1).clamp(min=1).sqrt()
    step = range_sigmas * sigma / bins
    step = torch.where((step == 0) | ~torch.isfinite(step), torch.ones_like(step), step)
    codes = (centered / step.view(-1, 1) + bins // 2).round().clamp(0, bins - 1)
    slot = (torch.arange(blocks, device=padded.device).view(-1, 1) * bins + codes.to(torch.int64)).view(-1)
    sums = torch.zeros(blocks * bins, dtype=torch.float32, device=padded.device)
    sums.scatter_add_(0, slot, centered.view(-1))
    taken = torch.zeros_like(sums).scatter_add_(0, slot, weight.view(-1))
    values = torch.where(taken > 0, sums / taken.clamp(min=1), torch.zeros_like(sums))
    table = torch.cat([mean.view(-1, 1), values.view(blocks, bins)], dim=1)
    return codes.view(-1)[:numel].to(torch.uint8), table.view(-1)


def top_k_chunks(values, fraction, chunk=4096):
    """`values` flattened, in chunks of `chunk` values: each chunk's k = max(1, round(fraction x
    its length)) largest |values| and their indices within it (the module doc: dtypes, order, bits)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r} is not a number in (0, 1]")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} is not a whole number >= 1")
    flat = values.detach().reshape(-1).to(torch.float32)
    numel = flat.numel()
    index_dtype = _INDEX_DTYPES[index_bits(chunk)]
    full, last = divmod(numel, chunk)
    k_full, k_last = max(1, round(fraction * chunk)), max(1, round(fraction * last))
    k_per_chunk = (k_full,) * full + ((k_last,) if last else ())
    indices, kept = [], []
    for part, length, k in ((flat[:full * chunk], chunk, k_full), (flat[full * chunk:], last, k_last)):
        if part.numel() == 0:
            continue
        rows = part.view(-1, length)
        chosen = rows.abs().topk(k, dim=1, sorted=False).indices.sort(dim=1).values
        indices.append(chosen.reshape(-1).to(index_dtype))
        kept.append(rows.gather(1, chosen).reshape(-1))
    if not indices:
        return SparseChunks(torch.empty(0, dtype=index_dtype, device=flat.device),
                            torch.empty(0, dtype=torch.float32, device=flat.device), 0, chunk, ())
    return SparseChunks(torch.cat(indices), torch.cat(kept), numel, chunk, k_per_chunk)
