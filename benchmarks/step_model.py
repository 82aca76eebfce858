"""A step-time model past one machine: time and bits per update of all_reduce and of codistillation
(predictions, checkpoints, sharded checkpoints) for n model groups x k GPUs per group, from a
compute time per update and a collective cost model (bandwidth term + latency term).

Bits follow the engine's counting convention (src/codistill/exchange.py, module docstring; restated
here so that nothing heavy is imported): each collective is charged per device the traffic of a
bandwidth-optimal algorithm on the tensor handed to it, all_reduce of x costs 2|x| and all_gather of x
over m ranks (m-1)|x|, to the inter-server counter when the group spans servers, else the intra one.

Time follows what the collectives do on a cluster of servers of g GPUs sharing one NIC each:
hierarchical all_reduce (inside the server over its fast links, then a ring or a tree across servers
carrying the whole gradient through each server's NIC), and all_gathers across servers whose
traffic from all g GPUs of a server shares that NIC. No overlap of communication with compute.

Extension point: a method is a function (layout, workload, network) -> Cost in METHODS. Local SGD,
DiLoCo and PowerSGD do not exist in the engine yet and are not modelled; each would be one more such
function (local SGD / DiLoCo: a full all_reduce every H updates; PowerSGD: all_reduce of the rank-r
factors instead of the gradient).

    python benchmarks/step_model_report.py   # writes section 6 of results.md and its figure
"""
import math
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Overhead:
    """How far one collective kind is from the ideal model (ideal: the defaults). Its bandwidth time
    is scaled by `wire`; `s_per_bit` x payload bits of CPU work (copies, reductions on one CPU thread)
    adds to it, or overlaps it (the larger of the two counts) when `overlap`; `call_s` is a fixed
    cost per call."""
    wire: float = 1.0
    s_per_bit: float = 0.0
    call_s: float = 0.0
    overlap: bool = False

    def apply(self, ideal_s, bits, calls=1):
        cpu = self.s_per_bit * bits
        busy = max(self.wire * ideal_s, cpu) if self.overlap else self.wire * ideal_s + cpu
        return busy + self.call_s * calls


@dataclass(frozen=True)
class Network:
    inter_bits_per_s: float            # one NIC per server (payload rate)
    inter_latency_s: float = 10e-6     # per message step of a collective across servers
    intra_bits_per_s: float = 1.2e12   # NVLink-class, per GPU
    intra_latency_s: float = 5e-6
    gpus_per_server: int = 8
    algorithm: str = "ring"            # all_reduce across servers: "ring", "tree" or "best"
    all_reduce: Overhead = field(default_factory=Overhead)
    all_gather: Overhead = field(default_factory=Overhead)    # the logits' all_gather
    exchange: Overhead = field(default_factory=Overhead)      # a checkpoint exchange's (flatten, gather, load)


@dataclass(frozen=True)
class Workload:
    name: str
    params: int
    compute_s: float                   # one update on one GPU (forward, backward, optimizer), measured
    logits_per_device: int             # values per device per update (batch x classes, or tokens x vocab)
    value_bits: int = 32
    teacher_forward_share: float = 1 / 3   # a teacher's forward pass, as a share of compute_s
    bucket_bytes: int = 25 * 2**20     # DDP's default bucket: one all_reduce call per bucket

    @property
    def model_bits(self):
        return self.value_bits * self.params

    @property
    def buckets(self):
        return max(1, math.ceil(self.params * self.value_bits / 8 / self.bucket_bytes))


@dataclass(frozen=True)
class Layout:
    n: int          # model groups
    k: int          # GPUs per group
    T: int = 1      # exchange period (updates)


@dataclass(frozen=True)
class Cost:
    seconds: float
    inter_bits: float   # per device per update, the engine's convention
    intra_bits: float


# ---------------------------------------------------------------- collective cost models
def ring_all_reduce_s(bits, ranks, bits_per_s, latency_s):
    """Ring: reduce-scatter then all_gather, 2(m-1) steps each moving bits/m."""
    if ranks <= 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * bits / bits_per_s + 2 * (ranks - 1) * latency_s


def tree_all_reduce_s(bits, ranks, bits_per_s, latency_s):
    """Pipelined (double binary) tree: reduce then broadcast, 2 bits through each link, 2 log2 m steps."""
    if ranks <= 1:
        return 0.0
    return 2 * bits / bits_per_s + 2 * math.ceil(math.log2(ranks)) * latency_s


def ring_all_gather_s(bits_each, ranks, bits_per_s, latency_s):
    """Ring all_gather of bits_each per rank: m-1 steps, each moving bits_each."""
    if ranks <= 1:
        return 0.0
    return (ranks - 1) * bits_each / bits_per_s + (ranks - 1) * latency_s


def servers(ranks, net):
    return math.ceil(ranks / net.gpus_per_server)


def all_reduce_s(bits, ranks, net, calls=1):
    """Hierarchical all_reduce of `bits` over `ranks` GPUs in `calls` calls (DDP buckets)."""
    inside, across = min(ranks, net.gpus_per_server), servers(ranks, net)
    t = calls * ring_all_reduce_s(bits / calls, inside, net.intra_bits_per_s, net.intra_latency_s)
    across_s = 0.0
    if across > 1:
        args = (bits / calls, across, net.inter_bits_per_s, net.inter_latency_s)
        ring, tree = ring_all_reduce_s(*args), tree_all_reduce_s(*args)
        across_s = calls * {"ring": ring, "tree": tree, "best": min(ring, tree)}[net.algorithm]
    return t + net.all_reduce.apply(across_s, bits, calls)


def peer_all_gather_s(bits_each, peers, sharing_nic, net, crosses=True, overhead=None):
    """all_gather of bits_each over `peers` ranks (one per model group); `sharing_nic` GPUs of a
    server do the same at once through its NIC."""
    if peers <= 1:
        return 0.0
    if not crosses:
        return ring_all_gather_s(bits_each, peers, net.intra_bits_per_s, net.intra_latency_s)
    ideal = ring_all_gather_s(bits_each * sharing_nic, peers, net.inter_bits_per_s, net.inter_latency_s)
    return (overhead or net.all_gather).apply(ideal, bits_each * peers)


# ---------------------------------------------------------------- methods
def _group_all_reduce(layout, work, net):
    """The all_reduce inside each model group: (seconds, inter bits, intra bits) per update."""
    k = layout.k
    if k <= 1:
        return 0.0, 0.0, 0.0
    bits = 2 * work.model_bits
    crosses = k > net.gpus_per_server
    return all_reduce_s(work.model_bits, k, net, work.buckets), bits * crosses, bits * (not crosses)


def _peers_cross(layout, net):
    return layout.n * layout.k > net.gpus_per_server


def all_reduce(layout, work, net):
    """One model on all n*k GPUs (the baseline: n and T are ignored)."""
    single = Layout(n=1, k=layout.n * layout.k)
    t, inter, intra = _group_all_reduce(single, work, net)
    return Cost(work.compute_s + t, inter, intra)


def predictions(layout, work, net):
    """Every T updates each device all_gathers its logits with its n-1 peers: (n-1) b_pred / T."""
    t, inter, intra = _group_all_reduce(layout, work, net)
    b_pred = work.logits_per_device * work.value_bits
    crosses = _peers_cross(layout, net)
    share = min(layout.k, net.gpus_per_server)
    t += peer_all_gather_s(b_pred, layout.n, share, net, crosses) / layout.T
    bits = (layout.n - 1) * b_pred / layout.T
    return Cost(work.compute_s + t, inter + bits * crosses, intra + bits * (not crosses))


def _teacher_compute(layout, work):
    return work.compute_s * (1 + (layout.n - 1) * work.teacher_forward_share)


def checkpoints(layout, work, net):
    """Every T updates each device all_gathers the whole parameter vector with its n-1 peers:
    (n-1) b_model / T; every update it runs the n-1 stale teachers forward."""
    t, inter, intra = _group_all_reduce(layout, work, net)
    crosses = _peers_cross(layout, net)
    share = min(layout.k, net.gpus_per_server)
    t += peer_all_gather_s(work.model_bits, layout.n, share, net, crosses, net.exchange) / layout.T
    bits = (layout.n - 1) * work.model_bits / layout.T
    return Cost(_teacher_compute(layout, work) + t, inter + bits * crosses, intra + bits * (not crosses))


def sharded_checkpoints(layout, work, net):
    """Each of the k ranks all_gathers only its 1/k shard with its peers ((n-1) b_model / (k T)),
    then the model group all_gathers the n-1 teachers' shards over k ranks ((k-1)(n-1) b_model / (k T),
    inside the server when k <= g)."""
    t, inter, intra = _group_all_reduce(layout, work, net)
    n, k, T = layout.n, layout.k, layout.T
    shard = work.model_bits / k
    crosses = _peers_cross(layout, net)
    share = min(k, net.gpus_per_server)
    t += peer_all_gather_s(shard, n, share, net, crosses, net.exchange) / T
    peer_bits = (n - 1) * shard / T
    group_crosses = k > net.gpus_per_server
    group_bits = (k - 1) * (n - 1) * shard / T
    if group_crosses:
        t += peer_all_gather_s((n - 1) * shard, k, 1, net, True) / T
    else:
        t += ring_all_gather_s((n - 1) * shard, k, net.intra_bits_per_s, net.intra_latency_s) / T
    inter += peer_bits * crosses + group_bits * group_crosses
    intra += peer_bits * (not crosses) + group_bits * (not group_crosses)
    return Cost(_teacher_compute(layout, work) + t, inter, intra)


METHODS = {"all_reduce": all_reduce, "predictions": predictions, "checkpoints": checkpoints,
           "sharded checkpoints": sharded_checkpoints}


# ---------------------------------------------------------------- calibration on part 3
PERIODS = (50, 625)


def part3_rows(network_part):
    """Measured inputs and times per update of part 3, one dict per (model, limit)."""
    out = []
    link = network_part["link_bits_per_s"]
    for model in network_part["models"]:
        times = {(r["method"], r["limit"]): r["seconds_per_step"] for r in model["rows"]}
        for limit in network_part["limits"]:
            t = lambda method: times[method, limit]  # noqa: E731
            out.append({"model": model["label"], "params": model["params"], "limit": limit, "link": link[limit],
                        "compute": {"all_reduce": t("all_reduce, compute only"),
                                    "predictions": t("predictions, compute only"),
                                    "checkpoints": t("checkpoints, compute only")},
                        "measured": {"all_reduce": t("all_reduce"), "predictions": t("predictions"),
                                     **{f"checkpoints T={T}": t("checkpoints, compute only")
                                        + t("checkpoints, exchange") / T for T in PERIODS}},
                        "exchange": t("checkpoints, exchange"),
                        "batch": network_part["batch_per_rank"]})
    return out


def bench_network(row, all_reduce=Overhead(), all_gather=Overhead(), exchange=Overhead()):
    """Part 3's setting: one rank per 'server', the veth at its measured rate (no added latency: netem
    was not available), no intra-server links."""
    return Network(inter_bits_per_s=row["link"], inter_latency_s=0.0, gpus_per_server=1,
                   all_reduce=all_reduce, all_gather=all_gather, exchange=exchange)


def predict_part3(row, net):
    """Time per update for each method of part 3 (2 models x 1 rank), from its measured compute time.
    Checkpoints: the measured update between exchanges already contains the teacher's forward."""
    wl = lambda compute: Workload(row["model"], row["params"], compute,  # noqa: E731
                                  logits_per_device=row["batch"] * 1000, teacher_forward_share=0.0)
    layout = Layout(n=2, k=1, T=1)
    exchange = checkpoints(layout, wl(0.0), net).seconds
    out = {"all_reduce": all_reduce(layout, wl(row["compute"]["all_reduce"]), net).seconds,
           "predictions": predictions(layout, wl(row["compute"]["predictions"]), net).seconds}
    for T in PERIODS:
        out[f"checkpoints T={T}"] = row["compute"]["checkpoints"] + exchange / T
    return out, exchange


# fitted constants, in units that keep the fit well conditioned: (name, unit)
FITTED = (("all_reduce: wire factor", 1.0), ("all_reduce: CPU ns per bit", 1e-9),
          ("all_reduce: ms per call", 1e-3), ("logits' all_gather: wire factor", 1.0),
          ("logits' all_gather: ms per call", 1e-3), ("checkpoint exchange: wire factor", 1.0),
          ("checkpoint exchange: CPU ns per bit", 1e-9))


def overheads(x):
    x = [v * unit for v, (_, unit) in zip(x, FITTED)]
    return {"all_reduce": Overhead(x[0], x[1], x[2], overlap=True), "all_gather": Overhead(x[3], 0.0, x[4]),
            "exchange": Overhead(x[5], x[6])}


def fit_part3(rows):
    """Seven fitted constants (FITTED), least squares on the relative error of every time per update of
    part 3 (all_reduce, predictions T=1, checkpoints T=50 and T=625). gloo's all_reduce overlaps its
    reductions with the transfer (its CPU term and wire term: the larger counts); the checkpoint
    exchange's flatten and load add to its all_gather. Measured inputs: compute-only times, link rates."""
    from scipy.optimize import least_squares

    def residuals(x):
        out = []
        for row in rows:
            predicted, _ = predict_part3(row, bench_network(row, **overheads(x)))
            out += [predicted[name] / measured - 1 for name, measured in row["measured"].items()]
        return out

    x = least_squares(residuals, [1, 0.1, 0.1, 1, 0.1, 1, 0.1], bounds=(0, np.inf)).x
    return {"x": [float(v) for v in x], **overheads(x)}


def calibrate(network_part, fitted=None):
    """Predicted vs measured time per update for every row of part 3."""
    rows = part3_rows(network_part)
    fitted = fitted or fit_part3(rows)
    table = []
    for row in rows:
        net = bench_network(row, fitted["all_reduce"], fitted["all_gather"], fitted["exchange"])
        predicted, exchange = predict_part3(row, net)
        for name, measured in row["measured"].items():
            table.append({"model": row["model"], "limit": row["limit"], "method": name, "measured_s": measured,
                          "predicted_s": predicted[name], "error_pct": 100 * (predicted[name] / measured - 1)})
        table.append({"model": row["model"], "limit": row["limit"], "method": "one checkpoint exchange",
                      "measured_s": row["exchange"], "predicted_s": exchange,
                      "error_pct": 100 * (exchange / row["exchange"] - 1), "diagnostic": True})
    return fitted, table


def leave_one_model_out(network_part):
    """Worst |error| per update on each model when the constants are fitted on the other models only."""
    rows = part3_rows(network_part)
    worst = {}
    for model in {r["model"] for r in rows}:
        fitted = fit_part3([r for r in rows if r["model"] != model])
        held = {**network_part, "models": [m for m in network_part["models"] if m["label"] == model]}
        _, table = calibrate(held, fitted)
        worst[model] = max(abs(r["error_pct"]) for r in table if not r.get("diagnostic"))
    return worst


# ---------------------------------------------------------------- the authors' slides
SLIDES_MS = {1: 412, 2: 956, 4: 1568, 8: 1593}   # 229M-parameter transformer, all_reduce, 8 GPUs/node
TRANSFORMER_PARAMS = 229_000_000
SLIDES_NET = Network(inter_bits_per_s=10e9, inter_latency_s=25e-6)   # Ethernet; rate fitted below


def fit_slides(fit_on=(1, 8), net=SLIDES_NET, params=TRANSFORMER_PARAMS):
    """Fits the compute time per update and the inter-server payload rate (t is linear in compute
    and in 1 / rate) on the slides' points `fit_on`; latencies and NVLink rate are assumed."""
    g = net.gpus_per_server
    work = Workload("transformer 229M", params, 0.0, logits_per_device=0)
    rows, target = [], []
    for nodes in fit_on:
        fixed = all_reduce(Layout(1, nodes * g), work, replace(net, inter_bits_per_s=math.inf)).seconds
        across = servers(nodes * g, net)
        bandwidth_bits = (2 * (across - 1) / across if net.algorithm == "ring" else 2 * (across > 1)) \
            * work.model_bits
        rows.append([1.0, bandwidth_bits])
        target.append(SLIDES_MS[nodes] / 1000 - fixed)
    (compute, inverse_rate), *_ = np.linalg.lstsq(np.array(rows), np.array(target), rcond=None)
    fitted_net = replace(net, inter_bits_per_s=1 / inverse_rate)
    work = replace(work, compute_s=compute)
    predicted = {nodes: 1000 * all_reduce(Layout(1, nodes * g), work, fitted_net).seconds for nodes in SLIDES_MS}
    return {"compute_s": compute, "inter_bits_per_s": 1 / inverse_rate, "fit_on": list(fit_on),
            "predicted_ms": predicted,
            "error_pct": {nodes: 100 * (predicted[nodes] / SLIDES_MS[nodes] - 1) for nodes in SLIDES_MS}}


# ---------------------------------------------------------------- predictions up to 4096 GPUs
LINKS_GBIT = (10, 25, 100, 400)
GPUS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
RESNET50 = Workload("ResNet-50", 25_557_032, compute_s=0.100, logits_per_device=64 * 1000)
PERIOD_CHECKPOINTS, PERIOD_PREDICTIONS = 625, 1
EFFICIENCY = 0.9   # payload rate / nominal link rate, assumed
PER_SERVER = "predictions, n = N/8"   # one model per server: no all_reduce across servers at all


def scenarios(transformer_compute_s):
    transformer = Workload("transformer 229M", TRANSFORMER_PARAMS, transformer_compute_s,
                           logits_per_device=4096 * 32000)
    return [RESNET50, transformer]


def predict_grid(transformer_compute_s, links=LINKS_GBIT, gpus=GPUS, n=2):
    """Time per update of each method, n models of N/n GPUs (all_reduce: one model on N), and the
    speed-up over all_reduce at equal samples per second (same per-GPU batch, same N)."""
    out = []
    for work in scenarios(transformer_compute_s):
        for gbit in links:
            net = Network(inter_bits_per_s=EFFICIENCY * gbit * 1e9, algorithm="best")
            for total in gpus:
                base = all_reduce(Layout(n, total // n), work, net)
                runs = [(name, method, Layout(n, total // n, PERIOD_PREDICTIONS if name == "predictions"
                                              else PERIOD_CHECKPOINTS)) for name, method in METHODS.items()]
                g = net.gpus_per_server
                runs.append((PER_SERVER, predictions, Layout(max(1, total // g), min(total, g), PERIOD_PREDICTIONS)))
                for name, method, layout in runs:
                    cost = method(layout, work, net)
                    out.append({"workload": work.name, "link_gbit": gbit, "gpus": total, "method": name,
                                "seconds": cost.seconds, "inter_bits": cost.inter_bits,
                                "intra_bits": cost.intra_bits, "speedup": base.seconds / cost.seconds})
    return out
