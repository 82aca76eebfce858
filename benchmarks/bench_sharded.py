"""Part 3b of `make bench`: the checkpoint exchanges of the 25.6M twin on part 3's simulated network.

The same two namespaces as part 3 (netns.py: a veth pair, egress shaped by tc tbf), at no limit and
1 Gbit/s, each exchange timed alone (barrier to barrier, the slowest rank), with the bytes each
node's eth0 sent (tx_bytes) beside the sum of its ranks' inter-node counters:
    1 rank per node     `checkpoints` between two single-rank models (part 3's layout): its time
                        against bytes / bandwidth
    2 ranks per node    2 model groups x 2 ranks, one model group per namespace (its ranks talk over
                        the namespace's loopback, the groups over the veth): `checkpoints` (each
                        rank all_gathers the whole vector with its peer in the other node) and
                        `sharded_checkpoints` (each rank its half, then the group assembles the
                        halves inside the node), side by side
Both are bound by the link, not the CPU, so they are steady on a busy machine, unlike part 3's
compute-only comparisons. Needs root, as part 3 does (skipped with a message otherwise).

    python -m benchmarks.bench --parts sharded
"""
LAYOUTS = ((1, ("checkpoints",)), (2, ("checkpoints", "sharded_checkpoints")))  # ranks per node, exchanges
LIMITS = ("none", "1gbit")  # 100 Mbit/s sends MTU-sized frames: headers, not the exchange (part 3)


def containers(k):
    from .benchlib import compose

    return {exchange: compose(["method=codistill", f"method.exchange={exchange}", "method.period=1000000000",
                               f"scale.ranks_per_model={k}", f"scale.ranks_per_node={k}"])
            for exchange in dict(LAYOUTS)[k]}


def worker(rank, world, spec):
    """One rank: for each exchange, the job's rank state (engine.build_rank_state), then one
    exchange timed at each limit."""
    import torch.distributed as dist

    from .bench_network import BATCH
    from .benchlib import TimedRank, layout, timed_across_ranks, twin_workload
    from .netns import LIMITS as RATES, shape, tx_counters

    k = spec["ranks_per_node"]
    workload = twin_workload(spec["sizes"], BATCH, n_batches=1)

    def limit_to(rate):
        if rank % k == 0:  # one rank per node shapes the node's eth0
            shape(rate)
        dist.barrier()

    rows = []
    for exchange, container in spec["containers"].items():
        limit_to(None)
        timed = TimedRank(container, layout(2, k, k, rank), workload, BATCH)
        timed.run(1)  # DDP's set-up and the first exchange (update 0); the period is 10**9
        counter = timed.state.counter
        for limit in spec["limits"]:
            limit_to(RATES[limit])
            inter, intra, sent = counter.inter_node_bits, counter.intra_node_bits, tx_counters()[0]
            state = timed.state   # update 0 is an exchange point at any period: one exchange, now
            seconds = timed_across_ranks(lambda: state.codistiller.refresh(0))
            rows.append({"exchange": exchange, "limit": limit, "seconds": seconds,
                         "node_wire_bytes": tx_counters()[0] - sent, "inter_bits": counter.inter_node_bits - inter,
                         "intra_bits": counter.intra_node_bits - intra})
        del timed
    limit_to(None)
    return {"rows": rows}


def merged_rows(per_rank, k):
    """Per (exchange, limit): the slowest rank's seconds, each node's wire bytes (read by its
    first rank) and the sums of its ranks' counters."""
    rows = []
    for index, first in enumerate(per_rank[0]["rows"]):
        nodes = [[result["rows"][index] for result in per_rank[node * k:(node + 1) * k]] for node in range(2)]
        rows.append({"ranks_per_node": k, "exchange": first["exchange"], "limit": first["limit"],
                     "seconds": max(r["seconds"] for node in nodes for r in node),
                     "node_wire_bytes": [node[0]["node_wire_bytes"] for node in nodes],
                     "node_inter_bits": [sum(r["inter_bits"] for r in node) for node in nodes],
                     "node_intra_bits": [sum(r["intra_bits"] for r in node) for node in nodes]})
    return rows


def run(progress=print, timeout=600):
    from . import netns
    from .benchlib import RESNET50_PARAMS, count_params, twin_sizes

    reason = netns.skip_reason()
    if reason:
        progress(f"sharded: {reason}")
        return {"skipped": reason}
    widths = twin_sizes(RESNET50_PARAMS)
    result = {"params": count_params(widths), "limits": {limit: netns.LIMITS[limit] for limit in LIMITS},
              "rows": []}
    with netns.TwoNodes() as nodes:
        for k, _ in LAYOUTS:
            progress(f"sharded: 2 nodes x {k} rank(s), {result['params']:,} parameters")
            spec = {"label": f"25.6M, {k} rank(s) per node", "sizes": list(widths),
                    "ranks_per_node": k, "containers": containers(k), "limits": list(LIMITS)}
            rows = merged_rows(netns.run_pair(nodes, worker, spec, timeout, ranks_per_node=k), k)
            for row in rows:
                progress(f"  sharded: {k} per node, {row['exchange']:<20} {row['limit']:>6}: "
                         f"{1000 * row['seconds']:8.1f} ms, node 0 sent {row['node_wire_bytes'][0] / 1e6:.3f} MB "
                         f"(counters {row['node_inter_bits'][0] / 8e6:.3f} MB)")
            result["rows"] += rows
    return result
