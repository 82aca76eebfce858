"""Part 3's other methods, which bench_network.py measures in the same two namespaces with the same
harness: PowerSGD, local SGD and DiLoCo beside all_reduce and codistillation; their section, 3c of
results.md, is drawn here (section, plot) from what bench_network.py stored under part 3.

- powersgd: one model over both ranks, DDP with torch's PowerSGD hook at powersgd.yaml's rank (2),
  start_iter 2 (torch's smallest with error feedback): the harness's two warm-up updates are plain
  all_reduce, every measured update is compressed. Compute only: the same update with the same hook
  on a one-rank group (`alone`), so the compression (error feedback, the factors' matmuls,
  orthogonalisation) is in it, as the teacher's forward pass is in checkpoints' compute-only time.
- localsgd, diloco: 2 groups of 1 rank; the updates between averagings (no collective at all: their
  compute-only time) and one averaging (DiLoCo: one outer step: the outer gradient's all_reduce and
  the outer Nesterov step) timed apart, as part 3 does for checkpoints; at period H an update costs
  between + averaging / H, reported for H = 16 (localsgd.yaml's default, ours) and H = 500
  (diloco.yaml's, the DiLoCo paper's).
"""
import matplotlib.pyplot as plt

from codistill_experiments import step_model as sm

from .tables import fmt_bits, legend_below, save, table

POWERSGD_OVERRIDES = ("method=powersgd", "method.start_iter=2")
METHOD_LAYOUTS = (("all_reduce", (1, 2)), ("predictions", (2, 1)), ("checkpoints", (2, 1)),
                  ("powersgd", (1, 2)), ("localsgd", (2, 1)), ("diloco", (2, 1)))   # (n groups, k ranks)
TIMED_APART = {"checkpoints": "exchange", "localsgd": "averaging", "diloco": "outer step"}
PERIODIC = TIMED_APART
AVERAGING_PERIODS = (16, 500)
# PowerSGD: past start_iter (2) and its first compressed update, which allocates the error-feedback
# and warm-start memories (seen: a one-update window of the 100M twin 50 % slower when it was first)
WARMUP_UPDATES = {"powersgd": 3}
NEVER = 1_000_000_000   # the period of the runs whose exchange is timed apart: none between


def method_containers(compose):
    return {"powersgd": compose(list(POWERSGD_OVERRIDES)),
            "localsgd": compose(["method=localsgd", f"method.period={NEVER}"]),
            "diloco": compose(["method=diloco", f"method.period={NEVER}"])}


def alone(timed):
    """PowerSGD's update without its collectives: the model in a DDP over a one-rank group with its own
    PowerSGD state and the engine's hook, so that the compression runs as in the real update and
    every all_reduce is local. Made once (both ranks make the one-rank groups together), then
    warmed past start_iter so that every timed update compresses."""
    if getattr(timed, "alone", None) is None:
        import types

        import torch
        import torch.distributed as dist

        from codistill import CommCounter
        from codistill_experiments.baselines.methods import ONE_BUCKET_MB, PowerSGD, counted_powersgd_hook

        own = [dist.new_group([rank]) for rank in range(dist.get_world_size())][dist.get_rank()]
        method = PowerSGD(timed.cfg.method, types.SimpleNamespace(group=own, group_spans_nodes=False), CommCounter())
        timed.alone = torch.nn.parallel.DistributedDataParallel(timed.state.model, process_group=own,
                                                                bucket_cap_mb=ONE_BUCKET_MB)
        timed.alone.register_comm_hook(method, counted_powersgd_hook)
        saved, timed.state.trainable = timed.state.trainable, timed.alone
        timed.run(WARMUP_UPDATES["powersgd"])
        timed.state.trainable = saved
    return timed.alone


def periodic_call(timed, method):
    """One exchange of `method` through the engine's own objects (and their counters), now."""
    if method == "checkpoints":
        state = timed.state   # update 0 is an exchange point at any period: one exchange, now
        return lambda: state.codistiller.refresh(0)
    own = timed.state.method
    if method == "diloco":
        return lambda: own.after_update(own.period)

    def average():  # torch's PeriodicModelAverager averages when its step count says so
        own.averager.step = own.averager.warmup_steps
        own.after_update(None)
    return average


# Part 3c of results.md, from what bench_network.py measured for these methods: time per update of
# every method at every link speed, the bits counted against the formulas and the bytes on the wire,
# the plot of time per update against link speed.

FIGURE_NAME = "network_methods"


def method_times(model, limit):
    """Time per update of every method of part 3 at `limit` (seconds): measured directly (all_reduce,
    predictions T=1, powersgd) or between + apart / period (checkpoints, localsgd, diloco)."""
    t = {r["method"]: r["seconds_per_step"] for r in model["rows"] if r["limit"] == limit}
    out = {"all_reduce": t["all_reduce"], "predictions T=1": t["predictions"]}
    out |= {f"checkpoints T={T}": t["checkpoints, compute only"] + t["checkpoints, exchange"] / T for T in (50, 625)}
    if "powersgd" in t:
        out["powersgd"] = t["powersgd"]
        for method in ("localsgd", "diloco"):
            out |= {f"{method} H={H}": t[f"{method}, compute only"] + t[f"{method}, {TIMED_APART[method]}"] / H
                    for H in AVERAGING_PERIODS}
    return out


def counted_bits(model, limit):
    """Bits per update per rank from the engine's counters (inter-node), and the bytes on the wire."""
    rows = {r["method"]: r for r in model["rows"] if r["limit"] == limit}
    out = {"powersgd": (rows["powersgd"]["counter_bits_per_step"], rows["powersgd"]["wire_bytes_per_step"])}
    for method in ("localsgd", "diloco"):
        apart = rows[f"{method}, {TIMED_APART[method]}"]
        out |= {f"{method} H={H}": (apart["counter_bits_per_step"] / H, apart["wire_bytes_per_step"] / H)
                for H in AVERAGING_PERIODS}
    return out


def expected_bits(model, rank):
    """The engine's convention: PowerSGD 2 x 32 x the elements it all_reduces; averaging 2 b_model / H."""
    sizes = model["sizes"]
    work = sm.Workload(model["label"], model["params"], 0.0, 0, matrices=tuple(zip(sizes[1:], sizes[:-1])))
    out = {"powersgd": 2 * 32 * sm.powersgd_elements(work, rank)[0]}
    return out | {f"{m} H={H}": 2 * 32 * model["params"] / H for m in ("localsgd", "diloco") for H in AVERAGING_PERIODS}


def section(part, targets):
    if "skipped" in part:
        return [f"Skipped: {part['skipped']}."]
    limits = list(part["limits"])
    measured = [m for m in part["models"] if any(r["method"] == "powersgd" for r in m["rows"])]
    if not measured:
        return ["Not measured in the part 3 of results.json (it predates the new methods)."]
    names = list(method_times(measured[0], limits[0]))
    body, bits_body = [], []
    for model in measured:
        expected = expected_bits(model, part["powersgd_rank"])
        for limit in limits:
            times = method_times(model, limit)
            body.append([model["label"], limit, *[f"{1000 * times[n]:,.0f} ({times['all_reduce'] / times[n]:.2f}x)"
                                                  for n in names]])
            counted = counted_bits(model, limit)
            bits_body.append([model["label"], limit, *[f"{fmt_bits(counted[n][0])} / "
                                                       f"{fmt_bits(expected[n])} / {8 * counted[n][1] / 1e6:.3g}"
                                                       for n in counted]])
            bits_cols = list(counted)
    return ["PowerSGD, local SGD and DiLoCo in the same namespaces and harness as the table above "
            f"(bench_network_methods.py): PowerSGD at rank {part['powersgd_rank']}, start_iter 2, so every measured "
            "update is compressed, its time measured directly; local SGD and DiLoCo with 2 groups of one rank, the "
            "updates between averagings and one averaging (DiLoCo: one outer step) timed apart, an update at "
            f"period H costing between + averaging / H, for H = {AVERAGING_PERIODS[0]} (localsgd.yaml's default, "
            f"ours) and H = {AVERAGING_PERIODS[1]} (diloco.yaml's, the DiLoCo paper's). Per cell: ms per update "
            "(speed-up over all_reduce, same per-rank batch).", "",
            table(["model", "limit", *names], body), "",
            "Bits per update per rank between the nodes: the engine's counter / the formula (PowerSGD: 2 x 32 x "
            "the elements torch's hook all_reduces, its rank-r factors of each weight matrix and the biases "
            "whole; averaging: 2 b_model / H) / Mbit on the wire (eth0 tx_bytes; gloo's ring of 2 sends b_model "
            "each way where the convention charges 2 b_model):", "",
            table(["model", "limit", *bits_cols], bits_body)]


def plot(part, path):
    link = part["link_bits_per_s"]
    models = [m for m in part["models"] if any(r["method"] == "powersgd" for r in m["rows"])]
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(4.6 * max(1, len(models)), 4.2), squeeze=False)
    if not models:
        axes[0, 0].text(0.5, 0.5, "not measured in this part 3", ha="center")
    for ax, model in zip(axes[0], models):
        times = {limit: method_times(model, limit) for limit in part["limits"]}
        rates = [link[limit] / 1e9 for limit in part["limits"]]
        for name in times[next(iter(times))]:
            style = "--" if name.startswith(("checkpoints", "predictions")) else "-"
            ax.plot(rates, [1000 * times[limit][name] for limit in part["limits"]], style, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{model['label']} parameters")
        ax.set_xlabel("measured link rate (Gbit/s)")
    axes[0, 0].set_ylabel("ms per update")
    if models:  # below the panels: inside one, it covered the all_reduce line of the 100M panel
        legend_below(fig, axes[0, 0])
    fig.suptitle("Time per update against link speed, two simulated nodes (veth + tc tbf), one gloo rank each")
    save(fig, path)
