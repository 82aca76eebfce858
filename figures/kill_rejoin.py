"""Independent model jobs, a model killed and rejoining: the numbers that benchmarks/bench_modeljobs.py
measured (part "modeljobs" of benchmarks/results.json), summarised as mean ± standard deviation over
seeds, and the tables and reading that both benchmarks/results.md and the reproduction report show.
The report reads results.json as a file: figures sit below benchmarks and import nothing from them.

One seed's measurements (raw, as bench_modeljobs.py stores them), each a run of the same mini job:
  files, files_killed        2-way codistillation, checkpoints through files (method.transport=files,
                             async), uninterrupted / model 1 SIGKILLed at ~50 % and restarted
  allreduce, allreduce_killed  all_reduce on two ranks, uninterrupted / its whole job SIGKILLed at
                             ~50 % and rerun
  collectives                the codistillation of `files` with its checkpoints over collectives
each holding per model (lists in model order) "top1" (final), "bits" (final comm_bits_inter_node),
"wall_time" (the engine's, of its end record: a resumed attempt goes on from the wall time of the
state it resumed from, so neither the time down nor the work done again counts), and for files runs
"finish_s" (launch to the model's last evaluation, every attempt and the delay included);
"command_s" (launch to the last command's exit), "updates" (per model) and "load_before" (the load
average when the run started). A killed run adds "kill_step_estimate" (the update at the kill, from
the pace), "resumed_from_step", and for files "down_s" (its down record) and
"survivor_s_per_update" (model 0's pace while both trained and while model 1 was down) and
"overlap_s" (how long before model 0's last evaluation model 1 restarted; negative: after it).
"""
import json
import statistics

from .paths import BENCH_RESULTS

PART = "modeljobs"
TITLE = "Independent model jobs: a model killed and rejoining (mini)"


def mean_std(values):
    """(mean, standard deviation over the values with n - 1: seeds are a sample); 0.0 for one value."""
    values = [float(value) for value in values]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def lost_times(seed):
    """Seconds each way of running lost to the kill, for one seed:
    survivor: model 0's wall time in the killed run less its wall time uninterrupted;
    killed_model: model 1's time from the launch to its last evaluation, killed less uninterrupted;
    allreduce: from the launch to the end of the rerun (the delay and both attempts) less the
    uninterrupted command's time."""
    return {"survivor": seed["files_killed"]["wall_time"][0] - seed["files"]["wall_time"][0],
            "killed_model": seed["files_killed"]["finish_s"][1] - seed["files"]["finish_s"][1],
            "allreduce": seed["allreduce_killed"]["command_s"] - seed["allreduce"]["command_s"]}


def over_seeds(part, value):
    """mean_std of value(seed) over the part's seeds."""
    return mean_std([value(seed) for seed in part["seeds"]])


def pm(stat, digits=2):
    mean, std = stat
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def signed(stat, digits=2):
    mean, std = stat
    return f"{mean:+.{digits}f} ± {std:.{digits}f}"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def top1_rows(part):
    """(run, model, uninterrupted, killed and restarted, killed - uninterrupted) in points of top-1."""
    rows = []
    for label, run, killed, models in (("codistillation, model jobs (files, async)", "files", "files_killed",
                                        ("model 0 (survivor)", "model 1 (killed)")),
                                       ("all_reduce", "allreduce", "allreduce_killed", ("its one model",))):
        for index, model in enumerate(models):
            rows.append([label, model, pm(over_seeds(part, lambda s: s[run]["top1"][index])),
                         pm(over_seeds(part, lambda s: s[killed]["top1"][index])),
                         signed(over_seeds(part, lambda s: s[killed]["top1"][index] - s[run]["top1"][index]))])
    for index in range(2):
        rows.append(["codistillation, checkpoints over collectives", f"model {index}",
                     pm(over_seeds(part, lambda s: s["collectives"]["top1"][index])), "–", "–"])
    return rows


def time_rows(part):
    """(what, uninterrupted s, killed s, lost s)."""
    rows = []
    for label, run, killed, value, lost in (
            ("model jobs: model 0 (survivor), its wall time", "files", "files_killed",
             lambda r: r["wall_time"][0], "survivor"),
            ("model jobs: model 1 (killed), launch to its last evaluation", "files", "files_killed",
             lambda r: r["finish_s"][1], "killed_model"),
            ("all_reduce: launch to the end of the last command (its whole job killed)", "allreduce",
             "allreduce_killed", lambda r: r["command_s"], "allreduce")):
        rows.append([label, pm(over_seeds(part, lambda s: value(s[run])), 1),
                     pm(over_seeds(part, lambda s: value(s[killed])), 1),
                     signed(over_seeds(part, lambda s: lost_times(s)[lost]), 1)])
    return rows


def bits_rows(part):
    """(transport, Mbit per model over the run, bits per update, x all_reduce's)."""
    def per_model(run):
        return lambda s: sum(s[run]["bits"]) / len(s[run]["bits"])

    allreduce = over_seeds(part, per_model("allreduce"))[0]
    rows = []
    for label, run in (("all_reduce (each of its two ranks)", "allreduce"),
                       (f"codistillation, checkpoints over collectives, T = {part['period']}", "collectives"),
                       (f"codistillation, checkpoints through files (async), T = {part['period']}", "files"),
                       ("the same, model 1 killed and restarted", "files_killed")):
        bits = over_seeds(part, per_model(run))
        per_update = over_seeds(part, lambda s: per_model(run)(s) / s[run]["updates"])
        rows.append([label, pm((bits[0] / 1e6, bits[1] / 1e6), 1), f"{per_update[0]:.4g} ± {per_update[1]:.2g}",
                     f"{bits[0] / allreduce:.3g}x"])
    return rows


def comparison(lost, other):
    """How two (mean, std) compare: beyond both standard deviations, or within them."""
    if lost[0] + lost[1] < other[0] - other[1]:
        return "less"
    if lost[0] - lost[1] > other[0] + other[1]:
        return "more"
    return "about as much (within a standard deviation)"


def survivor_epoch_s(part):
    """Model 0's seconds per epoch in the killed run, (while both models trained, while model 1 was
    down), each a mean_std over the seeds that measured it; None where none did."""
    def pace(when):
        values = [s["files_killed"]["survivor_s_per_update"][when] * s["files_killed"]["updates"] / part["epochs"]
                  for s in part["seeds"] if s["files_killed"].get("survivor_s_per_update", {}).get(when) is not None]
        return mean_std(values) if values else None
    return pace("both"), pace("alone")


def reading(part):
    """The measured outcome, from the numbers (no direction is assumed)."""
    survivor = over_seeds(part, lambda s: lost_times(s)["survivor"])
    killed = over_seeds(part, lambda s: lost_times(s)["killed_model"])
    allreduce = over_seeds(part, lambda s: lost_times(s)["allreduce"])
    change = [over_seeds(part, lambda s: s["files_killed"]["top1"][m] - s["files"]["top1"][m]) for m in (0, 1)]
    text = (f"Measured: with independent model jobs the survivor lost {signed(survivor, 1)} s and the killed model "
            f"{signed(killed, 1)} s, against {signed(allreduce, 1)} s for all_reduce, whose one job dies whole: the "
            f"survivor lost {comparison(survivor, allreduce)} time than all_reduce, the killed model "
            f"{comparison(killed, allreduce)}. The kill changed final top-1 by {signed(change[0])} points (survivor) "
            f"and {signed(change[1])} points (killed model) against the uninterrupted run.")
    both, alone = survivor_epoch_s(part)
    if both and alone:
        text += (f" In the killed run model 0 took {pm(both)} s per epoch while both models trained and "
                 f"{pm(alone)} s while model 1 was down")
        text += (": the models' processes share this machine's cores, and a peer that is down leaves the survivor "
                 "more CPU." if comparison(alone, both) == "less" else ".")
    return text


def tables(part):
    """The three tables (top-1, lost time, bits), markdown lines."""
    return ["Final top-1 (%):", "",
            *table(["run", "model", "uninterrupted", "killed and restarted", "killed − uninterrupted"],
                   top1_rows(part)), "",
            "Time lost to the kill (s):", "",
            *table(["what", "uninterrupted", "killed and restarted", "lost"], time_rows(part)), "",
            "Bits between servers per model over the run (`comm_bits_inter_node` of its last evaluation):", "",
            *table(["transport", "Mbit per model", "bits per update", "x all_reduce's"], bits_rows(part))]


def setup_line(part):
    """How the runs were made: workload, schedule, seeds, kill and delay."""
    kill = over_seeds(part, lambda s: s["files_killed"]["kill_step_estimate"] / s["files_killed"]["updates"])
    kill_ar = over_seeds(part, lambda s: s["allreduce_killed"]["kill_step_estimate"] / s["allreduce_killed"]["updates"])
    down = over_seeds(part, lambda s: s["files_killed"]["down_s"])
    epoch_s = over_seeds(part, lambda s: s["files"]["wall_time"][1] / part["epochs"])[0]
    seeds = ", ".join(str(seed["seed"]) for seed in part["seeds"])

    def resumed(run):
        return " or ".join(str(step) for step in sorted({seed[run]["resumed_from_step"] for seed in part["seeds"]}))
    schedule = (f"a shortened schedule (`{' '.join(part['schedule'])}`)" if part["schedule"]
                else "its full schedule (the figures' `schedule=goyal_step`)")
    return (f"`workload=clusters_resnet` (the figures' mini stand-in) on {schedule}: {part['epochs']} mini epochs, "
            f"{part['seeds'][0]['files']['updates']} updates per codistilled model; seeds {seeds}, one process per "
            f"rank on this machine, `python src/run.py` in subprocesses. Model jobs: `{' '.join(part['files'])}`; "
            "model 1's "
            f"process (the pid in `model1/lock`) got SIGKILL at {100 * kill[0]:.0f} ± {100 * kill[1]:.0f} % of its "
            f"updates (mid-epoch, estimated from its pace; it resumed from update {resumed('files_killed')}) "
            f"and was started again with `model_job=1`, as a requeued job, "
            f"{part['delay_s']:g} s later (≈ {part['delay_s'] / epoch_s:.1f} epochs of a model at its uninterrupted "
            f"pace); its down record says {pm(down, 1)} s down (from its last record to its restart), and it "
            f"restarted {overlap_text(part)}. all_reduce (`method=allreduce`, two ranks): its whole process group "
            f"got SIGKILL at {100 * kill_ar[0]:.0f} ± {100 * kill_ar[1]:.0f} % of its updates (resumed from update "
            f"{resumed('allreduce_killed')}) and the same command ran again {part['delay_s']:g} s later. Mean ± "
            f"standard deviation over seeds (n - 1). {load_line(part)}")


def overlap_text(part):
    """When model 1 restarted, against model 0's end."""
    overlap = over_seeds(part, lambda s: s["files_killed"]["overlap_s"])
    if overlap[0] - overlap[1] > 0:
        return f"{pm(overlap, 1)} s before model 0's last evaluation (it rejoined a peer still training)"
    if overlap[0] + overlap[1] < 0:
        return f"{pm((-overlap[0], overlap[1]), 1)} s after model 0's last evaluation (its peer had finished)"
    return f"about when model 0 finished ({signed(overlap, 1)} s before its last evaluation)"


def load_line(part):
    """The machine's load when the runs started: other work slows them, and wall times with them."""
    loads = [run["load_before"] for seed in part["seeds"] for run in seed.values()
             if isinstance(run, dict) and "load_before" in run]
    if not loads:
        return ""
    return (f"Load average (1 min) at the start of the {len(loads)} runs: {min(loads):.1f} to {max(loads):.1f} "
            "(wall times are only as steady as the machine is quiet).")


def report_section(path=BENCH_RESULTS):
    """The reproduction report's section, from benchmarks/results.json at `path`."""
    lines = [f"## {TITLE}", ""]
    results = json.loads(path.read_text()) if path.exists() else {}
    part = results.get("parts", {}).get(PART)
    if part is None or "seeds" not in part:
        return lines + [f"Not measured: `{path.name}` has no part `{PART}` (`python -m benchmarks.bench --parts "
                        f"{PART}` measures it).", ""]
    return lines + [f"**Mini scale, measured {measured_where(results)} (benchmarks/results.json, part `{PART}`): a "
                    f"stand-in workload{' on a shortened schedule' if part['schedule'] else ''}, not the paper's "
                    "numbers**; the paper reports no such measurement. Independent model jobs "
                    "(`method.transport=files`) are how Anil et al. 2018 run codistillation: each model its own job, "
                    "reading its peers' checkpoints from shared storage.", "",
                    setup_line(part), "", *tables(part), "", reading(part), ""]


def measured_where(results):
    """The machine, date and commit of the benchmark run that measured the part (a re-measurement
    of it, or the full run)."""
    run = next((run for run in reversed(results.get("remeasured", [])) if PART in run["parts"]), results)
    machine = run.get("machine")
    if not machine:
        return "on an unrecorded machine"
    return (f"on {machine['cpu']} ({machine['cores']} cores, no GPU) on {machine['date']} at commit "
            f"{machine['git_commit']}")
