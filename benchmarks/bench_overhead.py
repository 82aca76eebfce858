"""Engine overhead: time per update of engine.train_step on 2 gloo ranks on this machine (one
thread each), same model (the ResNet-50 twin) and per-rank batch for every method, measured
side by side in one run, in interleaved rounds:

    independent      2 models, one rank each, nothing exchanged
    predictions      2-way codistillation, logits all_gathered every update (T = 1)
    checkpoints      2-way codistillation, parameters all_gathered every 50 updates; every
                     update runs the stale peer forward on the rank's batch. The updates between
                     exchanges and the exchange itself are timed apart (short windows interleave
                     better): an update at T = 50 costs between + exchange / 50
    all_reduce       1 model over both ranks (DDP)

Also timed alone: the teacher's forward pass on the batch (the checkpoint method's extra compute),
and, as a diagnostic, independent training with a 4-byte all_reduce per update (the cost of
synchronising the ranks at every update, without any data to exchange).

    python -m benchmarks.bench_overhead [--rounds 3]
"""
import argparse

import matplotlib.pyplot as plt
import torch
import torch.distributed as dist

from .benchlib import (
    RESNET50_TWIN,
    TimedRank,
    compose,
    count_params,
    layout,
    median,
    spawn,
    timed_across_ranks,
    twin_workload,
)
from .tables import save, table

CHECKPOINT_PERIOD = 50
METHODS = {  # name -> (overrides, (n_groups, ranks_per_group))
    "independent": (["method=independent", "method.n=2"], (2, 1)),
    "predictions": (["method=codistill", "method.exchange=predictions", "method.period=1"], (2, 1)),
    # the updates between exchanges (the exchange itself is timed apart)
    "checkpoints": (["method=codistill", "method.exchange=checkpoints", "method.period=1000000000"], (2, 1)),
    "all_reduce": (["method=allreduce", "scale.ranks_per_model=2"], (1, 2)),
}


class SyncOnly:
    """A diagnostic: independent training plus one 4-byte all_reduce per update, i.e. the
    synchronisation of an exchange every update without its data."""

    def __init__(self, group):
        self.group, self.flag = group, torch.zeros(1)

    def teachers_logits(self, step, inputs, logits):   # in the place of the run's Codistiller
        dist.all_reduce(self.flag, group=self.group)
        return []


def _rank(rank, world, sizes, batch, rounds, steps, containers):
    workload = twin_workload(sizes, batch, n_batches=8)
    ranks = {name: TimedRank(containers[name], layout(*METHODS[name][1], 1, rank), workload, batch) for name in METHODS}
    ranks["independent_synchronised"] = TimedRank(containers["independent"], layout(2, 1, 1, rank), workload, batch)
    ranks["independent_synchronised"].state.codistiller = SyncOnly(ranks["independent_synchronised"].state.groups.peers)
    for timed in ranks.values():
        timed.run(2)  # warm-up (the checkpoint exchange's first refresh happens here)
    teacher = ranks["checkpoints"].state.codistiller.teachers[0]
    inputs = ranks["checkpoints"].batches[0][0]

    def teacher_forwards():
        with torch.no_grad():
            for _ in range(steps):
                teacher(inputs)

    checkpoints = ranks["checkpoints"].state.codistiller
    names = list(ranks)
    times = {name: [] for name in [*names, "teacher_forward", "checkpoint_exchange"]}
    for round_index in range(rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]  # rotate: no fixed position
        for name in order:
            times[name].append(timed_across_ranks(lambda: ranks[name].run(steps)) / steps)
        times["teacher_forward"].append(timed_across_ranks(teacher_forwards) / steps)
        # update 0 is an exchange point at any period: one exchange, now
        times["checkpoint_exchange"].append(timed_across_ranks(lambda: checkpoints.refresh(0)))
    return times


def run(rounds=8, steps=5, batch=32, progress=print):
    progress(f"overhead: 2 gloo ranks, ResNet-50 twin, batch {batch} per rank, {rounds} interleaved rounds")
    containers = {name: compose(overrides) for name, (overrides, _) in METHODS.items()}
    per_rank = spawn(2, _rank, list(RESNET50_TWIN), batch, rounds, steps, containers)
    times = per_rank[0]  # every window starts and ends on a barrier: both ranks saw the same times
    times["checkpoints_between"] = times.pop("checkpoints")
    times["checkpoints"] = [between + exchange / CHECKPOINT_PERIOD for between, exchange in
                            zip(times["checkpoints_between"], times["checkpoint_exchange"])]
    step = {name: median(values) for name, values in times.items()}

    def per_round_median(ratio):
        """Ratios are taken inside each round (windows minutes apart see different loads), then
        the median over rounds."""
        return median([ratio(**{name: values[index] for name, values in times.items()}) for index in range(rounds)])

    return {"model_params": count_params(RESNET50_TWIN), "batch_per_rank": batch, "rounds": rounds,
            "steps_per_window": steps, "checkpoint_period": CHECKPOINT_PERIOD, "per_round": times,
            "median_step_s": step,
            "ratio_to_independent": {name: per_round_median(lambda **t: t[name] / t["independent"])
                                     for name in [*METHODS, "independent_synchronised"]},
            "forward_share_of_checkpoint_step": per_round_median(lambda **t: t["teacher_forward"] / t["checkpoints"]),
            "checkpoints_minus_forward_ratio": per_round_median(
                lambda **t: (t["checkpoints"] - t["teacher_forward"]) / t["independent"])}


# Part 2 of results.md: the table, the targets, the cause of a miss, the plot.

def overhead_why(part, method):
    times, rounds = part["per_round"], range(part["rounds"])
    load = f"the load average went from {part['load_before'][0]:.1f} to {part['load_after'][0]:.1f} during this part"
    synchronised = part["ratio_to_independent"]["independent_synchronised"]
    if synchronised > 1.05:
        sync = (f"Independent training plus nothing but a 4-byte all_reduce per update cost {synchronised:.3f}x "
                "independent in the same run: meeting at every update costs that much by itself here, since each "
                "rank then waits for the slower one and other processes deschedule them at random. ")
    else:
        sync = (f"Synchronising alone (the diagnostic row, {synchronised:.3f}x) cost nothing measurable in this run. ")
    if method == "predictions":
        return ("Cause: " + sync + f"The logits themselves are 128 KB per update; {load}. Fix: an idle machine, one "
                "core per rank; in training, a period T > 1 removes the per-update synchronisation point "
                "(paper Sec. 3).")
    share = lambda key: median([times[key][i] / times["independent"][i] for i in rounds])  # noqa: E731
    residual = [(times["checkpoints_between"][i] - times["teacher_forward"][i] - times["independent"][i])
                / times["independent"][i] for i in rounds]
    exchange = median([times["checkpoint_exchange"][i] / part["checkpoint_period"] / times["independent"][i]
                       for i in rounds])
    return (f"Cause: per round, an update between exchanges cost {share('checkpoints_between'):.2f}x independent, of "
            f"which the teacher's forward pass explains {share('teacher_forward'):.2f}; the exchange adds "
            f"{exchange:.2f} per update at T = 50 (the all_gathers of the 102 MB parameter vector and the copies "
            "into and out of the exchange's buffers, on the same two cores). The rest of an update between "
            "exchanges ranged from " + f"{min(residual):+.2f} to {max(residual):+.2f} of an independent update "
            f"across rounds and was not isolated further; {load}. " + sync + "Fix: a longer period (the "
            "paper's T >= 625), and an idle machine to judge 5 %.")


OVERHEAD_ROWS = [("independent", "independent (2 models, nothing exchanged)"),
                 ("predictions", "predictions, T = 1"),
                 ("checkpoints", "checkpoints, T = 50 (between + exchange / 50)"),
                 ("all_reduce", "all_reduce (1 model on both ranks)"),
                 ("checkpoints_between", "  checkpoints: an update between exchanges"),
                 ("checkpoint_exchange", "  checkpoints: one exchange (parameters all_gathered)"),
                 ("teacher_forward", "  checkpoints: the teacher's forward pass"),
                 ("independent_synchronised", "diagnostic: independent + a 4-byte all_reduce per update")]


def section(part, targets):
    step, ratio = part["median_step_s"], part["ratio_to_independent"]
    body = [[label, f"{1000 * step[name]:.1f}", f"{ratio[name]:.3f}x" if name in ratio else "",
             ", ".join(f"{1000 * v:.0f}" for v in part["per_round"][name])] for name, label in OVERHEAD_ROWS]
    lines = [f"2 gloo ranks on this machine (one thread each), ResNet-50 twin, batch {part['batch_per_rank']} per "
             f"rank, engine.train_step in {part['rounds']} interleaved rounds (windows of {part['steps_per_window']} "
             "updates; the checkpoint exchange timed once per round). Median over rounds.",
             "", table(["method", "ms per update (median)", "vs independent (median of per-round ratios)",
                        "per round (ms)"], body), "",
             f"The teacher's forward pass is {100 * part['forward_share_of_checkpoint_step']:.1f} % of a checkpoint "
             f"update; checkpoints minus that forward: {part['checkpoints_minus_forward_ratio']:.3f}x independent.",
             "", "With other processes on the machine (load average below) the per-round times spread widely (last "
             "column) and these ratios move by several per cent between runs of this command; the diagnostic row "
             "shows what synchronising the ranks at every update costs by itself under the same conditions."]
    met = ratio["predictions"] <= 1.05
    targets.append(("2. overhead: predictions (T = 1) <= 1.05x independent", f"{ratio['predictions']:.3f}x", met,
                    None if met else overhead_why(part, "predictions")))
    met = part["checkpoints_minus_forward_ratio"] <= 1.05
    targets.append(("2. overhead: checkpoints (T = 50) <= 1.05x independent + the teacher's forward",
                    f"{part['checkpoints_minus_forward_ratio']:.3f}x (forward share "
                    f"{100 * part['forward_share_of_checkpoint_step']:.1f} %)", met,
                    None if met else overhead_why(part, "checkpoints")))
    return lines


def plot(part, path):
    step = part["median_step_s"]
    names = ["independent", "predictions", "checkpoints", "all_reduce"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.bar(names, [1000 * step[n] for n in names], color="tab:blue")
    ax.bar(["checkpoints"], [1000 * step["teacher_forward"]], color="tab:orange", label="of which: teacher forward")
    ax.set_ylabel("ms per update (median over rounds)")
    ax.set_title(f"Engine overhead, 2 gloo ranks, ResNet-50 twin, batch {part['batch_per_rank']}/rank")
    ax.legend()
    save(fig, path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    result = run(parser.parse_args().rounds)
    for name, seconds in result["median_step_s"].items():
        ratio = result["ratio_to_independent"].get(name)
        print(f"{name:>16}: {1000 * seconds:8.1f} ms" + (f"  {ratio:.3f}x independent" if ratio else ""))
    print(f"checkpoints minus the teacher's forward: {result['checkpoints_minus_forward_ratio']:.3f}x independent "
          f"(forward share {100 * result['forward_share_of_checkpoint_step']:.1f} %)")
