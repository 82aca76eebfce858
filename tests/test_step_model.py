"""src/codistill_experiments/step_model.py: collective costs and bits worked by hand, compressed prediction exchanges
included; its constants (step_model_calibration.py) taken from the calibration part alone, never from
part 3's times per update; the leave-one-model-out arithmetic; the committed part 6 reproduced."""
import json
from pathlib import Path

import pytest

from codistill_experiments import step_model as sm
from benchmarks import step_model_calibration as cal

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
        # the group's all_gather of the n-1 teachers' shards over k ranks: (k-1)(n-1) b_model / (k T)
        assert sharded.intra_bits - group == pytest.approx((k - 1) * (n - 1) * 32 * 1000 / (k * 10))


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
