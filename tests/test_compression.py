"""codistill's compression primitives (compression.py) against hand computations: blockwise
quantisation at 2, 4 and 8 bits (codes, packing order, scales, values back, exact wire bits),
per-chunk top-k (indices, values, the shorter last chunk, wire bits), the degenerate settings
(32 bits, fraction 1) giving the input back bit for bit, and both run on meta tensors (shapes
only, a stand-in for a device: nothing read back per value)."""
import pytest
import torch

from codistill.internals import QuantizedBlocks, SparseChunks, quantize_blocks, top_k_chunks

VECTOR = torch.tensor([0.0, 7.0, -3.5, 1.0, 2.0, -7.0])


def test_8_bits_by_hand():
    q = quantize_blocks(VECTOR, 8, block=4)
    # blocks [0, 7, -3.5, 1] and [2, -7]: absmax 7 both, scale 7 / 127
    assert torch.equal(q.scales, torch.tensor([7.0 / 127, 7.0 / 127], dtype=torch.float32))
    # codes v / s = v * 127 / 7: 0, 127, -63.5 -> -64 (half to even), 18.14 -> 18, 36.29 -> 36, -127; + 128
    assert q.codes.tolist() == [128, 255, 64, 146, 164, 1]
    s = torch.tensor(7.0 / 127, dtype=torch.float32)
    expected = torch.tensor([0, 127, -64, 18, 36, -127], dtype=torch.float32) * s
    assert torch.equal(q.dequantize(), expected)
    assert q.dequantize()[0].item() == 0.0          # 0 stays 0
    assert q.wire_bits() == 6 * 8 + 2 * 32 == 112
    assert (q.bits, q.numel, q.block) == (8, 6, 4) and q.codes.dtype == torch.uint8


def test_4_bits_by_hand_two_codes_a_byte_first_in_the_low_bits():
    q = quantize_blocks(VECTOR, 4, block=4)
    # scale 7 / 7 = 1 both blocks; steps 0, 7, -3.5 -> -4, 1 | 2, -7; + 8 -> 8, 15, 4, 9 | 10, 1
    assert q.scales.tolist() == [1.0, 1.0]
    assert q.codes.tolist() == [8 | 15 << 4, 4 | 9 << 4, 10 | 1 << 4]
    assert q.dequantize().tolist() == [0.0, 7.0, -4.0, 1.0, 2.0, -7.0]
    assert q.wire_bits() == 3 * 8 + 2 * 32 == 88


def test_2_bits_by_hand_four_codes_a_byte_and_a_part_filled_last_byte():
    q = quantize_blocks(VECTOR, 2, block=4)
    # L = 1, scale 7: steps 0, 1, -0.5 -> 0 (half to even), 0.14 -> 0 | 0.29 -> 0, -1; + 2
    assert q.codes.tolist() == [2 | 3 << 2 | 2 << 4 | 2 << 6, 2 | 1 << 2]     # 174, 6: high bits of byte 2 unused
    assert q.dequantize().tolist() == [0.0, 7.0, 0.0, 0.0, 0.0, -7.0]
    assert q.wire_bits() == 2 * 8 + 2 * 32 == 80


def test_block_scales_are_per_block_and_a_zero_block_stays_zero():
    values = torch.tensor([0.5, -0.25, 0.0, 0.0, 3.0])
    q = quantize_blocks(values, 8, block=2)
    assert q.scales.tolist() == pytest.approx([0.5 / 127, 0.0, 3.0 / 127])
    back = q.dequantize()
    assert back[2:4].tolist() == [0.0, 0.0] and torch.all((back - values).abs() <= q.scales.repeat_interleave(2)[:5] / 2)
    assert q.wire_bits() == 5 * 8 + 3 * 32


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_random_vectors_come_back_within_half_a_step(bits):
    values = torch.randn(1000, generator=torch.Generator().manual_seed(bits)) * 3
    q = quantize_blocks(values.view(10, 100), bits)    # flattened
    steps = [max(abs(v) for v in values[at:at + 64].tolist()) / (2 ** (bits - 1) - 1) for at in range(0, 1000, 64)]
    assert q.scales.tolist() == pytest.approx(steps, rel=1e-6) and len(steps) == 16
    error = (q.dequantize() - values).abs()
    assert torch.all(error <= q.scales.repeat_interleave(64)[:1000] / 2 * (1 + 1e-6))
    assert q.wire_bits() == 8 * -(-1000 * bits // 8) + 32 * 16


def test_32_bits_is_the_identity_bit_for_bit():
    values = torch.randn(333, generator=torch.Generator().manual_seed(0))
    q = quantize_blocks(values, 32)
    assert torch.equal(q.dequantize(), values) and q.wire_bits() == 333 * 32 and q.scales.numel() == 0
    values.add_(1.0)          # the codes are a copy, not a view of the input
    assert not torch.equal(q.dequantize(), values)


def test_quantize_rejects_other_bits_and_blocks():
    with pytest.raises(ValueError, match="bits=3"):
        quantize_blocks(VECTOR, 3)
    with pytest.raises(ValueError, match="block=0"):
        quantize_blocks(VECTOR, 8, block=0)


def test_top_k_per_chunk_by_hand_with_a_shorter_last_chunk():
    values = torch.tensor([1.0, -5.0, 3.0, 0.0, 2.0, 9.0, -1.0])
    sparse = top_k_chunks(values, 0.5, chunk=3)
    # chunks [1, -5, 3], [0, 2, 9], [-1]: k = round(1.5) = 2 (half to even), 2, max(1, round(0.5)) = 1
    assert sparse.k_per_chunk == (2, 2, 1)
    assert sparse.indices.tolist() == [1, 2, 1, 2, 0] and sparse.indices.dtype == torch.uint8
    assert sparse.values.tolist() == [-5.0, 3.0, 2.0, 9.0, -1.0] and sparse.values.dtype == torch.float32
    assert sparse.positions().tolist() == [1, 2, 4, 5, 6]
    assert sparse.dense().tolist() == [0.0, -5.0, 3.0, 0.0, 2.0, 9.0, -1.0]
    assert sparse.wire_bits() == 5 * (8 + 32) and sparse.wire_bits(value_bits=4) == 5 * 12


def test_top_k_index_dtypes_are_the_smallest_that_hold_the_chunk():
    values = torch.arange(1, 70001, dtype=torch.float32)
    assert top_k_chunks(values, 0.01, chunk=256).indices.dtype == torch.uint8
    sparse = top_k_chunks(values, 0.01, chunk=4096)
    assert sparse.indices.dtype == torch.int16
    # 17 chunks of 4096 (k 41) and one of 70000 - 69632 = 368 (k round(3.68) = 4): the largest at the end
    assert sparse.k_per_chunk == (41,) * 17 + (4,)
    assert sparse.wire_bits() == (17 * 41 + 4) * (16 + 32)
    assert sparse.indices[:41].tolist() == list(range(4096 - 41, 4096))
    assert sparse.values[-4:].tolist() == [69997.0, 69998.0, 69999.0, 70000.0]
    assert top_k_chunks(values, 0.5, chunk=40000).indices.dtype == torch.int32


def test_fraction_one_is_dense_bit_for_bit():
    values = torch.randn(10000, generator=torch.Generator().manual_seed(1))
    sparse = top_k_chunks(values, 1.0)
    assert torch.equal(sparse.dense(), values) and torch.equal(sparse.values, values)
    assert sparse.wire_bits() == 10000 * (16 + 32)


def test_top_k_rejects_fractions_outside_0_1():
    for fraction in (0, 1.5, -0.1, True):
        with pytest.raises(ValueError, match="fraction="):
            top_k_chunks(VECTOR, fraction)


def test_both_run_on_meta_tensors_without_reading_values():
    values = torch.empty(10000, device="meta")
    q = quantize_blocks(values, 4)
    assert isinstance(q, QuantizedBlocks) and q.codes.is_meta and q.codes.shape == (5000,)
    assert q.scales.shape == (157,) and q.dequantize().shape == (10000,) and q.wire_bits() == 5000 * 8 + 157 * 32
    sparse = top_k_chunks(values, 0.01)
    assert isinstance(sparse, SparseChunks) and sparse.values.is_meta
    assert sparse.k_per_chunk == (41, 41, 18) and sparse.dense().shape == (10000,)
    assert sparse.wire_bits() == 100 * 48


def test_empty_vectors():
    empty = torch.empty(0)
    assert quantize_blocks(empty, 4).dequantize().numel() == 0 and quantize_blocks(empty, 4).wire_bits() == 0
    assert top_k_chunks(empty, 0.5).dense().numel() == 0 and top_k_chunks(empty, 0.5).wire_bits() == 0
