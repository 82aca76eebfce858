"""src/codistill_experiments/step_model.py: collective costs and bits worked by hand, compressed prediction exchanges
included; its constants (step_model_calibration.py) taken from the calibration part alone, never from
part 3's times per update; the leave-one-model-out arithmetic; the committed part 6 reproduced."""
import json
import math
from pathlib import Path

import pytest

from benchmarks import step_model_calibration as cal
from codistill_experiments import step_model as sm

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

GBIT = 1e9


def test_ring_all_reduce_by_hand():
    # 4 ranks, 8e9 bits, 10 Gbit/s, 1 ms: 2*3/4*8e9/1e10 = 1.2 s of bandwidth, 2*3 steps = 6 ms
    assert sm.ring_all_reduce_s(8e9, 4, 10 * GBIT, 1e-3) == pytest.approx(1.206)
    assert sm.ring_all_reduce_s(8e9, 1, 10 * GBIT, 1e-3) == 0.0


def test_tree_and_all_gather_by_hand():
    # tree over 8 ranks: 2 * 8e9 / 1e10 = 1.6 s, 2 * log2(8) = 6 steps
    assert sm.tree_all_reduce_s(8e9, 8, 10 * GBIT, 1e-3) == pytest.approx(1.606)
    # all_gather of 1e9 bits over 3 ranks: 2 steps of 1e9 bits at 1 Gbit/s + 2 latencies
    assert sm.ring_all_gather_s(1e9, 3, GBIT, 0.5) == pytest.approx(3.0)


def test_hierarchical_all_reduce_by_hand():
    # 2 servers x 2 GPUs, 1e9 bits, one call: inside 2*1/2*1e9/1e11 = 10 ms + 2*1 us; across (ring of 2
    # servers) 1e9/1e9 = 1 s + 2*10 us
    net = sm.Network(inter_bits_per_s=GBIT, inter_latency_s=10e-6, intra_bits_per_s=100 * GBIT,
                     intra_latency_s=1e-6, gpus_per_server=2)
    assert sm.all_reduce_s(1e9, 4, net) == pytest.approx(0.01 + 2e-6 + 1.0 + 20e-6)


def work(params=1000, logits=50):
    """One row of `logits` classes per device."""
    return sm.Workload("w", params, compute_s=0.1, logits_per_device=logits, classes=logits, teacher_forward_share=0.0)


NET = sm.Network(inter_bits_per_s=GBIT, gpus_per_server=4)


def test_bits_follow_the_engines_convention():
    b_model, b_pred = 32 * 1000, 32 * 50
    # all_reduce over 8 GPUs on 2 servers: 2 |x| per device, across servers
    cost = sm.all_reduce(sm.Layout(n=2, k=4), work(), NET)
    assert (cost.inter_bits, cost.intra_bits) == (2 * b_model, 0)
    # 3 models x 4 GPUs (one server each), predictions every 5 updates: group all_reduce inside the
    # server (2 b_model), logits all_gathered over 3 peers across servers: (3-1) b_pred / 5
    cost = sm.predictions(sm.Layout(n=3, k=4, T=5), work(), NET)
    assert cost.inter_bits == pytest.approx(2 * b_pred / 5)
    assert cost.intra_bits == pytest.approx(2 * b_model)
    # checkpoints every 10: (n-1) b_model / T across servers
    cost = sm.checkpoints(sm.Layout(n=3, k=4, T=10), work(), NET)
    assert cost.inter_bits == pytest.approx(2 * b_model / 10)
    # everything in one server: all intra
    cost = sm.checkpoints(sm.Layout(n=2, k=2, T=10), work(), NET)
    assert cost.inter_bits == 0 and cost.intra_bits == pytest.approx(2 * b_model + b_model / 10)


def test_sharded_checkpoints_send_k_times_fewer_bits_across_servers():
    for n, k in ((2, 4), (3, 4), (4, 2)):   # n x k > 4 GPUs per server: the peers are in other servers
        layout = sm.Layout(n=n, k=k, T=10)
        full = sm.checkpoints(layout, work(), NET)
        sharded = sm.sharded_checkpoints(layout, work(), NET)
        group = 2 * 32 * 1000 if k > 1 else 0   # the model's own all_reduce, inside its server
        assert sharded.inter_bits == pytest.approx(full.inter_bits / k)
        assert sharded.inter_bits == pytest.approx((n - 1) * 32 * 1000 / (k * 10))
        # the group's all_gather of the n shards it holds (the engine's kept buffer carries its own model's
        # too) over k ranks: (k-1) n b_model / (k T)
        assert sharded.intra_bits - group == pytest.approx((k - 1) * n * 32 * 1000 / (k * 10))


def test_time_per_update_adds_the_exchange_over_T():
    layout = sm.Layout(n=2, k=1, T=4)
    net = sm.Network(inter_bits_per_s=1e6, inter_latency_s=0.0, gpus_per_server=1)
    # 32,000 bits to one peer at 1 Mbit/s = 32 ms per exchange, 8 ms per update
    assert sm.checkpoints(layout, work(), net).seconds == pytest.approx(0.1 + 0.008)
    # overheads: wire factor 2, 1 ns per bit (2 x 32,000 bits gathered), 1 ms per call
    slow = sm.replace(net, exchange=sm.Overhead(2.0, 1e-9, 1e-3))
    assert sm.checkpoints(layout, work(), slow).seconds == pytest.approx(0.1 + (0.064 + 64e-6 + 1e-3) / 4)
    # an all_reduce that overlaps its CPU work pays the larger of the two
    overlap = sm.replace(net, all_reduce=sm.Overhead(1.0, 1e-5, 0.0, overlap=True))
    cost = sm.all_reduce(sm.Layout(n=2, k=1), work(), overlap)   # ring of 2: 32 ms wire, 320 ms CPU
    assert cost.seconds == pytest.approx(0.1 + 0.32)


def test_powersgd_elements_follow_torchs_rule():
    # 100 x 50, rank 2: factors (100 + 50) * 2 = 300, 300 * 2 < 5000: compressed. 4 x 3: r = min(4, 3, 2)
    # = 2, (4 + 3) * 2 = 14, 14 * 2 = 28 >= 12: sent whole. 30 vector elements whole.
    shapes = work(params=100 * 50 + 4 * 3 + 30)
    shapes = sm.replace(shapes, matrices=((100, 50), (4, 3)))
    assert sm.powersgd_elements(shapes, 2) == (300 + 12 + 30, 1)
    # rank 40: (150) * 40 * 2 = 12,000 >= 5000: nothing is compressed
    assert sm.powersgd_elements(shapes, 40) == (shapes.params, 0)


def test_powersgd_time_and_bits_by_hand():
    shapes = sm.replace(work(params=100 * 50 + 30), matrices=((100, 50),))
    net = sm.Network(inter_bits_per_s=1e6, inter_latency_s=0.0, gpus_per_server=1, compress_s_per_bit=1e-9,
                     compress_s_per_matrix=1e-3)
    cost = sm.powersgd(sm.Layout(n=1, k=2, rank=2), shapes, net)
    sent = 32 * 330                                # 330 elements all_reduced per update
    assert (cost.inter_bits, cost.intra_bits) == (2 * sent, 0)
    # ring of 2: sent / 1 Mbit/s; compression 1 ns x 32 x 5030 gradient bits + 1 ms for the one matrix
    assert cost.seconds == pytest.approx(0.1 + sent / 1e6 + 32 * 5030 * 1e-9 + 1e-3)
    assert sm.powersgd(sm.Layout(n=1, k=1), shapes, net).seconds == 0.1   # one rank: no hook runs


def test_localsgd_and_diloco_average_every_H_by_hand():
    b_model = 32 * 1000
    # 2 groups x 4 GPUs, one server each (NET: 4 GPUs per server, 1 Gbit/s, 10 us): every update the
    # group's all_reduce inside the server; every H = 8 updates 4 ranks per server all_reduce the model
    # with their peer: a ring of 2 servers carrying 4 b_model through the NIC, 1 step each way
    layout = sm.Layout(n=2, k=4, T=8)
    cost = sm.localsgd(layout, work(), NET)
    assert cost.inter_bits == pytest.approx(2 * b_model / 8) and cost.intra_bits == pytest.approx(2 * b_model)
    inside = sm.all_reduce_s(b_model, 4, NET)
    averaging = 4 * b_model / GBIT + 2 * 10e-6
    assert cost.seconds == pytest.approx(0.1 + inside + averaging / 8)
    # DiLoCo: the same bits, plus its outer step every H (1 ns per model bit)
    outer = sm.replace(NET, outer_s_per_bit=1e-9)
    dil = sm.diloco(layout, work(), outer)
    assert (dil.inter_bits, dil.intra_bits) == (cost.inter_bits, cost.intra_bits)
    assert dil.seconds == pytest.approx(cost.seconds + 1e-9 * b_model / 8)
    # H = 1 with one GPU per group: local SGD is all_reduce's traffic (2 b_model across servers)
    one = sm.Network(inter_bits_per_s=GBIT, gpus_per_server=1)
    assert sm.localsgd(sm.Layout(n=2, k=1, T=1), work(), one).inter_bits == sm.all_reduce(
        sm.Layout(n=2, k=1), work(), one).inter_bits


def test_resnet50_shapes_give_its_parameter_count():
    # torchvision's resnet50(): 25,557,032 = convolutions + classifier weights + 2 per batch-norm
    # channel (one after each convolution) + the classifier's 1000 biases
    shapes = sm.resnet50_matrices()
    assert len(shapes) == 54
    weights = sum(n * m for n, m in shapes)
    assert weights + sum(2 * n for n, _ in shapes[:-1]) + 1000 == 25_557_032


def committed_part3():
    results = json.loads((BENCH / "results.json").read_text())
    network = results["parts"]["network"]
    assert "models" in network, "part 3 was not measured in the committed results.json"
    return results, network


def hand_calibration():
    """A calibration part (bench_calibration.summarise's shape) with round numbers: per limit the link
    (broadcast) and each collective's line, and the methods' arithmetic per bit."""
    link = {"none": 8e9, "1gbit": 1e9, "100mbit": 1e8}
    # seconds per bit of each rank's tensor: all_reduce at 1.1 and 1.3 times the link's when shaped, 0.3 ns
    # unlimited; the all_gathers 2 and 1.8 times, 1 ns unlimited
    slope = {"all_reduce": {"none": 0.3e-9, "1gbit": 1.1e-9, "100mbit": 13e-9},
             "all_gather": {"none": 1e-9, "1gbit": 2e-9, "100mbit": 18e-9}}
    slope["all_gather_single"] = slope["all_gather"]
    limits = {}
    for limit, rate in link.items():
        fits = {"broadcast": {"intercept_s": 0.0, "s_per_bit": 1 / rate, "call_s": 1e-4}}
        fits |= {kind: {"intercept_s": 0.0, "s_per_bit": slope[kind][limit], "call_s": 2e-4} for kind in slope}
        limits[limit] = {"fits": fits, "link_bits_per_s": rate}
    return {"limits": limits, "alone_s_per_bit": {"copy": 0.02e-9, "averaging": 0.15e-9, "outer_step": 0.8e-9}}


def test_constants_come_from_the_calibration_by_hand():
    constants = cal.network_constants(hand_calibration())
    assert constants["1gbit"]["link_bits_per_s"] == 1e9
    fields = constants["100mbit"]["fields"]
    # all_reduce: wire = mean(1.1e-9 * 1e9, 13e-9 * 1e8) = 1.2; CPU per tensor bit = the unlimited slope
    assert fields["all_reduce"].wire == pytest.approx(1.2)
    assert fields["all_reduce"].s_per_bit == pytest.approx(0.3e-9) and fields["all_reduce"].call_s == 2e-4
    # the logits' all_gather: wire mean(2, 1.8) = 1.9; CPU per gathered bit (2 ranks) = 1e-9 / 2
    assert fields["all_gather"].wire == pytest.approx(1.9) and fields["all_gather"].s_per_bit == pytest.approx(0.5e-9)
    # the checkpoint exchange: + 2 copies per gathered bit; the averaging: + torch's averager
    assert fields["exchange"].extra_s_per_bit == pytest.approx(2 * 0.02e-9)
    assert fields["averaging"].extra_s_per_bit == pytest.approx(0.15e-9)
    assert fields["outer_s_per_bit"] == 0.8e-9 and fields["ddp_s_per_bit"] == pytest.approx(2 * 0.02e-9)


def test_a_rows_prediction_does_not_move_with_its_measured_time():
    _, network = committed_part3()
    calibration = hand_calibration()
    before = cal.judge(network, calibration)
    changed = json.loads(json.dumps(network))
    for row in changed["models"][1]["rows"]:   # the 25.6M model's measured times per update, tripled
        if "compute only" not in row["method"]:
            row["seconds_per_step"] *= 3
    after = cal.judge(changed, calibration)
    assert [r["predicted_s"] for r in after] == [r["predicted_s"] for r in before]
    # the rows measured whole tripled (a periodic method's row is its compute-only input + its exchange / T)
    whole = [(b, a) for b, a in zip(before, after) if b["model"] == "25.6M"
             and (b["method"] in ("all_reduce", "predictions", "powersgd") or b.get("diagnostic"))]
    assert len(whole) == 3 * 6 and all(a["measured_s"] == pytest.approx(3 * b["measured_s"]) for b, a in whole)
    # nothing is fitted on rows: the leave-one-model-out error is the error
    assert all(r["held_out_error_pct"] == r["error_pct"] for r in after if not r.get("diagnostic"))


def test_an_all_reduce_row_by_hand():
    # 1M twin (1,000,661 parameters, 1 bucket) at 1gbit, compute-only 10 ms: ring of 2 moves b = 32,021,152
    # bits at 1 Gbit/s x wire 1.2 = 38.4 ms (CPU 0.3 ns/bit = 9.6 ms, overlapped), + 1 call of 0.2 ms,
    # + DDP's 2 copies at 0.02 ns/bit = 1.28 ms
    _, network = committed_part3()
    row = next(r for r in cal.part3_rows(network) if r["model"] == "1M" and r["limit"] == "1gbit")
    row["compute"]["all_reduce"] = 0.010
    b = 32 * 1_000_661
    net = cal.bench_network(row, cal.network_constants(hand_calibration()))
    predicted, _ = cal.predict_part3(row, net)
    assert predicted["all_reduce"] == pytest.approx(0.010 + 1.2 * b / 1e9 + 2e-4 + 2 * 0.02e-9 * b)


def test_leave_one_model_out_on_hand_numbers():
    # fit: the mean ratio y / x of the rows it is given; predict: x times that ratio
    rows = [{"model": "a", "x": 1.0, "y": 2.0}, {"model": "a", "x": 2.0, "y": 4.0},
            {"model": "b", "x": 1.0, "y": 3.0}, {"model": "c", "x": 4.0, "y": 20.0}]

    def fit(some):
        return sum(r["y"] / r["x"] for r in some) / len(some)
    predicted = cal.leave_one_model_out(rows, fit, lambda row, ratio: row["x"] * ratio)
    # a: fitted on b, c: (3 + 5) / 2 = 4; b: on a, a, c: (2 + 2 + 5) / 3 = 3; c: on a, a, b: (2 + 2 + 3) / 3
    assert predicted == pytest.approx([4.0, 8.0, 3.0, 4 * 7 / 3])


def test_compressed_prediction_bits_by_hand():
    transformer = next(w for w in sm.scenarios(0.4) if w.name == "transformer 229M")
    # 4096 tokens of a 32,000-word vocabulary: index bits 16 (<= 32768)
    assert sm.prediction_bits(transformer) == 4096 * 32000 * 32
    assert sm.prediction_bits(transformer, None, 8) == 4096 * (8 * 32000 + 32)
    assert sm.prediction_bits(transformer, 64, 32) == 4096 * 64 * (32 + 16)
    assert sm.prediction_bits(transformer, 64, 8) == 4096 * (64 * (8 + 16) + 32)
    assert sm.prediction_bits(transformer, 8, 8) == 4096 * (8 * 24 + 32)
    # ResNet-50: 64 examples of 1000 classes, index bits 16 (> 256)
    assert sm.prediction_bits(sm.RESNET50, 8, 32) == 64 * 8 * 48
    assert sm.prediction_bits(sm.RESNET50, 1000, 32) == 64 * 1000 * 32   # k = C: dense
    # in the grid: n = 2 models of 8 GPUs (16 GPUs, one server each): the exchange alone crosses, (n-1) b_pred
    grid = sm.predict_grid(0.4, links=(10,), gpus=(16,))
    row = next(r for r in grid if r["workload"] == "transformer 229M" and r["method"] == "predictions top-64 8-bit")
    assert row["inter_bits"] == 4096 * (64 * 24 + 32)


def test_calibration_summary_by_hand():
    from benchmarks.bench_calibration import summarise

    bits = [1e6, 2e6, 4e6]
    series = {kind: {"tiny_s": 1e-4, "bits": bits, "seconds": [0.001 + b * per for b in bits]}
              for kind, per in (("broadcast", 1e-9), ("all_reduce", 1.1e-9), ("all_gather_single", 2e-9),
                                ("all_gather", 2e-9))}
    raw = {"collectives": {"1gbit": series},
           "alone": {"params": [1000, 3000], "copy": [1e-6, 3e-6], "averaging": [0.0, 0.0], "outer_step": [0.0, 0.0]}}
    out = summarise(raw)
    assert out["limits"]["1gbit"]["link_bits_per_s"] == pytest.approx(1e9)
    fit = out["limits"]["1gbit"]["fits"]["all_reduce"]
    assert (fit["intercept_s"], fit["s_per_bit"], fit["call_s"]) == pytest.approx((0.001, 1.1e-9, 1e-4))
    # copy: 2e-6 s more for 2000 more parameters (64,000 bits)
    assert out["alone_s_per_bit"]["copy"] == pytest.approx(2e-6 / 64000)


def test_results_md_part6_is_this_codes_on_the_committed_parts():
    results, network = committed_part3()
    committed = results["parts"]["stepmodel"]["judged"]["rows"]
    table = cal.judge(network, results["parts"]["calibration"])
    per_update = [row for row in table if not row.get("diagnostic")]
    # all_reduce, predictions, checkpoints at 2 T; powersgd; localsgd and diloco at 2 H
    assert len(per_update) == 9 * sum(len(network["limits"]) for _ in network["models"])
    assert [r["method"] for r in committed] == [r["method"] for r in table]
    assert [r["predicted_s"] for r in committed] == pytest.approx([r["predicted_s"] for r in table], rel=1e-3)


def test_the_slides_within_15_percent_on_the_held_out_points():
    fit = sm.fit_slides((1, 8))
    assert abs(fit["error_pct"][2]) <= 15 and abs(fit["error_pct"][4]) <= 15
    assert fit["predicted_ms"][1] == pytest.approx(412) and fit["predicted_ms"][8] == pytest.approx(1593)


def test_diloco_pays_a_plain_all_reduce_not_torchs_averager():
    # 2 groups of one GPU, H = 4, 1 Mbit/s: the peers' all_reduce of 32,000 bits takes 32 ms; torch's
    # averager adds 1 us per bit (local SGD only), DiLoCo's outer step 2 us per bit
    net = sm.Network(inter_bits_per_s=1e6, inter_latency_s=0.0, gpus_per_server=1, outer_s_per_bit=2e-6,
                     averaging=sm.Overhead(extra_s_per_bit=1e-6))
    layout, b_model = sm.Layout(n=2, k=1, T=4), 32 * 1000
    assert sm.localsgd(layout, work(), net).seconds == pytest.approx(0.1 + (0.032 + 1e-6 * b_model) / 4)
    assert sm.diloco(layout, work(), net).seconds == pytest.approx(0.1 + (0.032 + 2e-6 * b_model) / 4)


# ---------------------------------------------------------------- compressed checkpoints, SparseLoCo, MuLoCo
def test_compressed_checkpoint_bits_by_hand():
    b_model = 32 * 1000
    layout = sm.Layout(n=3, k=4, T=10)   # NET: 4 GPUs per server, so the 3 peers are in 3 servers
    # 8 bits: 1000 codes of 1 byte + a float32 scale per 64 values (16 blocks): 8000 + 512 = 8512 bits
    assert sm.checkpoint_message_bits(1000, bits=8) == 8512
    cost = sm.compressed_checkpoints(layout, work(), NET, bits=8)
    assert cost.inter_bits == pytest.approx(2 * 8512 / 10) and cost.intra_bits == pytest.approx(2 * b_model)
    # 2 bits: 4 codes a byte, 250 bytes = 2000 bits + 512; 4 bits: 4000 + 512
    assert sm.checkpoint_message_bits(1000, bits=2) == 2512 and sm.checkpoint_message_bits(1000, bits=4) == 4512
    # sparse deltas, f = 0.01: one chunk of 1000 values (shorter than 4096), round(10) = 10 kept, an int16
    # index and a float32 value each: 480 bits; 10,000 values: 2 chunks of 4096 (41 each) + one of 1808 (18)
    assert sm.checkpoint_message_bits(1000, delta_fraction=0.01) == 10 * 48
    assert sm.checkpoint_message_bits(10_000, delta_fraction=0.01) == (41 + 41 + 18) * 48
    assert sm.compressed_checkpoints(layout, work(), NET, delta_fraction=0.01).inter_bits == pytest.approx(2 * 480 / 10)
    # sharded, 2 models x 4 GPUs at 8 bits: a shard of 250 values, 2000 + 4 scales = 2128 bits to the peer,
    # then the group's all_gather of both models' shards inside the server: (k-1) n x 2128
    sharded = sm.compressed_checkpoints(sm.Layout(n=2, k=4, T=10), work(), NET, bits=8, sharded=True)
    assert sharded.inter_bits == pytest.approx(2128 / 10)
    assert sharded.intra_bits == pytest.approx(2 * b_model + 3 * 2 * 2128 / 10)   # k - 1 = 3 ranks get both shards
    # time: 2 groups of one GPU, one a server, 1 Mbit/s, no latency, T = 4: 8512 bits to the peer = 8.512 ms
    net = sm.Network(inter_bits_per_s=1e6, inter_latency_s=0.0, gpus_per_server=1)
    assert sm.compressed_checkpoints(sm.Layout(n=2, k=1, T=4), work(), net, bits=8).seconds == pytest.approx(
        0.1 + 0.008512 / 4)


def test_compressed_checkpoints_at_32_bits_are_checkpoints():
    for layout in (sm.Layout(n=3, k=4, T=10), sm.Layout(n=2, k=2, T=10), sm.Layout(n=4, k=2, T=7)):
        assert sm.compressed_checkpoints(layout, work(), NET) == sm.checkpoints(layout, work(), NET)
        assert sm.compressed_checkpoints(layout, work(), NET, sharded=True) == sm.sharded_checkpoints(
            layout, work(), NET)   # 1000 parameters: k divides them, no padding
        # f = 1 sends every value with its index: 48 / 32 of the uncompressed exchange's bits
        full = sm.compressed_checkpoints(layout, work(), NET, delta_fraction=1.0)
        group = 2 * 32 * 1000 if layout.k > 1 else 0
        plain = sm.checkpoints(layout, work(), NET)
        assert full.inter_bits + full.intra_bits - group == pytest.approx(1.5 * (plain.inter_bits + plain.intra_bits
                                                                                 - group))


def test_compressed_checkpoint_bits_are_the_librarys():
    import torch

    from codistill import checkpoints
    from codistill.internals import quantize_blocks, top_k_chunks

    assert (sm.CHECKPOINT_BLOCK, sm.CHECKPOINT_DELTA_CHUNK) == (checkpoints.CHECKPOINT_BLOCK,
                                                                checkpoints.CHECKPOINT_DELTA_CHUNK)
    for values in (63, 1000, 4097, 399_329, 25_557_032):
        x = torch.zeros(values, device="meta")
        for bits in (2, 4, 8, 32):
            assert sm.checkpoint_message_bits(values, bits=bits) == quantize_blocks(x, bits, 64).wire_bits()
        for fraction in (0.0001, 0.01, 0.1, 1.0):
            assert sm.checkpoint_message_bits(values, delta_fraction=fraction) == top_k_chunks(
                x, fraction, 4096).wire_bits()


DIGITS_MLP = ((256, 64), (256,), (256, 256), (256,), (10, 256), (10,))   # tests/test_compressed_diloco.py


def tensors_work(shapes, **fields):
    params = sum(math.prod(shape) for shape in shapes)
    return sm.Workload("w", params, compute_s=0.1, logits_per_device=1, classes=1, teacher_forward_share=0.0,
                       tensors=shapes, **fields)


def test_sparseloco_bits_by_hand():
    # top 128 of 64 x 64, 2 bits; per tensor: indices, 2-bit codes in whole bytes, a table of 1 + 4 float32
    # (256, 64): 4 chunks of 64 x 64, 128 kept each: 512 x 16 (int16) + 128 bytes + 160 = 9376
    # (256,): 4 chunks of 64, round(64 x 128 / 4096) = 2 kept each: 8 x 8 (uint8) + 2 bytes + 160 = 240
    # (256, 256): 16 chunks, 2048 kept: 32768 + 512 bytes + 160 = 37024
    # (10, 256): 4 chunks of 10 x 64, round(20.0) = 20 kept each: 80 x 16 + 20 bytes + 160 = 1600
    # (10,): 1 chunk of 10, max(1, round(0.3125)) = 1 kept: 8 + 1 byte + 160 = 176
    expected = 9376 + 240 + 37024 + 240 + 1600 + 176
    assert expected == 48_656   # docs/frontier.md and tests/test_compressed_diloco.py: digits_mlp's outer step
    digits = tensors_work(DIGITS_MLP)
    assert sm.sparseloco_message_bits(digits) == expected
    # every update the group's all_reduce inside the server; every H = 5 (n-1) x the message across servers
    cost = sm.sparseloco(sm.Layout(n=3, k=4, T=5), digits, NET)
    assert cost.inter_bits == pytest.approx(2 * expected / 5) and cost.intra_bits == pytest.approx(2 * digits.model_bits)
    # time: 2 groups of one GPU, 1 Mbit/s, H = 4: the message to the peer (48.656 ms) and the outer step (1 ns
    # per model bit) every 4 updates
    net = sm.Network(inter_bits_per_s=1e6, inter_latency_s=0.0, gpus_per_server=1, outer_s_per_bit=1e-9)
    assert sm.sparseloco(sm.Layout(n=2, k=1, T=4), digits, net).seconds == pytest.approx(
        0.1 + (0.048656 + 1e-9 * 32 * 85_002) / 4)


def test_muloco_bits_and_time_by_hand():
    # 2 bits per value of each hidden weight's rows + 5 float32 per row; biases and the output layer float32
    # (256, 64): 32768 + 256 x 160 = 73728; (256, 256): 131072 + 40960 = 172032; (10, 256) and the biases:
    # 32 x (2560 + 256 + 256 + 10) = 98624
    expected = 73728 + 172032 + 98624
    assert expected == 344_384
    digits = tensors_work(DIGITS_MLP)
    assert sm.muloco_message_bits(digits) == expected
    assert sm.muloco(sm.Layout(n=3, k=4, T=5), digits, NET).inter_bits == pytest.approx(2 * expected / 5)
    # Muon: a convolution (4, 2, 3, 3) as 4 x 18 (the head, the last 2-D tensor (3, 64), stays AdamW's):
    # 5 iterations of 4 m^2 n + 2 m^3 with m = 4, n = 18: 5 x (1152 + 128) = 6400 FLOPs; at 6400 FLOPs per
    # 0.1 s of update it adds 0.1 s; without the update's FLOPs it is left out
    conv = tensors_work(((4, 2, 3, 3), (4,), (3, 64), (3,)), flops_per_update=6400 * 10)
    assert sm.muon_flops(conv) == 6400
    net = sm.Network(inter_bits_per_s=1e6, inter_latency_s=0.0, gpus_per_server=1)
    layout = sm.Layout(n=2, k=1, T=4)
    message = 8 * math.ceil(2 * 72 / 8) + 4 * 160 + 32 * (4 + 3 * 64 + 3)   # conv rows 2-bit, the rest float32
    assert sm.muloco_message_bits(conv) == message
    assert sm.muloco(layout, conv, net).seconds == pytest.approx(0.1 + 0.01 + message / 1e6 / 4)
    assert sm.muloco(layout, sm.replace(conv, flops_per_update=0.0), net).seconds == pytest.approx(
        0.1 + message / 1e6 / 4)


def test_every_value_in_32_bits_costs_an_all_gather_of_the_model():
    # SparseLoCo with top_k = 4096 of 64 x 64 and 32 bits, MuLoCo with 32 bits: the message is b_model, so
    # (n-1) b_model / H per device, the checkpoint exchange's all_gather (free teachers) plus the outer step
    digits = tensors_work(DIGITS_MLP)
    assert sm.sparseloco_message_bits(digits, top_k=4096, bits=32) == digits.model_bits
    assert sm.muloco_message_bits(digits, bits=32) == digits.model_bits
    net = sm.replace(NET, outer_s_per_bit=1e-9)
    for layout in (sm.Layout(n=3, k=4, T=5), sm.Layout(n=2, k=2, T=3), sm.Layout(n=8, k=1, T=15)):
        dense = sm.sparseloco(layout, digits, net, top_k=4096, bits=32)
        gather = sm.checkpoints(layout, digits, net)
        assert dense.inter_bits == pytest.approx(gather.inter_bits) and dense.intra_bits == pytest.approx(gather.intra_bits)
        assert dense.seconds == pytest.approx(gather.seconds + 1e-9 * digits.model_bits / layout.T)
        assert sm.muloco(layout, digits, net, bits=32) == dense


def codec_bits(codecs, sizes):
    """The bits of the parts compressed_diloco's codecs hand to the all_gather (encoded on meta tensors)."""
    import torch

    total = 0
    for codec, size in zip(codecs, sizes):
        parts, _ = codec.encode(torch.zeros(size, device="meta"))
        total += sum(part.numel() * part.element_size() * 8 for part in parts)
    return total


@pytest.mark.slow
def test_sparseloco_and_muloco_bits_are_the_engines_codecs():
    import torch

    from codistill_experiments.baselines.compressed_diloco import RowCodec, TopKCodec, output_layer

    settings = {DIGITS_MLP: [(128, 2), (4096, 32), (4096, 2), (1, 8), (128, 32)], sm.RESNET50.tensors: [(128, 2)]}
    for shapes, pairs in settings.items():
        sizes = [torch.Size(shape) for shape in shapes]
        numels = [size.numel() for size in sizes]
        workload = tensors_work(shapes)
        for top_k, bits in pairs:
            codecs = [TopKCodec(size, top_k, 64, bits, 6) for size in sizes]
            assert sm.sparseloco_message_bits(workload, top_k, 64, bits) == codec_bits(codecs, numels)
        for bits in (2, 32) if shapes == DIGITS_MLP else (2,):
            head = output_layer(sizes)
            codecs = [RowCodec(size, bits, 6, len(size) < 2 or i == head) for i, size in enumerate(sizes)]
            assert sm.muloco_message_bits(workload, bits) == codec_bits(codecs, numels)


def test_resnet50s_tensors_are_torchvisions():
    import torch
    torchvision = pytest.importorskip("torchvision")
    from codistill_experiments.job_cost import VISION_SHAPES

    with torch.device("meta"):
        model = torchvision.models.resnet50()
    assert sm.resnet50_tensors() == tuple(tuple(p.shape) for p in model.parameters())
    assert VISION_SHAPES["imagenet", "resnet50"] == (sm.RESNET50_FORWARD_FLOPS, sm.RESNET50.params)
    # with no tensors given, a workload's shapes are its matrices and one vector of the rest: the 53 batch
    # norms' 2 x 26,560 values and the classifier's 1000 biases
    assert sm.replace(sm.RESNET50, tensors=()).parameter_shapes == (*sm.resnet50_matrices(), (2 * 26_560 + 1000,))


def test_the_grid_prices_the_new_methods_without_moving_the_others():
    grid = sm.predict_grid(0.4, links=(10,), gpus=(16,))
    methods = {r["method"] for r in grid}
    assert {"sparseloco", "muloco", "checkpoints 8-bit", "sharded checkpoints delta 1%"} <= methods
    at = {(r["workload"], r["method"]): r for r in grid}
    # 2 models of 8 GPUs, one server each: only the exchange crosses, (n-1) x the message / period
    assert at["ResNet-50", "sparseloco"]["inter_bits"] == pytest.approx(
        sm.sparseloco_message_bits(sm.RESNET50) / sm.PERIOD_SPARSELOCO)
    assert at["ResNet-50", "checkpoints 2-bit"]["inter_bits"] == pytest.approx(
        sm.checkpoint_message_bits(sm.RESNET50.params, bits=2) / sm.PERIOD_CHECKPOINTS)


def test_docs_frontier_section_is_the_models_output():
    from benchmarks import bench_stepmodel

    section = "\n".join(bench_stepmodel.frontier_section())
    assert section in bench_stepmodel.FRONTIER_DOC.read_text(), "run `python -m benchmarks.bench_stepmodel`"


def test_the_models_defaults_are_the_method_configs():
    import yaml

    conf = Path(__file__).resolve().parents[1] / "src" / "conf" / "method"

    def method(name):
        return yaml.safe_load((conf / f"{name}.yaml").read_text())
    sparse, mu = method("sparseloco"), method("muloco")
    assert sm.SPARSELOCO == {key: sparse[key] for key in ("top_k", "chunk_size", "bits")}
    assert sm.MULOCO == {"bits": mu["bits"]}
    assert (sm.PERIOD_SPARSELOCO, sm.PERIOD_MULOCO, sm.PERIOD_DILOCO) == (
        sparse["period"], mu["period"], method("diloco")["period"])
    assert sm.POWERSGD_RANK == method("powersgd")["rank"]
