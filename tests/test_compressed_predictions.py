"""The compressed prediction exchange (method.prediction_topk, method.prediction_bits=8): on real
gloo ranks, k = C at 32 bits gives today's term and gradients exactly, the bit counter charges
what is sent (worked out by hand here), top-k and 8-bit teachers arrive as the sender's values;
the term on a top-k teacher and the per-row quantisation against hand values."""
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import SHORT, compose_job

from benchmarks.benchlib import spawn
from codistill import prediction_row_bits
from codistill.losses import TopKLogits, distill_loss, distill_term, token_distill_term
from codistill.predictions import dequantize_rows, quantize_rows
from codistill_experiments.config import ConfigError

RANKS, ROWS = 3, 6           # each rank sends ROWS rows to the 2 others: the counter's (m-1) = 2


def _logits(rank, classes):
    """Rank `rank`'s logits, seeded: every process (and the test) draws the same."""
    generator = torch.Generator().manual_seed(1000 * rank + classes)
    return torch.randn(ROWS, classes, generator=generator) * 4


def _ranks(rank, world_size):
    """Every exchange this file checks, on one spawn of real gloo ranks."""
    from codistill import Codistiller, CommCounter, Layout
    from codistill.groups import make_process_groups
    from codistill.internals import PredictionExchange

    layout = Layout(n_groups=world_size, ranks_per_group=1, ranks_per_node=1, rank=rank)
    groups = make_process_groups(layout)
    out = {"terms": {}, "bits": {}, "received": {}}
    # today's path (prediction_topk None) and k = C, through the Codistiller: loss and gradient
    for topk in (None, 100):
        for kind in ("mse", "kl", "soft_ce"):
            counter = CommCounter()
            codistiller = Codistiller(torch.nn.Linear(1, 1), layout, exchange="predictions", alpha=1.0, loss=kind,
                                      temperature=2.0, prediction_bits=32, prediction_topk=topk, groups=groups,
                                      counter=counter)
            student = _logits(rank, 100).requires_grad_()   # what this rank sends, its peers' teacher
            loss = codistiller.loss(0, None, student)
            loss.backward()
            out["terms"][f"{topk}-{kind}"] = {"loss": loss.item(), "grad": student.grad.tolist(),
                                              "bits": counter.inter_node_bits}
    for classes in (100, 300):
        for topk, bits in ((None, 32), (None, 16), (None, 8), (10, 32), (10, 16), (10, 8), (1, 8), (classes, 32)):
            counter = CommCounter()
            exchange = PredictionExchange(groups, counter, period=1, group_index=rank, bits=bits, topk=topk)
            peers = exchange.gather(0, _logits(rank, classes))
            key = f"{classes}-{topk}-{bits}"
            out["bits"][key] = counter.inter_node_bits
            out["received"][key] = [{"values": p.values.tolist(), "indices": p.indices.tolist(),
                                     "indices_dtype": str(p.indices.dtype), "values_dtype": str(p.values.dtype)}
                                    if isinstance(p, TopKLogits) else {"dense": p.tolist(), "dtype": str(p.dtype)}
                                    for p in peers]
    return out


@pytest.fixture(scope="module")
def ranks():
    return spawn(RANKS, _ranks)


def _peers(rank):
    return [peer for peer in range(RANKS) if peer != rank]


@pytest.mark.parametrize("kind", ["mse", "kl", "soft_ce"])
def test_k_equal_to_classes_at_32_bits_gives_todays_loss_and_gradients_exactly(ranks, kind):
    for rank, got in enumerate(ranks):
        today, all_k = got["terms"][f"None-{kind}"], got["terms"][f"100-{kind}"]
        assert all_k["loss"] == today["loss"]
        assert torch.equal(torch.tensor(all_k["grad"]), torch.tensor(today["grad"]))
        assert all_k["bits"] == today["bits"] == (RANKS - 1) * ROWS * 100 * 32   # no indices sent
        # and today's is the term on the peers' logits computed here, in this process
        student = _logits(rank, 100).requires_grad_()
        expected = distill_loss(student, [_logits(peer, 100) for peer in _peers(rank)], kind, temperature=2.0)
        expected.backward()
        assert today["loss"] == expected.item()
        assert torch.equal(torch.tensor(today["grad"]), student.grad)
    # mse is torch's MSELoss between logits
    assert ranks[0]["terms"]["None-mse"]["loss"] == pytest.approx(
        sum(F.mse_loss(_logits(0, 100), _logits(peer, 100)).item() for peer in (1, 2)) / 2, rel=1e-6)


@pytest.mark.parametrize("classes, index_dtype", [(100, "torch.uint8"), (300, "torch.int16")])
def test_the_bit_counter_after_one_exchange_charges_what_is_sent(ranks, classes, index_dtype):
    # per row and peer, worked out by hand: values x their bits + indices x their bits + the 8-bit scale
    index_bits = {"torch.uint8": 8, "torch.int16": 16}[index_dtype]
    per_row = {(None, 32): classes * 32, (None, 16): classes * 16, (None, 8): classes * 8 + 32,
               (10, 32): 10 * (32 + index_bits), (10, 16): 10 * (16 + index_bits), (10, 8): 10 * (8 + index_bits) + 32,
               (1, 8): 8 + index_bits + 32, (classes, 32): classes * 32}
    for got in ranks:
        for (topk, bits), row_bits in per_row.items():
            assert got["bits"][f"{classes}-{topk}-{bits}"] == (RANKS - 1) * ROWS * row_bits
            assert prediction_row_bits(classes, topk, bits) == row_bits


@pytest.mark.parametrize("classes", [100, 300])
def test_top_k_teachers_arrive_as_the_peers_largest_logits_and_their_classes(ranks, classes):
    for rank, got in enumerate(ranks):
        for peer, received in zip(_peers(rank), got["received"][f"{classes}-10-32"], strict=True):
            logits = _logits(peer, classes)
            values = torch.tensor(received["values"])
            indices = torch.tensor(received["indices"])
            assert received["values_dtype"] == "torch.float32" and received["indices_dtype"] == "torch.int64"
            assert torch.equal(values, logits.gather(-1, indices))        # the values of those classes
            assert torch.equal(values, logits.sort(dim=-1, descending=True).values[:, :10])   # the 10 largest
        dense = got["received"][f"{classes}-{classes}-32"]
        assert [torch.equal(torch.tensor(p["dense"]), _logits(peer, classes)) for peer, p in
                zip(_peers(rank), dense, strict=True)] == [True, True]


@pytest.mark.parametrize("key", ["100-None-8", "100-10-8", "300-1-8"])
def test_8_bit_teachers_are_within_half_a_step_of_the_peers_values(ranks, key):
    classes, topk = int(key.split("-")[0]), key.split("-")[1]
    for rank, got in enumerate(ranks):
        for peer, received in zip(_peers(rank), got["received"][key], strict=True):
            logits = _logits(peer, classes).double()
            if topk == "None":
                sent, teacher = logits, torch.tensor(received["dense"]).double()
            else:
                indices = torch.tensor(received["indices"])
                sent, teacher = logits.gather(-1, indices), torch.tensor(received["values"]).double()
            step = sent.abs().amax(dim=-1, keepdim=True) / 127        # s = max|v| / 127 per row
            levels = teacher / step
            assert torch.allclose(levels, levels.round(), atol=1e-4)   # q * s, q whole
            assert levels.abs().max() <= 127 + 1e-4
            assert ((teacher - sent).abs() <= step / 2 * (1 + 1e-5)).all()


def test_8_bit_quantisation_of_hand_values():
    rows = torch.tensor([[127.0, -3.25, 0.5, 1.5, 2.75],
                         [-63.5, 10.3, 0.2, 0.0, 1.0],
                         [0.0, 0.0, 0.0, 0.0, 0.0]])
    q, scale = quantize_rows(rows)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    assert scale.squeeze(-1).tolist() == [1.0, 0.5, 0.0]
    # round half to even (torch.round): 0.5 -> 0, 1.5 -> 2; 10.3 / 0.5 = 20.6 -> 21
    assert q.tolist() == [[127, -3, 0, 2, 3], [-127, 21, 0, 0, 2], [0, 0, 0, 0, 0]]
    assert dequantize_rows(q, scale).tolist() == [[127.0, -3.0, 0.0, 2.0, 3.0], [-63.5, 10.5, 0.0, 0.0, 1.0],
                                                  [0.0, 0.0, 0.0, 0.0, 0.0]]
    values = torch.randn(50, 40, generator=torch.Generator().manual_seed(3)) * 10
    q, scale = quantize_rows(values)
    assert ((dequantize_rows(q, scale) - values).abs() <= scale / 2 * (1 + 1e-5)).all()


# A tiny top-k teacher by hand: 2 rows of 4 classes, k = 2.
TEACHER = torch.tensor([[3.0, -1.0, 2.0, 0.5], [0.0, 4.0, 1.0, -2.0]])
STUDENT = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 3.0, 0.0]])


def _top2():
    values, indices = TEACHER.topk(2, dim=-1)
    assert indices.tolist() == [[0, 2], [1, 2]]
    return TopKLogits(values, indices, 4)


def test_top_k_mse_is_the_dense_term_without_the_missing_entries():
    student = STUDENT.clone().requires_grad_()
    term = distill_term(student, _top2(), "mse")
    # received (3, 2) at classes (0, 2), and (4, 1) at (1, 2); 1/(B*C) with B*C = 8
    by_hand = ((1 - 3) ** 2 + (1 - 2) ** 2 + (2 - 4) ** 2 + (3 - 1) ** 2) / 8
    assert term.item() == by_hand == 13 / 8
    term.backward()
    # d/ds 1/8 (s - t)^2 = (s - t)/4 at the received entries, nothing elsewhere
    assert student.grad.tolist() == [[-0.5, 0.0, -0.25, 0.0], [0.0, -0.5, 0.5, 0.0]]


def test_top_k_kl_and_soft_ce_use_the_softmax_of_the_received_logits():
    # row 0: teacher p = softmax(3, 2) on classes 0, 2; a uniform student: log q = -log 4 everywhere
    # row 1: teacher p = softmax(4, 1) on classes 1, 2; student log q = s - logsumexp(s)
    p0 = [math.exp(3) / (math.exp(3) + math.exp(2)), math.exp(2) / (math.exp(3) + math.exp(2))]
    p1 = [math.exp(4) / (math.exp(4) + math.exp(1)), math.exp(1) / (math.exp(4) + math.exp(1))]
    lse1 = math.log(2 + math.exp(2) + math.exp(3))
    log_q1 = [2 - lse1, 3 - lse1]
    soft_ce = (-(p0[0] + p0[1]) * math.log(1 / 4) - (p1[0] * log_q1[0] + p1[1] * log_q1[1])) / 2
    kl = (sum(p * (math.log(p) - math.log(1 / 4)) for p in p0)
          + sum(p * (math.log(p) - lq) for p, lq in zip(p1, log_q1))) / 2
    assert distill_term(STUDENT, _top2(), "soft_ce").item() == pytest.approx(soft_ce, rel=1e-6)
    assert distill_term(STUDENT, _top2(), "kl").item() == pytest.approx(kl, rel=1e-6)


@pytest.mark.parametrize("kind", ["mse", "kl", "soft_ce"])
def test_token_level_term_takes_a_top_k_teacher(kind):
    # [batch 1, length 3, vocab 4]: the rows above at positions 0 and 2, padding (a non-finite
    # teacher) at 1; the per-token term summed over the kept positions is B x the per-sample term.
    student = torch.stack([STUDENT[0], torch.zeros(4), STUDENT[1]]).unsqueeze(0)
    values, indices = _top2().values, _top2().indices
    teacher = TopKLogits(torch.stack([values[0], torch.full((2,), float("nan")), values[1]]).unsqueeze(0),
                         torch.stack([indices[0], indices[0], indices[1]]).unsqueeze(0), 4)
    keep = torch.tensor([[True, False, True]])
    token_level = token_distill_term(student, teacher, keep, kind, temperature=1.0)
    assert token_level.item() == pytest.approx(2 * distill_term(STUDENT, _top2(), kind).item(), rel=1e-6)


def test_prediction_row_bits_by_hand():
    assert prediction_row_bits(100) == 3200                  # dense float32: C x 32
    assert prediction_row_bits(100, bits=16) == 1600
    assert prediction_row_bits(100, bits=8) == 832            # 8C + the float32 scale
    assert prediction_row_bits(100, 100, 32) == 3200          # k = C: dense, no indices
    assert prediction_row_bits(100, 10, 32) == 400            # 10 x (32 + 8-bit indices)
    assert prediction_row_bits(100, 10, 8) == 192             # 10 x (8 + 8) + 32
    assert prediction_row_bits(256, 1, 8) == 48               # uint8 holds index 255
    assert prediction_row_bits(257, 1, 8) == 56               # index 256 needs int16
    assert prediction_row_bits(1000, 10, 8) == 272            # 10 x (8 + 16) + 32
    assert prediction_row_bits(32768, 5, 16) == 160           # int16 holds 32767
    assert prediction_row_bits(32769, 5, 16) == 240           # int32 beyond
    for bad in ({"topk": 0}, {"topk": 101}, {"bits": 4}, {"topk": True}):
        with pytest.raises(ValueError):
            prediction_row_bits(100, **bad)


@pytest.mark.parametrize("overrides, message", [
    (["method.prediction_topk=10", "method.exchange=checkpoints"], "applies to method.exchange=predictions"),
    (["method.prediction_topk=11"], "at most the workload's 10 classes"),
    (["method.prediction_topk=101", "workload=clusters_resnet"], "at most the workload's 100 classes"),
    (["method.prediction_topk=0"], "method.prediction_topk=0"),
])
def test_prediction_topk_is_refused_at_compose_time(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        compose_job(["method=codistill", *overrides], tmp_path)


@pytest.mark.slow
def test_a_run_with_top_k_8_bit_predictions_logs_the_bits_it_sent(run_job):
    from codistill_experiments.runlog import read_records

    directory, _ = run_job(["method=codistill", "method.prediction_topk=3", "method.prediction_bits=8", *SHORT])
    record = [r for r in read_records(directory / "metrics.jsonl") if r["kind"] == "eval"][-1]
    # 10 classes, B = 32 per update, one peer: 3 x (8 + 8) + 32 bits per example
    assert record["comm_bits_inter_node"] == record["step"] * 32 * (3 * (8 + 8) + 32)
    assert record["train_distill_loss"] > 0


def test_the_frontier_labels_compressed_predictions_as_their_own_series():
    from figures.drawing.frontier import frontier_knob, frontier_label

    def row(**method):
        return {"cfg.seed": 0, "cfg.method.name": "codistill", "cfg.method.exchange": "predictions",
                "cfg.method.period": 1, "cfg.method.prediction_bits": 32, "cfg.method.prediction_topk": float("nan"),
                **{f"cfg.method.{key}": value for key, value in method.items()}}

    full, top10_8, all_8 = row(), row(prediction_topk=10.0, prediction_bits=8), row(prediction_bits=8)
    assert [frontier_label(r) for r in (full, top10_8, all_8)] == [
        "codistillation, predictions", "codistillation, predictions top-k / 8-bit",
        "codistillation, predictions top-k / 8-bit"]
    assert [frontier_knob(r) for r in (full, top10_8, all_8)] == ["T=1", "T=1, k=10, 8-bit", "T=1, all, 8-bit"]
