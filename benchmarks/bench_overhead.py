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

import torch
import torch.distributed as dist

from .benchlib import (RESNET50_TWIN, TimedRank, compose, count_params, layout, median, spawn, timed_across_ranks,
                       twin_workload)

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    result = run(parser.parse_args().rounds)
    for name, seconds in result["median_step_s"].items():
        ratio = result["ratio_to_independent"].get(name)
        print(f"{name:>16}: {1000 * seconds:8.1f} ms" + (f"  {ratio:.3f}x independent" if ratio else ""))
    print(f"checkpoints minus the teacher's forward: {result['checkpoints_minus_forward_ratio']:.3f}x independent "
          f"(forward share {100 * result['forward_share_of_checkpoint_step']:.1f} %)")
