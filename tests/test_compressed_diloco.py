"""SparseLoCo and MuLoCo (baselines/compressed_diloco.py): their outer step against hand computations
in 2 gloo processes (top-k per chunk, the authors' statistical quantiser, error feedback, both
aggregations), their degenerate settings against DiLoCo (top-k = every value and 32 bits: DiLoCo's
update bit for bit; MuLoCo so: DiLoCo with a Muon inner optimizer), torch's Muon against MuLoCo's
update, the bits of real runs against the formula, the tensors handed to collectives on the run's
device, and a run killed mid-period resuming to the uninterrupted log."""
import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import compose_job
from test_frontier_methods import (
    STEPS,
    final_params,
    inter_node_bits,
    killed_after_first_commit,
    run_to_the_end,
    runs,  # noqa: F401  (the module's fixture: pytest finds it by name)
)

from benchmarks import soak_resume
from codistill import CommCounter, Layout, make_process_groups
from codistill.internals import quantize_blocks
from codistill_experiments.baselines.compressed_diloco import largest_divisor_at_most
from codistill_experiments.baselines.methods import DiLoCo, MuLoCo, SparseLoCo
from codistill_experiments.config import ConfigError

# ----- the authors' quantiser (quantize_blocks, scheme="statistical") by hand


def test_the_statistical_quantiser_by_hand():
    q = quantize_blocks(torch.tensor([1.0, 3.0, 5.0, 11.0, 2.0, 2.0]), 2, block=4, scheme="statistical")
    # Block [1, 3, 5, 11]: mean 5, centred [-4, -2, 0, 6], sigma = sqrt(56 / 3) = 4.32, step 6 sigma / 4
    # = 6.48; centred / step + 2 = 1.38, 1.69, 2, 2.93 -> codes 1, 2, 2, 3; each code's value the mean
    # of its centred values: code 1 -4, code 2 (-2 + 0) / 2 = -1, code 3 6, code 0 none: 0.
    # Block [2, 2] (the shorter last one): mean 2, sigma 0 -> step 1, codes 2, value 0.
    assert q.codes.tolist() == [1 | 2 << 2 | 2 << 4 | 3 << 6, 2 | 2 << 2]
    assert q.scales.tolist() == [5.0, 0.0, -4.0, -1.0, 6.0, 2.0, 0.0, 0.0, 0.0, 0.0]
    assert q.dequantize().tolist() == [1.0, 4.0, 4.0, 11.0, 2.0, 2.0]
    assert q.wire_bits() == 2 * 8 + 2 * (1 + 4) * 32          # 12 bits of codes in 2 bytes, 2 tables
    assert quantize_blocks(torch.tensor([7.5]), 2, block=1, scheme="statistical").dequantize().item() == 7.5


def test_the_statistical_quantiser_keeps_every_value_at_32_bits_and_runs_on_meta():
    values = torch.randn(100, generator=torch.Generator().manual_seed(0))
    assert torch.equal(quantize_blocks(values, 32, block=7, scheme="statistical").dequantize(), values)
    meta = quantize_blocks(torch.empty(100, device="meta"), 2, block=10, scheme="statistical")
    assert meta.codes.shape == (25,) and meta.scales.shape == (50,) and meta.dequantize().shape == (100,)


def test_sparselocos_chunk_sides_are_the_largest_divisors_up_to_the_chunk_size():
    assert [largest_divisor_at_most(n, 64) for n in (256, 64, 10, 100, 97, 1)] == [64, 64, 10, 50, 1, 1]


# ----- the outer step by hand: 2 groups, one process each (gloo)

def run_ranks(function, *args):
    """function(rank, *args) in 2 forked processes joined by gloo; re-raises a failure."""
    with tempfile.TemporaryDirectory() as folder:
        mp.start_processes(_in_rank, args=(function, os.path.join(folder, "init"), *args), nprocs=2,
                           start_method="fork")


def _in_rank(rank, function, init_file, *args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=1, rank=rank)
        function(rank, make_process_groups(layout), *args)
    finally:
        dist.destroy_process_group()


class Vector(torch.nn.Module):
    def __init__(self, size):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(size))


def sparseloco(**changes):
    cfg = {"name": "sparseloco", "n": 2, "period": 1, "outer_lr": 1, "outer_momentum": 0, "error_decay": 0.5,
           "bits": 32, "range_sigmas": 6, "top_k": 1, "chunk_size": 2, "aggregate": "mean_over_senders"}
    return {**cfg, **changes}


def outer_steps(rank, groups, cfg, changes, results):
    """Runs one outer step per entry of changes[rank]: the group's parameters set to the global
    copy - that change, as if H inner updates had moved them so."""
    counter = CommCounter()
    method = SparseLoCo(cfg, groups, counter)
    model = Vector(len(changes[rank][0]))
    method.wrap(model)
    seen = []
    for step, change in enumerate(changes[rank], start=1):
        with torch.no_grad():
            model.w.copy_(method.global_params[0] - torch.tensor(change))
        method.after_update(step)
        seen.append((method.global_params[0].tolist(), model.w.tolist(), method.error.tolist()))
    results[rank] = seen, counter.inter_node_bits


CHANGES = {0: [[1.0, -3.0, 0.5, 0.25], [0.5, 0.5, 0.5, 0.5]], 1: [[2.0, 1.0, -0.5, 4.0], [-1.0, 0.0, 0.0, 0.0]]}


@pytest.mark.parametrize("aggregate", ["mean_over_senders", "mean"])
def test_the_outer_step_top_k_and_error_feedback_by_hand(aggregate):
    results = mp.Manager().dict()
    run_ranks(outer_steps, sparseloco(aggregate=aggregate), CHANGES, results)
    # chunk_size 2, top_k 1: fraction 1/4; the 4-vector in 1-D chunks of 2 (largest divisor of 4 <= 2),
    # k = max(1, round(2 / 4)) = 1 a chunk. beta 0.5, 32 bits, outer SGD lr 1, no momentum.
    # Step 1. e0 = [1, -3, .5, .25] sends -3 (position 1) and .5 (2), keeps [1, 0, 0, .25];
    #         e1 = [2, 1, -.5, 4] sends 2 (0) and 4 (3), keeps [0, 1, -.5, 0].
    # Step 2. e0 = .5 [1, 0, 0, .25] + [.5, .5, .5, .5] = [1, .5, .5, .625] sends 1 (0) and .625 (3),
    #         keeps [0, .5, .5, 0]; e1 = .5 [0, 1, -.5, 0] + [-1, 0, 0, 0] = [-1, .5, -.25, 0] sends -1 (0)
    #         and -.25 (2), keeps [0, .5, 0, 0].
    if aggregate == "mean_over_senders":   # each entry over the groups that sent it
        first = [2.0, -3.0, 0.5, 4.0]                 # every entry sent once
        second = [0.0, 0.0, -0.25, 0.625]             # (1 - 1) / 2, none, -.25 / 1, .625 / 1
    else:                                  # 1/2 of the sum
        first = [1.0, -1.5, 0.25, 2.0]
        second = [0.0, 0.0, -0.125, 0.3125]
    theta1 = [-v for v in first]
    theta2 = [a - b for a, b in zip(theta1, second)]
    for rank, kept in ((0, ([1.0, 0.0, 0.0, 0.25], [0.0, 0.5, 0.5, 0.0])),
                       (1, ([0.0, 1.0, -0.5, 0.0], [0.0, 0.5, 0.0, 0.0]))):
        seen, bits = results[rank]
        assert [s[0] for s in seen] == [theta1, theta2]       # the global copy
        assert [s[1] for s in seen] == [theta1, theta2]       # every group loads it
        assert [s[2] for s in seen] == list(kept)              # the error feedback
        # per step 2 values: uint8 indices (chunks of 2) and float32 values, all_gathered once over 2 groups
        assert bits == 2 * (2 * 8 + 2 * 32)


def test_the_outer_step_with_2_bit_values_by_hand():
    changes = {0: [[1.0, 0.0, 3.0, -0.5, 0.25, 5.0, 11.0, 10.0]], 1: [[0.0, 2.0, 0.0, 2.0, 2.0, 0.0, 2.0, 0.0]]}
    results = mp.Manager().dict()
    run_ranks(outer_steps, sparseloco(bits=2, top_k=2), changes, results)
    # top_k 2 of 2 x 2: k = round(2 x 1/2) = 1 a 1-D chunk of 2. Group 0 keeps 1, 3, 5, 11 (positions
    # 0, 2, 5, 6): quantised together in 2 bits they are 1, 4, 4, 11 (the quantiser test above), so
    # 3 - 4 = -1 and 5 - 4 = 1 stay in its error with what was not sent. Group 1 keeps 2, 2, 2, 2
    # (positions 1, 3, 4, 6): sigma 0, sent exactly. Each entry over its senders: position 6 (11 + 2) / 2.
    aggregate = [1.0, 2.0, 4.0, 2.0, 2.0, 4.0, 6.5, 0.0]
    (seen0, bits0), (seen1, _) = results[0], results[1]
    assert seen0[0][0] == seen1[0][0] == [-v for v in aggregate]
    assert seen0[0][2] == [0.0, 0.0, -1.0, -0.5, 0.25, 1.0, 0.0, 10.0]
    assert seen1[0][2] == [0.0] * 8
    assert bits0 == 4 * 8 + 4 * 2 + (1 + 4) * 32     # uint8 indices, 1 byte of 2-bit codes, 1 table


class Layers(torch.nn.Module):
    """A hidden weight (quantised per row), a bias and an output layer (both sent as float32)."""

    def __init__(self):
        super().__init__()
        self.weight, self.bias, self.head = (torch.nn.Parameter(torch.zeros(shape)) for shape in ((2, 4), (2,), (1, 2)))


def muloco_outer_step(rank, groups, changes, results):
    counter = CommCounter()
    method = MuLoCo({**muloco(2), "period": 1, "outer_lr": 1, "outer_momentum": 0, "error_decay": 0.5},
                    groups, counter)
    model = Layers()
    method.wrap(model)
    with torch.no_grad():
        for parameter, change in zip(model.parameters(), changes[rank]):
            parameter.copy_(-torch.tensor(change))      # the global copy is 0
    method.after_update(1)
    results[rank] = [p.tolist() for p in method.global_params], method.error.tolist(), counter.inter_node_bits


def test_mulocos_outer_step_rows_requantisation_and_error_feedback_by_hand():
    changes = {0: [[[1.0, 3.0, 5.0, 11.0], [2.0, 2.0, 2.0, 2.0]], [0.5, -1.0], [[2.0, 4.0]]],
               1: [[[3.0, 1.0, 5.0, 11.0], [0.0, 0.0, 0.0, 0.0]], [1.5, 1.0], [[0.0, 0.0]]]}
    results = mp.Manager().dict()
    run_ranks(muloco_outer_step, changes, results)
    # The weight's rows in 2 bits (the quantiser test above): group 0's [1, 3, 5, 11] -> [1, 4, 4, 11];
    # group 1's [3, 1, 5, 11]: mean 5, centred [-2, -4, 0, 6], the same step 6.48: codes 2, 1, 2, 3,
    # code 2 the mean of -2 and 0 -> [4, 1, 4, 11]; rows of equal values (sigma 0) travel exactly.
    # Average [2.5, 2.5, 4, 11], quantised again: mean 5, centred [-2.5, -2.5, -1, 6], sigma
    # sqrt(49.5 / 3) = 4.06, step 6.09: codes 2, 2, 2, 3 -> [5 - 2, 5 - 2, 5 - 2, 11]; second row [1] x 4.
    # The bias and the output layer (the last 2-D parameter) travel as float32: their averages.
    weight = [[-3.0, -3.0, -3.0, -11.0], [-1.0, -1.0, -1.0, -1.0]]
    for rank, error in ((0, [0.0, -1.0, 1.0, 0.0]), (1, [-1.0, 0.0, 1.0, 0.0])):
        global_params, kept, bits = results[rank]
        assert global_params == [weight, [-1.0, 0.0], [[-1.0, -2.0]]]    # lr 1, no momentum: 0 - average
        assert kept == error + [0.0] * 4 + [0.0] * 2 + [0.0] * 2        # what each row did not send
        assert bits == 8 * 2 + 2 * (1 + 4) * 32 + 2 * 32 + 2 * 32       # 2-bit codes, 2 row tables, float32


# ----- the degenerate settings: DiLoCo

@pytest.mark.slow
def test_sparseloco_keeping_every_value_at_32_bits_is_diloco_bit_for_bit(runs):
    # H = 9 divides STEPS; the outer optimizer as diloco.yaml's (Nesterov SGD, lr 0.7, momentum 0.9).
    # top_k = chunk_size^2 keeps every value; 32 bits sends float32; the error feedback is then 0 after
    # every step (e = beta 0 + Delta, all of it sent), whatever beta.
    diloco, container = runs("method=diloco", "method.period=9")
    degenerate, _ = runs("method=sparseloco", "method.period=9", "method.outer_lr=0.7", "method.outer_momentum=0.9",
                         "method.top_k=4096", "method.bits=32")
    for model in (0, 1):
        # (a + b) / 2 here, a / 2 + b / 2 in DiLoCo's all_reduce: equal in float32 (halving is exact)
        assert torch.equal(final_params(degenerate, model), final_params(diloco, model))
    # an all_gather of b_model between 2 groups, (2 - 1) b_model, against DiLoCo's all_reduce, 2 b_model
    elements = 85002
    assert inter_node_bits(degenerate) == STEPS // 9 * 32 * elements
    assert inter_node_bits(diloco) == STEPS // 9 * 2 * 32 * elements
    # compressed, the same run is not DiLoCo (the test above can fail)
    compressed, _ = runs("method=sparseloco", "method.period=9", "method.outer_lr=0.7", "method.outer_momentum=0.9")
    assert (final_params(compressed, 0) - final_params(diloco, 0)).abs().max() > 1e-3


def muloco(bits):
    return {"name": "muloco", "n": 2, "period": 4, "outer_lr": 0.8, "outer_momentum": 0.9, "error_decay": 0.9,
            "bits": bits, "range_sigmas": 6, "requantize": True, "inner_lr_scale": 0.5, "muon_momentum": 0.9}


def mlp():
    torch.manual_seed(0)   # every group starts from the same initialisation, as the engine's
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 4))


def train(rank, groups, kind, results):
    """12 updates of the engine's loop (an SGD shell at lr 0.1, weight decay 1e-3) on this group's
    own batches: MuLoCo at `kind` bits, or DiLoCo with Muon and AdamW stepped by hand."""
    counter, model = CommCounter(), mlp()
    shell = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    if kind == "reference":
        method = DiLoCo(muloco(32), groups, counter)
        method.wrap(model)
        matrices = [model[0].weight, model[2].weight]   # the output layer model[4] goes to AdamW
        others = [model[0].bias, model[2].bias, model[4].weight, model[4].bias]
        muon = torch.optim.Muon(matrices, lr=0.05, weight_decay=1e-3, momentum=0.9, nesterov=False,
                                adjust_lr_fn="spectral_unclamped")
        adamw = torch.optim.AdamW(others, lr=0.05, betas=(0.9, 0.99), eps=1e-8, weight_decay=1e-3)
    else:
        method = MuLoCo(muloco(kind), groups, counter)
        method.wrap(model)
        method.attach(shell)
    data = torch.Generator().manual_seed(rank)
    for step in range(1, 13):
        x, y = torch.randn(16, 8, generator=data), torch.randint(0, 4, (16,), generator=data)
        shell.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if kind == "reference":
            muon.step()
            adamw.step()
        else:
            shell.step()
        method.after_update(step)
    results[(kind, rank)] = [p.detach().clone() for p in model.parameters()], counter.inter_node_bits
    results[("shell", kind, rank)] = len(shell.state)


def test_muloco_at_32_bits_is_diloco_with_a_muon_inner_optimizer_bit_for_bit():
    results = mp.Manager().dict()
    for kind in ("reference", 32, 2):
        run_ranks(train, kind, results)
    for rank in (0, 1):
        reference, _ = results[("reference", rank)]
        uncompressed, bits = results[(32, rank)]
        for mine, theirs in zip(uncompressed, reference):
            assert torch.equal(mine, theirs)
        assert results[("shell", 32, rank)] == 0            # the engine's SGD never stepped a parameter
        # 3 outer steps: the hidden weights (16x8 + 16x16 = 384 values) at 32 bits too, the rest float32
        assert bits == 3 * 32 * (8 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4)
        compressed, bits = results[(2, rank)]
        assert max((a - b).abs().max() for a, b in zip(compressed, reference)) > 1e-4
        # 2 bits: 16 rows of 8 and 16 rows of 16 values, a table of 5 float32 each; the rest float32
        assert bits == 3 * (2 * 384 + 32 * 5 * 32 + 32 * (16 + 16 + 64 + 4))


def keller_newton_schulz(matrix, dtype=torch.bfloat16):
    """Muon's orthogonalisation as Keller Jordan's Muon writes it: 5 quintic steps (a, b, c) =
    (3.4445, -4.7750, 2.0315) on the matrix scaled to Frobenius norm 1, in bfloat16 (torch's and
    his ops: addmm), or in float64 (the iteration itself, without its rounding)."""
    x = matrix.to(dtype)
    x = x.T if matrix.shape[0] > matrix.shape[1] else x
    x = x / x.norm().clamp(min=1e-7)
    for _ in range(5):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=-4.7750, alpha=2.0315), x, beta=3.4445)
    return (x.T if matrix.shape[0] > matrix.shape[1] else x).float()


def test_torchs_muon_takes_mulocos_update():
    """MuLoCo's Muon (its code: dion's Muon with mu 0.9, no Nesterov, the 'spectral_norm' LR):
    M <- mu M + g, W <- (1 - lr wd) W - lr sqrt(fan_out / fan_in) NS(M). torch keeps (1 - mu) M,
    which NS's scaling to norm 1 cancels (up to bfloat16 rounding); its NS is Keller Jordan's
    quintic, MuLoCo's code runs 5 other tuned triples (docs/paper-discrepancies.md)."""
    weight = torch.nn.Parameter(torch.randn(8, 4, generator=torch.Generator().manual_seed(1)))
    start = weight.detach().clone()
    muon = torch.optim.Muon([weight], lr=0.02, weight_decay=0.1, momentum=0.9, nesterov=False,
                            adjust_lr_fn="spectral_unclamped")
    grads = torch.randn(2, 8, 4, generator=torch.Generator().manual_seed(2))
    exact, momentum = start.clone(), torch.zeros(8, 4)
    for grad in grads:
        weight.grad = grad.clone()
        before = weight.detach().clone()
        muon.step()
        momentum = 0.9 * momentum + grad                                   # MuLoCo's (sum) form
        buffer = muon.state[weight]["momentum_buffer"]
        torch.testing.assert_close(buffer, 0.1 * momentum, rtol=0, atol=1e-7)
        # this step: decoupled weight decay, then NS of the buffer at lr x sqrt(8 / 4)
        step = before * (1 - 0.02 * 0.1) - 0.02 * math.sqrt(8 / 4) * keller_newton_schulz(buffer)
        torch.testing.assert_close(weight.detach(), step, rtol=0, atol=1e-7)
        exact = exact * (1 - 0.02 * 0.1) - 0.02 * math.sqrt(8 / 4) * keller_newton_schulz(momentum, torch.float64)
    moved = (weight.detach() - start).abs().max()
    assert moved > 0.02
    # against the iteration without rounding on MuLoCo's momentum: bfloat16's rounding, ~1 % of the steps
    assert (weight.detach() - exact).abs().max() < 0.03 * moved


# ----- real runs: bits, devices, resume

# digits_mlp's parameters: (256, 64), (256,), (256, 256), (256,), (10, 256), (10,).
SPARSE_BITS = {   # values kept, index bits, per tensor at top_k 128 of 64 x 64 (2-bit values)
    "layers.0.weight": (4 * 128, 16),   # 4 chunks of 64 x 64 (int16 indices below 4096)
    "layers.0.bias": (4 * 2, 8),        # 4 chunks of 64: round(64 x 128 / 4096) = 2 each (uint8 indices)
    "layers.1.weight": (16 * 128, 16),
    "layers.1.bias": (4 * 2, 8),
    "layers.2.weight": (4 * 20, 16),    # 4 chunks of 10 x 64: round(640 x 128 / 4096) = 20 each
    "layers.2.bias": (1, 8),            # 1 chunk of 10: max(1, round(0.3125)) = 1
}


def sparseloco_step_bits():
    """Per tensor: its indices, its 2-bit codes in whole bytes, one table of 1 + 4 float32."""
    return sum(k * index + 8 * math.ceil(2 * k / 8) + 5 * 32 for k, index in SPARSE_BITS.values())


# MuLoCo's runs train digits_mlp's shape narrower, 64-32-32-10 (its stem, residual block and
# classifier): Muon's Newton-Schulz steps in bfloat16, which a CPU without bfloat16 units emulates
# slowly (about a second an update for digits_mlp's 256 x 256 matrix).
NARROW = ["workload.arch=null", "workload.hidden=[32,32]"]


@pytest.mark.slow
def test_sparseloco_and_muloco_send_the_formulas_bits(runs):
    # the compressed run of the test above: its outer optimizer (DiLoCo's) does not change what is sent
    sparse, _ = runs("method=sparseloco", "method.period=9", "method.outer_lr=0.7", "method.outer_momentum=0.9")
    assert sparseloco_step_bits() == 48656
    assert inter_node_bits(sparse) == STEPS // 9 * sparseloco_step_bits()
    mu, _ = runs("method=muloco", "method.period=9", *NARROW)
    rows = 2 * 32 * 64 + 5 * 32 * 32 + 2 * 32 * 32 + 5 * 32 * 32   # the hidden weights, 2 bits per row
    full = 32 * (32 + 32 + 10 * 32 + 10)                            # biases and the output layer
    assert inter_node_bits(mu) == STEPS // 9 * (rows + full)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sparseloco", "muloco"])
def test_every_tensor_handed_to_a_collective_is_on_the_runs_device(tmp_path, run_job, monkeypatch, method):
    from device_probe import DevicelessTensors, watch_collectives

    record = tmp_path / "collectives.txt"
    probe = DevicelessTensors()
    watch_collectives(monkeypatch, probe, record)
    with probe:
        run_job([f"method={method}", *(NARROW if method == "muloco" else []), "method.period=4", "schedule.epochs=2",
                 "schedule.lr.warmup_epochs=1", "schedule.lr.milestones=[]", "schedule.weight_decay.values=[1e-4]",
                 "schedule.weight_decay.milestones=[]"])
    assert "all_gather" in record.read_text().split()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sparseloco", "muloco"])
def test_a_run_killed_mid_period_resumes_to_the_uninterrupted_log(tmp_path, method):
    # 18 updates per epoch, H = 5: the states committed at epochs lie mid-period, with error feedback
    # (and MuLoCo's Muon and AdamW state) to carry over. 4 epochs, both schedules changing after the
    # kill; MuLoCo on the narrower MLP (NARROW).
    overrides = ["workload=digits_mlp", *(NARROW if method == "muloco" else []), f"method={method}",
                 "method.period=5", "schedule.epochs=4", "schedule.lr.warmup_epochs=1", "schedule.lr.milestones=[2,3]",
                 "schedule.weight_decay.values=[1e-4,1e-5,0]", "schedule.weight_decay.milestones=[2,3]"]
    run_to_the_end(overrides, tmp_path / "reference")
    killed_after_first_commit(overrides, tmp_path / "killed")
    run_to_the_end(overrides, tmp_path / "killed")
    expected = soak_resume.log_without_wall_time(tmp_path / "reference")
    assert soak_resume.log_without_wall_time(tmp_path / "killed") == expected
    assert [r for r in expected if r["kind"] == "eval"][-1]["step"] == 72


def test_top_k_beyond_a_chunk_is_refused():
    with pytest.raises(ValueError, match=r"method\.top_k=4097"):
        SparseLoCo(sparseloco(top_k=4097, chunk_size=64), None, CommCounter())


@pytest.mark.parametrize("overrides, message", [
    (["method=sparseloco", "method.top_k=4097"], r"method\.top_k=4097: at most a chunk's method\.chunk_size\^2 = 4096"),
])
def test_what_would_fail_at_the_start_of_a_run_is_refused_when_the_job_is_composed(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose_job(overrides, tmp_path, quick=False)


class ConvNet(torch.nn.Module):
    """A convolution (4-D weight, kept channels_last), then an output layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(2, 4, 3, padding=1).to(memory_format=torch.channels_last)
        self.head = torch.nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1))


def train_conv(rank, groups, kind, results):
    """8 updates of a convolution network: MuLoCo at 32 bits, or DiLoCo with torch's Muon stepping the
    convolution's weight as its (out, in x kh x kw) matrix by hand and AdamW the rest."""
    counter, model = CommCounter(), ConvNet()
    shell = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    if kind == "reference":
        method = DiLoCo(muloco(32), groups, counter)
        method.wrap(model)
        matrix = torch.nn.Parameter(model.conv.weight.detach().reshape(4, 18).clone())
        muon = torch.optim.Muon([matrix], lr=0.05, weight_decay=1e-3, momentum=0.9, nesterov=False,
                                adjust_lr_fn="spectral_unclamped")
        adamw = torch.optim.AdamW([model.conv.bias, model.head.weight, model.head.bias], lr=0.05, betas=(0.9, 0.99),
                                  eps=1e-8, weight_decay=1e-3)
    else:
        method = MuLoCo(muloco(32), groups, counter)
        method.wrap(model)
        method.attach(shell)
    data = torch.Generator().manual_seed(rank)
    for step in range(1, 9):
        x, y = torch.randn(8, 2, 4, 4, generator=data), torch.randint(0, 3, (8,), generator=data)
        shell.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        if kind == "reference":
            with torch.no_grad():
                matrix.copy_(model.conv.weight.reshape(4, 18))
            matrix.grad = model.conv.weight.grad.reshape(4, 18)
            muon.step()
            adamw.step()
            with torch.no_grad():
                model.conv.weight.copy_(matrix.view(4, 2, 3, 3))
        else:
            shell.step()
        method.after_update(step)
    results[(kind, rank)] = [p.detach().clone() for p in model.parameters()]


def test_muloco_steps_a_convolution_as_its_flattened_matrix():
    """MuLoCo's code flattens a convolution's weight for Muon; torch's Muon takes 2-D parameters only."""
    results = mp.Manager().dict()
    for kind in ("reference", 32):
        run_ranks(train_conv, kind, results)
    for rank in (0, 1):
        for mine, theirs in zip(results[(32, rank)], results[("reference", rank)]):
            assert torch.equal(mine, theirs)
        assert not torch.equal(results[(32, rank)][0], ConvNet().conv.weight.detach())   # it trained
