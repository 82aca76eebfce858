"""SparseLoCo (Sarfi, Thérien, Lidin, Belilovsky 2025, arXiv 2508.15706) and MuLoCo (Thérien,
Huang, Rish, Belilovsky 2025, arXiv 2505.23725): DiLoCo whose outer gradient travels compressed,
with error feedback (docs/frontier.md, "SparseLoCo and MuLoCo", has the equations, their sources
and each setting's value in the papers and the authors' code).

Both are methods.DiLoCo with one step replaced, `average_over_groups` (methods.SparseLoCo and
methods.MuLoCo are DiLoCo with this module's SparseLoCoCompression or MuLoCoCompression mixed in
first: this module does not import methods.py, which imports it): where DiLoCo all_reduces
the outer gradient Delta_r = global copy - group r's parameters, every H updates each group r
    e_r <- beta e_r + Delta_r          error feedback, beta = error_decay (0: none, e_r = Delta_r)
    m_r <- C(e_r)                      the message (below)
    e_r <- e_r - D(m_r)                what did not travel stays for the next outer step
all_gathers m_r over its peers in one byte buffer (counted_all_gather: (n - 1) x its bits per
device, the bits of the codes, indices and float32 metadata that travel), and every group then
computes the same aggregate from the n messages,
    aggregate=mean:              Delta = 1/n sum_r D(m_r)
    aggregate=mean_over_senders: each entry the mean of the D(m_r) of the groups that sent it
                                 (0 where none did; SparseLoCo's code: scatter_reduce "mean")
    requantize (MuLoCo):         Delta <- D(C(Delta)), the second 2-bit rounding of the
                                 reduce-scatter + all-gather that MuLoCo's code simulates,
which DiLoCo's outer step applies (torch.optim.SGD on the global copy: outer_lr, Nesterov when
outer_momentum > 0). The messages, per parameter tensor:
- SparseLoCo: e_r in 2-D chunks of h x w (h, w the largest divisors of the tensor's two sides
  that are at most chunk_size; a 1-D tensor in chunks of its largest divisor <= chunk_size), the
  k = max(1, round(h w top_k / chunk_size^2)) largest |values| of each chunk (top_k_chunks), their
  values quantised together in `bits` (quantize_blocks, scheme "statistical": the authors'
  quantiser, range_sigmas standard deviations over 2^bits codes); top_k = chunk_size^2 sends
  every value, without indices.
- MuLoCo: e_r quantised in `bits` per row (a 2-D weight's rows; a vector is one row), the same
  statistical quantiser; 1-D tensors and the output layer (the last 2-D parameter) travel as
  float32, as MuLoCo's code sends norms and the embedding / output layer.
At top_k = chunk_size^2 and bits = 32 (any error_decay: e_r is then 0 after every step) both are
DiLoCo's update, bit for bit with 2 groups (tests/test_compressed_diloco.py); the bits differ
(an all_gather of b_model, (n - 1) b_model, against DiLoCo's all_reduce, 2 b_model).

MuLoCo's inner optimizer is torch.optim.Muon (momentum muon_momentum, no Nesterov, learning rate
scaled by sqrt(fan_out / fan_in): MuLoCo's "spectral_norm" adjustment, torch's
"spectral_unclamped") on the 2-D weights but the output layer, and torch.optim.AdamW (betas 0.9,
0.99, eps 1e-8) on the rest, both at the schedule's learning rate x inner_lr_scale and its weight
decay (decoupled, as both apply it). The engine builds the run's inner optimizer from the schedule
(SGD or Adagrad): MuLoCo hooks it (`attach`) so that each of its steps is Muon's and AdamW's and
it updates nothing itself; their state is in this method's state_dict.
"""
import torch

from codistill.internals import counted_all_gather, quantize_blocks, top_k_chunks

STATISTICAL = "statistical"
ADAMW_BETAS, ADAMW_EPS = (0.9, 0.99), 1e-8        # MuLoCo's code (config/diloco/2x_4gpu_muloco*.py)


def largest_divisor_at_most(n, limit):
    """The largest divisor of n (>= 1) that is at most `limit`: SparseLoCo's chunk side for a
    tensor side of n (its code's _get_smaller_split)."""
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


class TopKCodec:
    """SparseLoCo's message for one parameter tensor of `shape`: top-k per 2-D chunk, the kept
    values quantised together (statistical). Tensors of more than 2 dimensions are chunked as
    (shape[0], the rest) (SparseLoCo's code chunks 1-D and 2-D tensors only)."""

    def __init__(self, shape, top_k, chunk_size, bits, range_sigmas):
        self.numel = shape.numel()
        rows, cols = (self.numel, 1) if len(shape) < 2 else (shape[0], self.numel // shape[0])
        self.rows, self.cols = rows, cols
        self.h = largest_divisor_at_most(rows, chunk_size)
        self.w = largest_divisor_at_most(cols, chunk_size) if len(shape) >= 2 else 1
        self.fraction = top_k / chunk_size ** 2
        self.dense = self.fraction >= 1
        self.bits, self.range_sigmas = bits, range_sigmas

    def tiled(self, flat):
        """The tensor's values chunk after chunk (h x w each, row-major within a chunk)."""
        return flat.view(self.rows // self.h, self.h, self.cols // self.w, self.w).permute(0, 2, 1, 3).reshape(-1)

    def untiled(self, tiled):
        return tiled.view(self.rows // self.h, self.cols // self.w, self.h, self.w).permute(0, 2, 1, 3).reshape(-1)

    def _quantized(self, values):
        return quantize_blocks(values, self.bits, block=max(1, values.numel()), scheme=STATISTICAL,
                               range_sigmas=self.range_sigmas)

    def encode(self, flat):
        """(the parts that travel, the values they stand for: flat, as `flat`)."""
        if self.dense:
            q = self._quantized(flat)
            return [q.codes, q.scales], q.dequantize()
        sparse = top_k_chunks(self.tiled(flat), self.fraction, chunk=self.h * self.w)
        q = self._quantized(sparse.values)
        sent = sparse._replace(values=q.dequantize())
        return [sparse.indices, q.codes, q.scales], self.untiled(sent.dense())

    def decode(self, parts, template):
        """(the values a message stands for, flat; 1 where it sent a value, 0 elsewhere) from the
        parts that travelled, `template` the parts of any message of this tensor (their layout)."""
        if self.dense:
            codes, scales = parts
            q = template[0]._replace(codes=codes, scales=scales)
            return q.dequantize(), None
        indices, codes, scales = parts
        sparse, q = template[0], template[1]
        values = q._replace(codes=codes, scales=scales).dequantize()
        dense = self.untiled(sparse._replace(indices=indices, values=values).dense())
        sent = self.untiled(sparse._replace(indices=indices, values=torch.ones_like(values)).dense())
        return dense, sent

    def template(self, flat):
        """The named results of encoding `flat` (any values): what decode rebuilds from the parts."""
        if self.dense:
            return [self._quantized(flat)]
        sparse = top_k_chunks(self.tiled(flat), self.fraction, chunk=self.h * self.w)
        return [sparse, self._quantized(sparse.values)]


class RowCodec:
    """MuLoCo's message for one parameter tensor: quantised per row (statistical), or float32 when
    `full_precision` (bits 32)."""

    def __init__(self, shape, bits, range_sigmas, full_precision):
        self.numel = shape.numel()
        self.row = self.numel if len(shape) < 2 else self.numel // shape[0]
        self.bits = 32 if full_precision else bits
        self.range_sigmas = range_sigmas
        self.dense = True

    def quantized(self, flat):
        return quantize_blocks(flat, self.bits, block=max(1, self.row), scheme=STATISTICAL,
                               range_sigmas=self.range_sigmas)

    def encode(self, flat):
        q = self.quantized(flat)
        return [q.codes, q.scales], q.dequantize()

    def decode(self, parts, template):
        codes, scales = parts
        return template[0]._replace(codes=codes, scales=scales).dequantize(), None

    def template(self, flat):
        return [self.quantized(flat)]


class CompressedOuterGradient:
    """Mixed into methods.DiLoCo (before it): the compressed outer gradient with error feedback
    (the module doc); subclasses give each parameter tensor its codec (`codec(index, shape, shapes)`)."""

    def __init__(self, method_cfg, groups, counter):
        super().__init__(method_cfg, groups, counter)
        self.error_decay = method_cfg["error_decay"]
        self.aggregate, self.requantize = "mean", False    # a subclass's choices
        self.codecs = self.error = self.templates = self.layout = None

    def codec(self, index, shape, shapes):
        """The codec of parameter tensor `index`: SparseLoCo's and MuLoCo's own (the mixin has none)."""
        raise NotImplementedError(f"{type(self).__name__} must give each parameter tensor its codec")

    def wrap(self, model):
        trainable = super().wrap(model)
        shapes = [p.shape for p in self.global_params]
        self.codecs = [self.codec(index, shape, shapes) for index, shape in enumerate(shapes)]
        self.error = torch.zeros(sum(p.numel() for p in self.global_params), device=self.global_params[0].device)
        # Every message of a tensor has the same parts (dtypes, sizes: they follow from the shape
        # alone): encoding zeros gives their layout. One byte buffer holds all of them, the 4-byte
        # parts first, then the 2-byte and 1-byte ones, so that each part's offset suits its dtype
        # (no padding travels).
        self.templates, parts = [], []
        for index, (codec, parameter) in enumerate(zip(self.codecs, self.global_params)):
            zeros = torch.zeros(parameter.numel(), device=parameter.device)
            self.templates.append(codec.template(zeros))
            parts += [(index, slot, part.dtype, part.numel()) for slot, part in enumerate(codec.encode(zeros)[0])]
        parts.sort(key=lambda item: -item[2].itemsize)
        self.layout, offset = [], 0
        for index, slot, dtype, numel in parts:
            self.layout.append((index, slot, dtype, numel, offset))
            offset += numel * dtype.itemsize
        return trainable

    def slices(self):
        offset = 0
        for codec in self.codecs:
            yield slice(offset, offset + codec.numel)
            offset += codec.numel

    def average_over_groups(self, change):
        self.error.mul_(self.error_decay).add_(change)
        messages = []
        for codec, part in zip(self.codecs, self.slices()):
            message, sent = codec.encode(self.error[part])
            self.error[part] -= sent
            messages.append(message)
        buffer = torch.cat([messages[index][slot].reshape(-1).view(torch.uint8)
                            for index, slot, _, _, _ in self.layout])
        gathered = counted_all_gather(buffer, self.groups.peers, self.counter, self.groups.peers_span_nodes)
        total = torch.zeros_like(change)
        senders = torch.zeros_like(change) if self.aggregate == "mean_over_senders" else None
        for received in gathered:                    # the groups in peer order: every group sums alike
            parts = [[None] * len(message) for message in messages]
            for index, slot, dtype, numel, offset in self.layout:
                parts[index][slot] = received[offset:offset + numel * dtype.itemsize].view(dtype)
            for codec, template, message, part in zip(self.codecs, self.templates, parts, self.slices()):
                values, sent = codec.decode(message, template)
                total[part] += values
                if senders is not None:
                    senders[part] += torch.ones_like(values) if sent is None else sent
        total /= len(gathered) if senders is None else senders.clamp(min=1)
        if self.requantize:
            for codec, part in zip(self.codecs, self.slices()):
                if codec.bits != 32:
                    total[part] = codec.encode(total[part])[1]
        return total

    def state_dict(self):
        """DiLoCo's (the global copy, the outer optimizer) and this group's error feedback."""
        return {**super().state_dict(), "error": self.error}

    def load_state_dict(self, saved):
        super().load_state_dict(saved)
        self.error.copy_(saved["error"])


class SparseLoCoCompression(CompressedOuterGradient):
    """method=sparseloco's outer gradient: top-k per chunk, statistical `bits`-bit values, error
    feedback; its outer step is plain SGD (outer_momentum 0: the error feedback stands for it)."""

    def __init__(self, method_cfg, groups, counter):
        super().__init__(method_cfg, groups, counter)
        self.aggregate = method_cfg["aggregate"]
        self.top_k, self.chunk_size = method_cfg["top_k"], method_cfg["chunk_size"]
        self.bits, self.range_sigmas = method_cfg["bits"], method_cfg["range_sigmas"]
        if self.top_k > self.chunk_size ** 2:
            raise ValueError(f"method.top_k={self.top_k!r}: keeps at most method.chunk_size^2 = "
                             f"{self.chunk_size ** 2} values of a chunk")

    def codec(self, index, shape, shapes):
        return TopKCodec(shape, self.top_k, self.chunk_size, self.bits, self.range_sigmas)


def output_layer(shapes):
    """The index of the last 2-D parameter: a classifier's output layer."""
    return max(index for index, shape in enumerate(shapes) if len(shape) == 2)


class MuLoCoCompression(CompressedOuterGradient):
    """method=muloco's inner optimizer, Muon (AdamW on the rest), and outer gradient: statistical
    `bits`-bit rows with error feedback, the average quantised again (requantize); Nesterov outer step."""

    def __init__(self, method_cfg, groups, counter):
        super().__init__(method_cfg, groups, counter)
        self.requantize = method_cfg["requantize"]
        self.bits, self.range_sigmas = method_cfg["bits"], method_cfg["range_sigmas"]
        self.inner_lr_scale, self.muon_momentum = method_cfg["inner_lr_scale"], method_cfg["muon_momentum"]
        self.muon = self.adamw = self.matrices = None

    def codec(self, index, shape, shapes):
        return RowCodec(shape, self.bits, self.range_sigmas, len(shape) < 2 or index == output_layer(shapes))

    def wrap(self, model):
        trainable = super().wrap(model)
        parameters = list(model.parameters())
        shapes = [p.shape for p in parameters]
        head = output_layer(shapes)
        hidden = [p for index, p in enumerate(parameters) if len(p.shape) >= 2 and index != head]
        others = [p for index, p in enumerate(parameters) if len(p.shape) < 2 or index == head]
        # torch's Muon takes 2-D parameters: a convolution's weight (out, in, kh, kw) steps as its
        # (out, in x kh x kw) matrix, as MuLoCo's code flattens it, through a 2-D copy (a view would
        # not survive channels_last); a 2-D weight is its own matrix.
        self.matrices = [(p, p if p.dim() == 2 else torch.nn.Parameter(p.detach().reshape(p.shape[0], -1).clone()))
                         for p in hidden]
        self.muon = torch.optim.Muon([matrix for _, matrix in self.matrices], lr=0.0, weight_decay=0.0,
                                     momentum=self.muon_momentum, nesterov=False, adjust_lr_fn="spectral_unclamped")
        self.adamw = torch.optim.AdamW(others, lr=0.0, betas=ADAMW_BETAS, eps=ADAMW_EPS, weight_decay=0.0)
        return trainable

    def attach(self, optimizer):
        """Every step of the run's inner optimizer becomes Muon's and AdamW's at its learning rate
        (x inner_lr_scale) and weight decay; it then finds no gradient and changes nothing."""
        optimizer.register_step_pre_hook(self.inner_step)

    def inner_step(self, optimizer, args, kwargs):
        group = optimizer.param_groups[0]
        flattened = [(parameter, matrix) for parameter, matrix in self.matrices if matrix is not parameter]
        with torch.no_grad():
            for parameter, matrix in flattened:
                matrix.copy_(parameter.reshape(matrix.shape))
                matrix.grad = None if parameter.grad is None else parameter.grad.reshape(matrix.shape)
        for inner in (self.muon, self.adamw):
            for own in inner.param_groups:
                own["lr"], own["weight_decay"] = group["lr"] * self.inner_lr_scale, group["weight_decay"]
            inner.step()
        with torch.no_grad():
            for parameter, matrix in flattened:
                parameter.copy_(matrix.view(parameter.shape))
                matrix.grad = None
        for parameter in self.model.parameters():
            parameter.grad = None

    def state_dict(self):
        """CompressedOuterGradient's, and the inner Muon's and AdamW's state (momentum, moments, steps)."""
        return {**super().state_dict(), "muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, saved):
        super().load_state_dict(saved)
        self.muon.load_state_dict(saved["muon"])
        self.adamw.load_state_dict(saved["adamw"])
