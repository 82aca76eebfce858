"""The prediction exchange (paper Section 3): every T updates peers all_gather their logits of the
shared mini-batch (coordinated sampling): all C values of a row or its top k with their classes,
as float32, float16 or int8 with a per-row scale, each part counted as it travels.
"""
import torch

from .choices import check_topk, index_bits
from .counting import counted_all_gather
from .losses import TopKLogits
from .peer_check import Wire

# method.prediction_bits -> the dtype logit values travel in. 32: the paper's b_predictions. 16:
# float16 (not bfloat16: logits sit far inside float16's range, and its 11-bit significand rounds 8x
# finer). 8: int8, quantised per row (quantize_rows). None: the logits' own dtype (a float64 model's
# logits travel, and are counted, as float64).
WIRE_DTYPES = {32: torch.float32, 16: torch.float16, 8: torch.int8, None: None}
QUANTISED_LEVELS = 127       # int8 values in [-127, 127]: symmetric, -128 unused


INDEX_DTYPES = {8: torch.uint8, 16: torch.int16, 32: torch.int32}


def quantize_rows(values):
    """values [..., n] -> (q int8 [..., n], s float32 [..., 1]): symmetric absmax per row,
    s = max|v| / 127, q = round(v / s) (half to even) in [-127, 127] (a row of zeros: s = 0,
    q = 0); q * s is within s/2 of v."""
    values = values.float()
    scale = values.abs().amax(dim=-1, keepdim=True) / QUANTISED_LEVELS
    steps = values / torch.where(scale > 0, scale, torch.ones_like(scale))
    return steps.round().clamp(-QUANTISED_LEVELS, QUANTISED_LEVELS).to(torch.int8), scale


def dequantize_rows(q, scale):
    return q.float() * scale


class PredictionExchange:
    """Every `period` updates, peers swap the logits of their (shared) mini-batch; on the other
    updates there are no teachers (paper Section 3). It keeps nothing between updates: its
    state_dict is empty.

    What travels, per row of logits [..., C] (an example, or a token):
    - topk=None (or topk = C): all C values; topk=k < C: the k largest values and their classes, the
      indices in the smallest integer type that holds C-1 (index_bits), received as TopKLogits.
    - bits=32 / 16: values as float32 / float16; None: in the logits' own dtype (counted as they
      travel); all used as teachers of that dtype, at least float32. bits=8: int8 values quantised
      per row (quantize_rows) and the row's float32 scale; the teacher is q * s, float32.
    The counter charges each part by its real size: prediction_row_bits per row and peer."""

    sends = "predictions"

    def __init__(self, groups, counter, period, group_index, bits=32, topk=None):
        check_topk(topk)
        self.groups, self.counter, self.period, self.group_index = groups, counter, period, group_index
        self.bits, self.topk = bits, topk
        self.wire_dtype = WIRE_DTYPES[bits]

    def state_dict(self):
        """Nothing: a prediction exchange keeps no state between updates."""
        return {}

    def load_state_dict(self, state):
        """Nothing to restore (its state_dict is empty)."""

    def _gather(self, tensor):
        """all_gather one part of what a rank sends, counted as sent. int16 travels as its bytes:
        neither gloo nor NCCL all_gathers int16, and an all_gather copies, so bytes are values."""
        as_bytes = tensor.dtype == torch.int16
        sent = tensor.contiguous().view(torch.uint8) if as_bytes else tensor
        gathered = counted_all_gather(sent, self.groups.peers, self.counter, self.groups.peers_span_nodes)
        return [part.view(tensor.dtype) for part in gathered] if as_bytes else gathered

    def wire_description(self, logits):
        """How `logits` travel (peer_check.Wire): int8 at 8 bits, else the wire dtype (the logits'
        own with bits None); topk or all C values per row."""
        classes = logits.shape[-1]
        width = self.topk if self.topk is not None and self.topk < classes else classes
        dtype = torch.int8 if self.bits == 8 else self.wire_dtype or logits.dtype
        return Wire(dtype, width, self.bits)

    def gather(self, step, logits):
        """The peers' logits of this update's batch ([] between exchange points): tensors, or
        TopKLogits with topk < C."""
        if step % self.period != 0:
            return []
        logits = logits.detach()
        classes = logits.shape[-1]
        if self.topk is not None and self.topk > classes:
            raise ValueError(f"prediction_topk={self.topk} exceeds the logits' {classes} classes")
        sparse = self.topk is not None and self.topk < classes
        values, indices = logits.topk(self.topk, dim=-1) if sparse else (logits, None)
        if self.bits == 8:
            peers_values = [dequantize_rows(q, s) for q, s in zip(*map(self._gather, quantize_rows(values)))]
        else:
            # The wire dtype whatever autocast computed the logits in: what b_predictions counts.
            wire = self.wire_dtype or values.dtype
            teacher = torch.promote_types(wire, torch.float32)
            peers_values = [peer.to(teacher) for peer in self._gather(values.to(wire))]
        if sparse:
            peers_indices = self._gather(indices.to(INDEX_DTYPES[index_bits(classes)]))
            received = [TopKLogits(v, i.long(), classes) for v, i in zip(peers_values, peers_indices)]
        else:
            received = peers_values
        return [peer for index, peer in enumerate(received) if index != self.group_index]
