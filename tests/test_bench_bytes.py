"""The byte figures of `make bench`: the engine's counters on real gloo ranks against the paper's
Section 3 formulas, worked out by hand here at small sizes; and the 16-bit logits option."""

import pytest
import torch
from conftest import SHORT, compose_job

from benchmarks import bench_bytes
from benchmarks.benchlib import spawn
from codistill import CommCounter
from codistill.groups import Layout, make_process_groups
from codistill.internals import PredictionExchange
from codistill.losses import distill_loss
from codistill_experiments.config import ConfigError

SIZES = (8, 16, 16, 10)  # the engine's residual MLP 8 -> 16 -> 16 -> 10
# 8*16 + 16 + 16*16 + 16 + 16*10 + 10 parameters, 32 bits each
B_MODEL = 32 * (8 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10)
CLASSES = 10


def per_update(row):
    return row["inter_node_bits"] / row["steps"]


@pytest.mark.slow
def test_counters_match_section3_formulas_one_rank_per_node():
    cases = [{"method": "allreduce"}, {"method": "predictions", "period": 1, "bits": 32},
             {"method": "predictions", "period": 3, "bits": 32}, {"method": "predictions", "period": 3, "bits": 16},
             {"method": "checkpoints", "period": 4},
             {"method": "predictions", "period": 2, "bits": 8, "topk": 3},
             {"method": "predictions", "period": 1, "bits": 8}]
    n, batch = 3, 8
    expected = [2 * B_MODEL,                               # all_reduce: 2 b_model
                (n - 1) * 32 * CLASSES * batch / 1,        # predictions: (n-1) b_pred B / T
                (n - 1) * 32 * CLASSES * batch / 3,
                (n - 1) * 16 * CLASSES * batch / 3,        # 16-bit logits: half of the above
                (n - 1) * B_MODEL / 4,                     # checkpoints: (n-1) b_model / T
                (n - 1) * (3 * (8 + 8) + 32) * batch / 2,  # top 3 as int8 + uint8 classes + a float32 scale
                (n - 1) * (8 * CLASSES + 32) * batch / 1]  # every class as int8 + the scale
    per_rank = bench_bytes.measure(SIZES, batch, cases, n=n, k=1)
    assert len(per_rank) == n
    for rows in per_rank:
        assert [per_update(row) for row in rows] == expected
        assert all(row["intra_node_bits"] == 0 for row in rows)
        assert all(row["steps"] % row.get("period", 1) == 0 for row in rows)


@pytest.mark.slow
def test_benchmark_table_with_two_ranks_per_node_uses_the_per_device_batch():
    # 2 models x 2 ranks, nodes of 2 ranks: each device exchanges its half of the 16 samples.
    cases = [{"method": "allreduce"}, {"method": "predictions", "period": 2, "bits": 32},
             {"method": "checkpoints", "period": 5}]
    rows = bench_bytes.table(SIZES, batch_per_model=16, n=2, k=2, cases=cases)
    expected = [2 * B_MODEL, 32 * CLASSES * 8 / 2, B_MODEL / 5]
    assert [row["measured_bits"] for row in rows] == expected
    assert [row["formula_bits"] for row in rows] == expected
    assert [row["fewer_than_allreduce"] for row in rows] == pytest.approx([1.0, 2 * B_MODEL / expected[1], 10.0])


def _exchange_both_widths(rank, world_size):
    """Each rank sends seeded logits through a 32-bit and a 16-bit exchange; returns what it got."""
    torch.manual_seed(rank)
    logits = torch.randn(64, 100) * 8
    logits[0, :4] = torch.tensor([1e-6, 3e-3, 250.0, -4000.0])  # tiny, subnormal-ish and large values
    layout = Layout(n_groups=world_size, ranks_per_group=1, ranks_per_node=1, rank=rank)
    groups = make_process_groups(layout)
    received = {}
    for bits in (32, 16):
        counter = CommCounter()
        [teacher] = PredictionExchange(groups, counter, period=1, group_index=rank, bits=bits).gather(0, logits)
        received[str(bits)] = {"teacher": teacher.tolist(), "dtype": str(teacher.dtype), "bits": counter.inter_node_bits}
    return received


def test_16_bit_logits_halve_the_bits_and_move_the_loss_by_float16_rounding_only():
    results = spawn(2, _exchange_both_widths)
    torch.manual_seed(1)
    peer_of_rank0 = torch.randn(64, 100) * 8
    peer_of_rank0[0, :4] = torch.tensor([1e-6, 3e-3, 250.0, -4000.0])
    torch.manual_seed(0)
    student = torch.randn(64, 100) * 8
    student[0, :4] = torch.tensor([1e-6, 3e-3, 250.0, -4000.0])
    got = results[0]
    assert got["16"]["bits"] * 2 == got["32"]["bits"] == 32 * 64 * 100
    assert got["16"]["dtype"] == got["32"]["dtype"] == "torch.float32"  # used as float32 teachers
    teacher32, teacher16 = torch.tensor(got["32"]["teacher"]), torch.tensor(got["16"]["teacher"])
    assert torch.equal(teacher32, peer_of_rank0)
    assert torch.equal(teacher16, peer_of_rank0.half().float())  # float16 on the wire, nothing else
    d32, d16 = (distill_loss(student, [t], "mse").item() for t in (teacher32, teacher16))
    # float16 rounds to nearest: |t16 - t| <= 2^-11 |t| (+ 2^-25 below the normal range), so
    # |d16 - d32| = |mean((t - t16)(2s - t - t16))| <= mean(e (2|s - t| + e)) with e that bound.
    e = 2.0**-11 * peer_of_rank0.double().abs() + 2.0**-25
    bound = (e * (2 * (student.double() - peer_of_rank0.double()).abs() + e)).mean().item()
    assert d16 != d32
    assert abs(d16 - d32) <= bound
    assert bound < 1e-3 * d32  # and that bound is small next to the loss itself


@pytest.mark.slow
def test_a_run_with_16_bit_logits_logs_half_the_bits(run_job):
    from codistill_experiments.runlog import read_records

    directory, _ = run_job(["method=codistill", "method.prediction_bits=16", *SHORT])
    record = [r for r in read_records(directory / "metrics.jsonl") if r["kind"] == "eval"][-1]
    assert record["comm_bits_inter_node"] == record["step"] * 16 * CLASSES * 32  # 111 updates, B = 32


@pytest.mark.parametrize("overrides, message", [
    (["method.prediction_bits=4"], "method.prediction_bits=4"),
    (["method.prediction_bits=16", "method.exchange=checkpoints"], "applies to method.exchange=predictions"),
])
def test_prediction_bits_is_validated(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose_job(["method=codistill", *overrides], tmp_path)
