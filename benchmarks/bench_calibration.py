"""The step-time model's constants, measured for that purpose (part "calibration" of `make bench`):
in part 3's two network namespaces joined by a veth pair (netns.py), one gloo rank in each, at each
rate part 3 shapes (no limit, 1 Gbit/s, 100 Mbit/s), each collective alone on plain tensors:

- the link rate: a broadcast (one rank sends |x|, the other receives it, no arithmetic) of four
  sizes; seconds against bits by least squares, the slope's inverse is the payload rate (an
  isend/irecv swap would not do: gloo serialises its two directions, at half the rate);
- all_reduce and all_gather (all_gather_single as the checkpoint exchange calls it: in place, in chunks
  of checkpoint_wire.CHUNK_ELEMENTS started together; all_gather into a list: what the prediction
  exchange calls) of the same sizes: their own slope per bit, at a shaped
  rate over the link's (the wire factor: how many times the ideal transfer gloo's algorithm takes),
  without a limit their CPU time per bit (the veth then moves bytes as fast as the CPU copies them);
- the per-call latency of each kind: the time per call of many calls back to back on a one-element
  tensor;

then, with no network (both ranks at once, as part 3 computes on both), the device time per bit of
the methods' own arithmetic, each on the real object on a one-rank group: a copy (copy_), torch's
PeriodicModelAverager (local SGD's flatten, divide, load) and DiLoCo's outer step (the engine's
methods.DiLoCo: parameter change, outer Nesterov SGD, loading), on the shape twins of 1M and 25.6M
parameters, slope per model bit. Every time is the fastest of REPEATS (_best_time).

Nothing above is a method's time per update: step_model_calibration.py builds the model's constants
from these numbers alone and judges them on part 3's rows. Last, a diagnostic that sets no constant:
how long torch's PowerSGD hook waits on its factors' all_reduces per update of the 1M twin, with two
ranks and on a one-rank group (powersgd_waits). Root only (skipped otherwise).

    sudo python -m benchmarks.bench_calibration   # from the repository root
"""
import contextlib
import json
import signal

import matplotlib.pyplot as plt

from . import step_model_calibration as cal
from .netns import LIMITS, TwoNodes, run_pair, shape, skip_reason
from .tables import save, table

KINDS = ("broadcast", "all_reduce", "all_gather_single", "all_gather")
SIZE_FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1)   # of the largest size
REPEATS = 5                                 # per size, the fastest
TINY_CALLS = 40                             # per kind and limit, back to back
ALONE_MODELS = ("1M", "25.6M")
POWERSGD_UPDATES = 100   # per window of the PowerSGD diagnostic (1M twin: ~20 ms each)


def largest_bits(rate, seconds, cap_bits):
    """The largest tensor of a limit's series: about `seconds` of transfer, at most cap_bits."""
    return int(min(cap_bits, seconds * (rate or 10e9)))


def fit_line(bits, seconds):
    """Least-squares (intercept s, slope s per bit) of seconds against bits."""
    import numpy as np

    slope, intercept = np.polyfit(np.asarray(bits, float), np.asarray(seconds, float), 1)
    return float(intercept), float(slope)


# ---------------------------------------------------------------- inside a namespace: one rank
def _collective(kind, tensor):
    """One call of `kind` on `tensor` (outputs allocated once per tensor)."""
    import torch
    import torch.distributed as dist

    if kind == "broadcast":
        return lambda: dist.broadcast(tensor, src=0)
    if kind == "all_reduce":
        return lambda: dist.all_reduce(tensor)
    if kind == "all_gather_single":   # as the checkpoint exchange calls it: in place, chunks started together
        from codistill.internals import chunk_lengths

        outputs, rank = [torch.zeros(2, length) for length in chunk_lengths(tensor.numel())], dist.get_rank()

        def call():
            for work in [dist.all_gather_single(out.view(-1), out[rank], async_op=True) for out in outputs]:
                work.wait()
        return call
    gathered = [torch.empty_like(tensor) for _ in range(2)]
    return lambda: dist.all_gather(gathered, tensor)


def _best_time(call, repeats):
    """The fastest of `repeats` timings (barrier to barrier): other processes on the machine only ever
    add time, and part 3, which the constants are judged on, ran on a nearly idle machine."""
    from .benchlib import timed_across_ranks

    return min(timed_across_ranks(call) for _ in range(repeats))


def _per_call_time(call, calls):
    """Seconds per call of `calls` calls back to back (the barriers around them paid once), the fastest
    of REPEATS windows."""
    def many():
        for _ in range(calls):
            call()
    return _best_time(many, REPEATS) / calls


def collectives(rank, spec):
    """Per limit and kind: the series (bits per rank's tensor, seconds) and the tiny calls' seconds."""
    import torch

    out = {}
    for limit, rate in LIMITS.items():
        shape(rate)
        top = largest_bits(rate, spec["seconds_per_size"], spec["cap_bits"])
        sizes = [int(top * f) // 32 for f in SIZE_FRACTIONS]
        out[limit] = {}
        for kind in KINDS:
            tiny = _per_call_time(_collective(kind, torch.zeros(1)), spec["tiny_calls"])
            series = [(32 * n, _best_time(_collective(kind, torch.zeros(n)), REPEATS)) for n in sizes]
            out[limit][kind] = {"tiny_s": tiny, "bits": [b for b, _ in series], "seconds": [s for _, s in series]}
    shape(None)
    return out


def alone(rank, spec):
    """Device time of the methods' arithmetic, no network: per model size, seconds of one copy of the
    parameters, one averaging by torch's averager and one DiLoCo outer step, on a one-rank group."""
    import types
    import warnings

    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.model_averaging import averagers

    from codistill import CommCounter
    from codistill_experiments.baselines.methods import DiLoCo
    from codistill_experiments.vision.workloads import mlp

    from .benchlib import count_params, twin_sizes

    own = [dist.new_group([r]) for r in range(dist.get_world_size())][rank]
    groups = types.SimpleNamespace(group=own, peers=own, group_spans_nodes=False, peers_span_nodes=False)
    diloco_cfg = {"period": 1, "n": 2, "outer_lr": 0.7, "outer_momentum": 0.9}   # diloco.yaml's outer step
    out = {"params": [], "copy": [], "averaging": [], "outer_step": []}
    for label in spec["alone_models"]:
        sizes = twin_sizes(spec["model_params"][label])
        model = mlp(list(sizes), 0)
        for parameter in model.parameters():   # torch's averager averages the parameters that have a gradient
            parameter.grad = torch.zeros_like(parameter)
        flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        target = torch.empty_like(flat)
        with warnings.catch_warnings():   # period 1: torch advises DDP instead; here it times one averaging
            warnings.simplefilter("ignore", UserWarning)
            averager = averagers.PeriodicModelAverager(period=1, warmup_steps=0, process_group=own)
        method = DiLoCo(diloco_cfg, groups, CommCounter())
        method.wrap(model)   # a one-rank group: the bare model, no DDP
        out["params"].append(count_params(sizes))
        out["copy"].append(_best_time(lambda: target.copy_(flat), REPEATS))
        out["averaging"].append(_best_time(lambda: averager.average_parameters(model.parameters()), REPEATS))
        out["outer_step"].append(_best_time(lambda: method.after_update(1), REPEATS))
    return out


class WaitedAllReduces:
    """Within `with`: the seconds each async all_reduce issued through `module`'s `dist` was waited on
    (from its issue to the end of its future's wait()), in `seconds`; the module is restored after."""

    def __init__(self, module):
        self.module, self.seconds = module, []

    def __enter__(self):
        import time
        import types

        real, seconds = self.module.dist, self.seconds

        def all_reduce(*args, **kwargs):
            work, issued = real.all_reduce(*args, **kwargs), time.perf_counter()
            if not kwargs.get("async_op"):
                return work

            def get_future():
                future = work.get_future()

                def wait():
                    value = future.wait()
                    seconds.append(time.perf_counter() - issued)
                    return value
                return types.SimpleNamespace(wait=wait, then=future.then, value=future.value)
            return types.SimpleNamespace(get_future=get_future, wait=work.wait)
        self.module.dist = types.SimpleNamespace(**{name: getattr(real, name) for name in dir(real)
                                                    if not name.startswith("__")})
        self.module.dist.all_reduce = all_reduce
        return self

    def __exit__(self, *exc):
        import torch.distributed

        self.module.dist = torch.distributed


def powersgd_waits(rank, spec):
    """A diagnostic of part 3's PowerSGD rows on the 1M twin (no constant of the model): per update, the
    time torch's powerSGD_hook waits on its P and Q all_reduces with the two ranks, and the same update
    on a one-rank group (part 3's compute-only run), in windows of `powersgd_updates` updates."""
    from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook

    from .bench_network import BATCH, compute_only
    from .bench_network_methods import WARMUP_UPDATES
    from .benchlib import TimedRank, layout, timed_across_ranks, twin_sizes, twin_workload

    updates = spec["powersgd_updates"]
    timed = TimedRank(spec["powersgd_container"], layout(1, 2, 1, rank),
                      twin_workload(twin_sizes(spec["model_params"]["1M"]), BATCH, n_batches=4), BATCH)
    timed.run(WARMUP_UPDATES["powersgd"])
    out = {"updates": updates}
    for name, alone_group in (("one-rank group", True), ("two ranks", False)):
        context = compute_only(timed, "powersgd") if alone_group else contextlib.nullcontext()
        with context, WaitedAllReduces(powerSGD_hook) as waited:
            timed.run(1)
            waited.seconds.clear()
            seconds = timed_across_ranks(lambda: timed.run(updates))
            out[name] = {"update_s": seconds / updates, "waits_s": sum(waited.seconds) / updates,
                         "waited_calls": len(waited.seconds) / updates}
    return out


def worker(rank, world, spec):
    return {"collectives": collectives(rank, spec), "alone": alone(rank, spec),
            "powersgd_waits": powersgd_waits(rank, spec)}


# ---------------------------------------------------------------- outside: the driver
def summarise(raw):
    """The constants the step model takes, from the raw series: per limit and kind (intercept, slope)
    of the fit, the tiny calls' latency, the link's payload rate (the broadcast's 1 / slope); per method
    arithmetic, seconds per model bit (slope over the model sizes)."""
    per_limit = {}
    for limit, kinds in raw["collectives"].items():
        fits = {kind: dict(zip(("intercept_s", "s_per_bit"), fit_line(v["bits"], v["seconds"])), call_s=v["tiny_s"])
                for kind, v in kinds.items()}
        per_limit[limit] = {"fits": fits, "link_bits_per_s": 1 / fits["broadcast"]["s_per_bit"]}
    bits = [32 * p for p in raw["alone"]["params"]]
    arithmetic = {name: fit_line(bits, raw["alone"][name])[1] for name in ("copy", "averaging", "outer_step")}
    return {"limits": per_limit, "alone_s_per_bit": arithmetic}


def _raise_on_sigterm(signum, frame):
    raise SystemExit(f"signal {signum}: cleaning up")


def run(seconds_per_size=0.3, cap_bits=32 * 2**24, tiny_calls=TINY_CALLS, timeout=600, progress=print):
    reason = skip_reason()
    if reason:
        progress(f"calibration: {reason}")
        return {"skipped": reason}
    from .bench_network import SIZES
    from .bench_network_methods import POWERSGD_OVERRIDES
    from .benchlib import compose

    spec = {"label": "calibration", "seconds_per_size": seconds_per_size, "cap_bits": cap_bits,
            "tiny_calls": tiny_calls, "alone_models": list(ALONE_MODELS), "model_params": SIZES,
            "powersgd_container": compose(list(POWERSGD_OVERRIDES)), "powersgd_updates": POWERSGD_UPDATES}
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    try:
        with TwoNodes() as nodes:
            progress(f"calibration: namespaces {', '.join(nodes.names)} joined by a veth pair")
            rank0, _ = run_pair(nodes, worker, spec, timeout)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return {"limits_shaped": LIMITS, "repeats": REPEATS, "size_fractions": list(SIZE_FRACTIONS), "raw": rank0,
            **summarise(rank0)}


# Part 3d of results.md: the collectives' fits per limit, the constants the model takes, the methods'
# arithmetic alone, the plot.

FIGURE_NAME = "calibration"
KIND_NAMES = {"broadcast": "broadcast (the link)", "all_reduce": "all_reduce",
              "all_gather_single": "chunked all_gather_single (checkpoints)", "all_gather": "all_gather (predictions)"}


def section(part, targets):
    if "skipped" in part:
        targets.append(("3d. calibration of the step-time model", "not run: " + part["skipped"], False,
                        "Cause: network namespaces and tc need root. Fix: run `make bench` as root."))
        return [f"Skipped: {part['skipped']}."]
    limits = part["limits"]
    fits = [[limit, KIND_NAMES[kind], f"{1000 * f['call_s']:.2f}", f"{1e9 * f['s_per_bit']:.3f}",
             f"{1 / f['s_per_bit'] / 1e9:.3g}", f"{1000 * f['intercept_s']:+.1f}",
             " / ".join(f"{1000 * s:,.0f}" for s in part["raw"]["collectives"][limit][kind]["seconds"])]
            for limit, at in limits.items() for kind, f in at["fits"].items()]
    constants = cal.constants_table(part)
    kinds = [[KIND_NAMES[kind], f"{c['wire']:.2f}", f"{1e9 * c['s_per_bit']:.3f}",
              " / ".join(f"{1000 * c['call_s'][limit]:.2f}" for limit in limits)]
             for kind, c in constants["collectives"].items()]
    alone = part["raw"]["alone"]
    arithmetic = [[name, " / ".join(f"{1000 * s:,.1f}" for s in alone[key]),
                   f"{1e9 * part['alone_s_per_bit'][key]:.3f}"]
                  for name, key in (("copy (copy_)", "copy"), ("torch's averager (local SGD)", "averaging"),
                                    ("DiLoCo's outer step (methods.DiLoCo)", "outer_step"))]
    sizes = " and ".join(f"{p:,}" for p in alone["params"])
    return ["Measured for the step-time model (section 6) and for nothing else: part 3's two namespaces and veth, "
            "one gloo rank in each, each collective alone on plain tensors of four sizes (the largest ~0.3 s of "
            f"transfer, at most 64 MiB; the fastest of {part['repeats']} calls per size: other processes only add "
            "time, and part 3 ran on a nearly idle machine), seconds against the bits of each rank's tensor fitted by "
            "least squares, and the per-call latency as the time per call of one-element calls back to back (the "
            "fastest of as many windows). The link's payload rate is the broadcast's (one direction, no "
            "arithmetic) 1 / slope.", "",
            table(["limit", "collective", "per call (ms)", "slope (ns/bit)", "1/slope (Gbit/s)", "intercept (ms)",
                   "times of the 4 sizes (ms)"], fits), "",
            "Constants the model takes (step_model_calibration.py): per collective, the **wire factor** (its slope at "
            "1 Gbit/s and 100 Mbit/s times the link rate, mean of the two: the times the ideal 2-rank transfer of "
            "each rank's tensor it takes; gloo's all_gathers take ~2 where all_reduce takes ~1), its **CPU time per "
            "bit** (its slope without a limit, where the veth moves bytes as fast as a copy, overlapping the "
            "transfer: the larger of the two counts) and its **per-call latency** at each limit (no limit / 1 Gbit/s "
            "/ 100 Mbit/s):", "",
            table(["collective", "wire factor", "CPU ns per bit", "per call (ms)"], kinds), "",
            "The methods' own arithmetic, no network, both ranks at once (as in part 3), on the shape twins of "
            f"{sizes} parameters (each on the real object on a one-rank group; slope per model bit). The checkpoint exchange "
            f"adds {cal.EXCHANGE_COPIES_PER_GATHERED_BIT} copies per gathered bit (its 4 copies of the model), DDP "
            f"{cal.DDP_COPIES_PER_BIT} per gradient bit (into its buckets and back):", "",
            table(["work", "seconds at the two sizes (ms)", "ns per model bit"], arithmetic)]


def plot(part, path):
    limits = list(part["limits"])
    fig, axes = plt.subplots(1, len(limits), figsize=(4.2 * len(limits), 3.6))
    for ax, limit in zip(axes, limits):
        for kind, series in part["raw"]["collectives"][limit].items():
            fit = part["limits"][limit]["fits"][kind]
            bits = [b / 1e6 for b in series["bits"]]
            line, = ax.plot(bits, [1000 * s for s in series["seconds"]], "o", label=KIND_NAMES[kind])
            ax.plot(bits, [1000 * (fit["intercept_s"] + fit["s_per_bit"] * 1e6 * b) for b in bits], "-",
                    color=line.get_color(), lw=0.8)
        ax.set_title(f"limit: {limit}")
        ax.set_xlabel("Mbit per rank's tensor")
    axes[0].set_ylabel("ms per call (points: fastest; lines: fit)")
    axes[0].legend(fontsize=7)
    save(fig, path)


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
