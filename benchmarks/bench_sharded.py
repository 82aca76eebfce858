"""Part 3, sharded: the checkpoint exchanges with two ranks per model, one model group per node.

The same two namespaces as bench_network.py, now with two gloo ranks in each: a 2-way
codistillation job of the ResNet-50 twin laid out as 2 model groups x 2 ranks, each model group in
its own namespace (its ranks talk over the namespace's loopback, the groups over the veth pair).
At each limit, one exchange of `checkpoints` (each rank all_gathers the whole vector with its peer
in the other node) and of `sharded_checkpoints` (each rank its half with its peer, then the model
group assembles the halves inside the node), side by side, with the bytes the node's eth0 sent
(tx_bytes) beside the sum of its ranks' inter-node counters. Run by bench_network.run; needs root
as it does.
"""
RANKS_PER_NODE = 2
EXCHANGES = ("checkpoints", "sharded_checkpoints")
LIMITS = ("none", "1gbit")  # 100 Mbit/s sends MTU-sized frames: headers, not the exchange (part 3)


def containers():
    from benchlib import compose

    k = RANKS_PER_NODE
    return {exchange: compose(["method=codistill", f"method.exchange={exchange}", "method.period=1000000000",
                               f"scale.ranks_per_model={k}", f"scale.ranks_per_node={k}"])
            for exchange in EXCHANGES}


def worker(rank, world, spec):
    """One rank: for each exchange, the job's rank state (engine.build_rank_state), one exchange
    timed at each limit, barrier to barrier."""
    import torch.distributed as dist

    from bench_network import BATCH, LIMITS as RATES, shape, tx_counters
    from benchlib import TimedRank, layout, timed_across_ranks, twin_workload

    k = RANKS_PER_NODE
    workload = twin_workload(spec["sizes"], BATCH, n_batches=1)

    def limit_to(rate):
        if rank % k == 0:  # one rank per node shapes the node's eth0
            shape(rate)
        dist.barrier()

    rows = []
    for exchange in EXCHANGES:
        limit_to(None)
        timed = TimedRank(spec["containers"][exchange], layout(2, k, k, rank), workload, BATCH)
        timed.run(1)  # DDP's set-up and the first exchange (update 0); the period is 10**9
        counter = timed.state.counter
        for limit in spec["limits"]:
            limit_to(RATES[limit])
            inter, intra, sent = counter.inter_node_bits, counter.intra_node_bits, tx_counters()[0]
            seconds = timed_across_ranks(timed.state.exchange.refresh)
            rows.append({"exchange": exchange, "limit": limit, "seconds": seconds,
                         "node_wire_bytes": tx_counters()[0] - sent, "inter_bits": counter.inter_node_bits - inter,
                         "intra_bits": counter.intra_node_bits - intra})
        del timed
    limit_to(None)
    return {"rows": rows}


def measure(nodes, run_pair, spec, timeout, progress):
    """Every rank's rows, merged per (exchange, limit): the slowest rank's seconds, each node's
    wire bytes and the sum of its ranks' counters."""
    k = RANKS_PER_NODE
    spec = {**spec, "kind": "sharded", "containers": containers(), "limits": list(LIMITS)}
    progress(f"network: 2 nodes x {k} ranks, one model group per node: checkpoints vs sharded_checkpoints")
    per_rank = run_pair(nodes, spec, timeout, ranks_per_node=k)
    rows = []
    for index, first in enumerate(per_rank[0]["rows"]):
        ranks = [result["rows"][index] for result in per_rank]
        nodes_of = [ranks[node * k:(node + 1) * k] for node in range(2)]
        rows.append({"exchange": first["exchange"], "limit": first["limit"],
                     "seconds": max(r["seconds"] for r in ranks),
                     "node_wire_bytes": [node[0]["node_wire_bytes"] for node in nodes_of],
                     "node_inter_bits": [sum(r["inter_bits"] for r in node) for node in nodes_of],
                     "node_intra_bits": [sum(r["intra_bits"] for r in node) for node in nodes_of]})
        progress(f"  network sharded: {first['exchange']:<20} {first['limit']:>6}: "
                 f"{1000 * rows[-1]['seconds']:8.1f} ms, node 0 sent {rows[-1]['node_wire_bytes'][0] / 1e6:.3f} MB "
                 f"(counters {rows[-1]['node_inter_bits'][0] / 8e6:.3f} MB)")
    return {"ranks_per_node": k, "params": spec["params"], "rows": rows}


def report(part, targets):
    """results.md lines for this comparison; appends its target to `targets`."""
    from bench_report import table

    k, b_model = part["ranks_per_node"], 32 * part["params"]
    body, deviations, sent = [], [], {}
    for row in part["rows"]:
        wire, inter = row["node_wire_bytes"], [bits / 8 for bits in row["node_inter_bits"]]
        node_deviation = [w / c - 1 for w, c in zip(wire, inter)]
        if row["exchange"] == "sharded_checkpoints":
            deviations += node_deviation
        sent[row["exchange"], row["limit"]] = sum(wire)
        body.append([row["exchange"], row["limit"], f"{1000 * row['seconds']:.0f}",
                     " / ".join(f"{w / 1e6:.3f}" for w in wire), " / ".join(f"{c / 1e6:.3f}" for c in inter),
                     " / ".join(f"{100 * d:+.2f}" for d in node_deviation),
                     " / ".join(f"{bits / 8e6:.3f}" for bits in row["node_intra_bits"])])
    ratios = sorted(sent["checkpoints", limit] / sent["sharded_checkpoints", limit] for _, limit in sent)
    fewer = f"{ratios[0]:.2f}" + (f"-{ratios[-1]:.2f}" if f"{ratios[-1]:.2f}" != f"{ratios[0]:.2f}" else "")
    worst = max(abs(d) for d in deviations)
    met = worst <= 0.02
    targets.append(("3. network: sharded exchange's inter-server bytes (veth tx_bytes) = its counters within 2 %",
                    f"worst {100 * worst:.2f} %; {fewer}x fewer bytes than checkpoints", met,
                    None if met else "Cause: bytes on eth0 that no counter charges (frame headers, gloo's own "
                    "messages) beyond 2 % of the exchange. Fix: see the table's per-node bytes."))
    return [f"Two ranks per node: 2 model groups x {k} ranks of the {part['params']:,}-parameter twin, each model "
            "group in its own namespace (the group's collectives stay on the namespace's loopback, the peers' cross "
            "the veth), one exchange each, side by side at each limit (bench_sharded.py). Per node (node 0 / node "
            "1): the bytes its eth0 sent (tx_bytes) and the sum of its ranks' counters. Expected per node and "
            f"exchange: checkpoints k (n-1) b_model = {k * b_model / 8e6:.3f} MB between nodes; sharded_checkpoints "
            f"(n-1) b_model = {b_model / 8e6:.3f} MB between nodes (each rank (n-1) b_model / k) and (k-1) n "
            f"b_model = {(k - 1) * 2 * b_model / 8e6:.3f} MB inside the node.", "",
            table(["exchange", "limit", "ms per exchange", "eth0 sent (MB)", "inter-node counters (MB)",
                   "wire vs counters (%)", "intra-node counters (MB)"], body), "",
            f"On the wire the sharded exchange sent {fewer}x fewer bytes between nodes than "
            f"the unsharded one (k = {k})."]
