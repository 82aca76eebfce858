"""benchmarks/step_model.py: collective costs and bits worked by hand; the calibration
(step_model_calibration.py) recovering times the model made itself, and reproducing the committed
calibration of benchmarks/results.json."""
import json
from pathlib import Path

import pytest

from benchmarks import step_model as sm
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
    return sm.Workload("w", params, compute_s=0.1, logits_per_device=logits, teacher_forward_share=0.0)


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


def test_the_fit_recovers_times_made_by_the_model_itself():
    # Part 3's measured inputs (compute-only times, link rates, sizes), with times per update made by the
    # model from known constants: the fit must reproduce every one of them (the 15 % target on the real
    # measurements is a benchmark target, stated met or missed in results.md, not a unit test).
    _, network = committed_part3()
    truth = cal.network_fields([1.1, 0.3, 0.5, 1.2, 2.0, 1.3, 0.2, 1.05, 0.15, 0.5])
    rows = cal.part3_rows(network)
    for row in rows:
        row["measured"], _ = cal.predict_part3(row, cal.bench_network(row, truth))
    fitted = cal.fit_part3(rows)
    for row in rows:
        predicted, _ = cal.predict_part3(row, cal.bench_network(row, fitted["fields"]))
        for name, made in row["measured"].items():
            assert predicted[name] == pytest.approx(made, rel=0.01), (row["model"], row["limit"], name)


def test_results_md_calibration_is_this_codes_on_the_committed_part3():
    results, network = committed_part3()
    fitted, table = cal.calibrate(network)
    per_update = [row for row in table if not row.get("diagnostic")]
    # all_reduce, predictions, checkpoints at 2 T; powersgd; localsgd and diloco at 2 H
    assert len(per_update) == 9 * sum(len(network["limits"]) for _ in network["models"])
    committed = results["parts"]["stepmodel"]["calibration"]["rows"]
    assert [r["method"] for r in committed] == [r["method"] for r in table]
    assert [r["predicted_s"] for r in committed] == pytest.approx([r["predicted_s"] for r in table], rel=1e-3)


def test_the_slides_within_15_percent_on_the_held_out_points():
    fit = sm.fit_slides((1, 8))
    assert abs(fit["error_pct"][2]) <= 15 and abs(fit["error_pct"][4]) <= 15
    assert fit["predicted_ms"][1] == pytest.approx(412) and fit["predicted_ms"][8] == pytest.approx(1593)
