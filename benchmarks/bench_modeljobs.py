"""Part 7: a model of a codistillation run killed and rejoining, at mini scale, with real processes
(`python src/run.py` in subprocesses) and a real SIGKILL. Per seed, five runs of the figures' mini
stand-in (workload=clusters_resnet, its full schedule: about 30 s a run on a quiet 2-core machine),
each in its own results root:

- files: 2-way codistillation exchanging checkpoints every PERIOD updates through files, each
  model its own job (method.transport=files, snapshot_mode=async), uninterrupted;
- files_killed: the same, model 1's process (the pid its lock names) SIGKILLed at ~50 % of its
  updates and started again DELAY_S later as a job of its own (model_job=1, what a requeued
  Slurm job is) while model 0 trains on;
- allreduce, allreduce_killed: all_reduce on two ranks, uninterrupted / its whole process group
  SIGKILLed at ~50 % and the same command run again DELAY_S later;
- collectives: the codistillation of `files` with its checkpoints over collectives (one world),
  for the bits each transport moves.

The kill lands mid-epoch, half an epoch after the last evaluation at or before half the updates
(the pace so far says when): a rerun resumes from that evaluation's committed state and does half
an epoch again, what a crash at a random moment costs on average; a kill right at an evaluation
would race its commit. figures/kill_rejoin.py summarises the numbers (lost times, mean ± std over
seeds) for results.md and the reproduction report.

    python -m benchmarks.bench --parts modeljobs    # ~10 min on 2 quiet cores
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt

from codistill_experiments.runlog import METRICS_FILE, parse_log
from figures import kill_rejoin

from .benchlib import ROOT
from .tables import save

RUN = [sys.executable, str(ROOT / "src" / "run.py")]
SEEDS = (0, 1, 2)
PERIOD = 214   # fig13's mini checkpoint period: half an epoch of a codistilled model
# About 3 epochs of a codistilled model on a quiet machine: the killed model restarts while the
# survivor still has about 6 epochs to train, so it rejoins a peer that is still publishing.
DELAY_S = 5.0
EPOCHS = 18   # goyal_step's 90 epochs x clusters_resnet's epoch_scale 0.2 (a finished run's updates are checked)
SCHEDULE = ("workload=clusters_resnet",)
CODISTILL = ("method=codistill", "method.exchange=checkpoints", f"method.period={PERIOD}")
FILES = (*CODISTILL, "method.transport=files", "method.snapshot_mode=async")
ALLREDUCE = ("method=allreduce",)
POLL_S = 0.05
LIMIT_S = 900


def job(method, seed, root):
    return [*RUN, *SCHEDULE, *method, f"seed={seed}", f"results_root={root}"]


def records(path):
    """The records of a log being written (a torn last line dropped); none before it exists."""
    return parse_log(path).records if Path(path).exists() else []


def run_directory(root):
    """The one run directory under a results root, once the run has made it."""
    found = list((Path(root) / "runs").glob("*")) if (Path(root) / "runs").exists() else []
    return found[0] if found else None


def start(command, output):
    """A command in its own process group (killpg stops it whole), output to a file; full progress
    output, whose "resume (from update N)" line says where a rerun resumed."""
    return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
                            env={**os.environ, "CODISTILL_PROGRESS": "full"})


def wait_for_eval(log_path, step, process):
    """The evaluation record of update `step` (the first of them) once written, and when it was seen."""
    deadline = time.monotonic() + LIMIT_S
    while time.monotonic() < deadline:
        found = [r for r in records(log_path) if r["kind"] == "eval" and (step is None or r["step"] == step)]
        if found:
            return found[0], time.time()
        if process.poll() is not None:
            raise RuntimeError(f"the run ended (exit {process.returncode}) before update {step} was evaluated")
        time.sleep(POLL_S)
    raise RuntimeError(f"no evaluation of update {step} in {log_path} within {LIMIT_S} s")


def kill_at_half(log_path, process, kill):
    """Calls kill() at about half the run's updates, half an epoch after the last evaluation at or
    before half: the first evaluation gives the updates per epoch, that one the pace. Returns
    (estimated update at the kill, total updates)."""
    first, _ = wait_for_eval(log_path, None, process)
    per_epoch = round(first["step"] / first["epoch"])
    total = per_epoch * EPOCHS
    before = total // 2 // per_epoch * per_epoch
    record, seen = wait_for_eval(log_path, before, process)
    seconds_per_update = record["wall_time"] / before
    time.sleep(max(0.0, seen + per_epoch / 2 * seconds_per_update - time.time()))
    kill()
    return before + (time.time() - seen) / seconds_per_update, total


def finished(process, output, expect_ok=True):
    code = process.wait(timeout=LIMIT_S)
    if expect_ok and code != 0:
        output.seek(0)
        raise RuntimeError(f"{' '.join(process.args)} exited {code}:\n{output.read()[-3000:]}")
    return code


def measures(directory, launched):
    """What a finished run's log says, per model: final top-1, bits, wall time; for model jobs
    also each model's time from the launch to its last evaluation."""
    log = records(Path(directory) / METRICS_FILE)
    if not log or log[-1]["kind"] != "end" or log[-1].get("status") == "failed":
        raise RuntimeError(f"{directory}: the run's log has not finished")
    evals, end = [r for r in log if r["kind"] == "eval"], log[-1]
    last = {r["model"]: r for r in evals}   # the last evaluation of each model (the log is in update order)
    models = sorted(last)
    out = {"top1": [last[m]["val_top1"] for m in models], "bits": [last[m]["comm_bits_inter_node"] for m in models],
           "wall_time": end.get("model_wall_times", [end["wall_time"]]), "updates": end["steps"]}
    if all("time" in last[m] for m in models):
        out["finish_s"] = [last[m]["time"] - launched for m in models]
    return out


def survivor_pace(log, killed, restarted):
    """Model 0's mean seconds per update over its evaluation intervals that ended before model 1 was
    killed (both training) and over those wholly between the kill and model 1's restart (model 1
    down): the models share this machine's cores, so the second can be the faster."""
    evals = [r for r in log if r["kind"] == "eval" and r["model"] == 0]
    both, alone = [], []
    for a, b in zip(evals, evals[1:]):
        pace = (b["time"] - a["time"]) / (b["step"] - a["step"])
        if b["time"] <= killed:
            both.append(pace)
        elif a["time"] >= killed and b["time"] <= restarted:
            alone.append(pace)
    return {"both": sum(both) / len(both) if both else None, "alone": sum(alone) / len(alone) if alone else None}


def uninterrupted(method, seed, root):
    with open(Path(root) / "output.txt", "w+") as output:
        launched = time.time()
        process = start(job(method, seed, root), output)
        finished(process, output)
        command_s = time.time() - launched
    return {**measures(run_directory(root), launched), "command_s": command_s}


def files_killed(seed, root):
    """Model 1 SIGKILLed at ~50 %, restarted alone DELAY_S later beside the survivor."""
    with open(Path(root) / "output.txt", "w+") as output, open(Path(root) / "rejoin.txt", "w+") as rejoin:
        launched = time.time()
        process = start(job(FILES, seed, root), output)
        while run_directory(root) is None:
            time.sleep(POLL_S)
        directory = run_directory(root)
        lock = directory / "model1" / "lock"
        step, total = kill_at_half(directory / "model1" / METRICS_FILE, process,
                                   lambda: os.kill(int(lock.read_text().split()[3]), signal.SIGKILL))
        killed = time.time()
        time.sleep(max(0.0, killed + DELAY_S - time.time()))
        again = start([*job(FILES, seed, root), "model_job=1"], rejoin)
        codes = [finished(process, output, expect_ok=False), finished(again, rejoin)]
        command_s = time.time() - launched
    if codes[0] == 0:
        raise RuntimeError("the run with model 1 killed exited 0: the kill did not reach model 1")
    log = records(directory / METRICS_FILE)
    [down] = [r for r in log if r["kind"] == "down"]
    survivor_end = max(r["time"] for r in log if r["kind"] == "eval" and r["model"] == 0)
    return {**planned(measures(directory, launched), total), "command_s": command_s, "exit_codes": codes,
            "kill_step_estimate": step, "down_s": down["down_s"], "resumed_from_step": down["resumed_from_step"],
            "survivor_s_per_update": survivor_pace(log, killed, down["to_time"]),
            "overlap_s": survivor_end - down["to_time"]}


def planned(measured, total):
    """The measures of a killed run whose kill was placed for `total` updates: it must have had them."""
    if measured["updates"] != total:
        raise RuntimeError(f"the kill was placed for {total} updates ({EPOCHS} epochs), the run had "
                           f"{measured['updates']}: EPOCHS no longer matches the schedule")
    return measured


def allreduce_killed(seed, root):
    """The whole job SIGKILLed at ~50 %, the same command again DELAY_S later."""
    with open(Path(root) / "output.txt", "w+") as output:
        launched = time.time()
        process = start(job(ALLREDUCE, seed, root), output)
        while run_directory(root) is None:
            time.sleep(POLL_S)
        step, total = kill_at_half(run_directory(root) / METRICS_FILE, process,
                                   lambda: os.killpg(process.pid, signal.SIGKILL))
        killed = time.time()
        first_code = process.wait()
        time.sleep(max(0.0, killed + DELAY_S - time.time()))
        output.seek(0, os.SEEK_END)
        again = start(job(ALLREDUCE, seed, root), output)
        finished(again, output)
        command_s = time.time() - launched
        output.seek(0)
        resumed = [line for line in output.read().splitlines() if line.startswith("resume (from update")]
    if first_code == 0 or not resumed:
        raise RuntimeError("the all_reduce run was not killed, or its rerun did not resume")
    return {**planned(measures(run_directory(root), launched), total), "command_s": command_s,
            "kill_step_estimate": step, "resumed_from_step": int(resumed[0].split("update ")[1].split(")")[0])}


def measure_seed(seed, scratch, progress):
    """The five runs of one seed. Each pair (uninterrupted, killed) runs back to back, in the
    opposite order for odd seeds, so that a machine growing busier or quieter through the part does
    not bias every lost time the same way."""
    out = {"seed": seed}
    pairs = [[("files", lambda root: uninterrupted(FILES, seed, root)),
              ("files_killed", lambda root: files_killed(seed, root))],
             [("allreduce", lambda root: uninterrupted(ALLREDUCE, seed, root)),
              ("allreduce_killed", lambda root: allreduce_killed(seed, root))]]
    ordered = [run for pair in pairs for run in (pair[::-1] if seed % 2 else pair)]
    for name, measure in [*ordered, ("collectives", lambda root: uninterrupted(CODISTILL, seed, root))]:
        root = Path(scratch) / f"seed{seed}" / name
        root.mkdir(parents=True)
        load = os.getloadavg()[0]   # other work on the machine slows these runs: said beside them
        out[name] = {**measure(root), "load_before": load}
        progress(f"modeljobs: seed {seed} {name}: top-1 {out[name]['top1']}, "
                 f"{out[name]['command_s']:.0f} s")
    return out


def run(progress=print):
    with tempfile.TemporaryDirectory(prefix="bench_modeljobs_") as scratch:
        seeds = [measure_seed(seed, scratch, progress) for seed in SEEDS]
    return {"seeds": seeds, "period": PERIOD, "delay_s": DELAY_S, "epochs": EPOCHS, "schedule": list(SCHEDULE[1:]),
            "files": list(FILES)}


# Part 7 of results.md: the tables and reading of figures/kill_rejoin.py (the reproduction report
# shows the same), and the plot of lost time and final top-1.

FIGURE_NAME = "modeljobs"


def section(part, targets):
    return [kill_rejoin.setup_line(part), "", *kill_rejoin.tables(part), "", kill_rejoin.reading(part)]


def plot(part, path):
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    lost = {"survivor (model 0)": "survivor", "killed model (model 1)": "killed_model", "all_reduce": "allreduce"}
    stats = [kill_rejoin.over_seeds(part, lambda s, key=key: kill_rejoin.lost_times(s)[key]) for key in lost.values()]
    left.bar([name.replace(" (", "\n(") for name in lost], [m for m, _ in stats], yerr=[s for _, s in stats],
             capsize=4, color=["tab:blue", "tab:orange", "tab:gray"])
    left.axhline(0, color="black", lw=0.8)
    left.set_ylabel("seconds lost to the kill")
    left.set_title(f"killed mid-run, restarted {part['delay_s']:g} s later")
    arms = [("model jobs,\nmodel 0 (survivor)", "files", 0), ("model jobs,\nmodel 1 (killed)", "files", 1),
            ("all_reduce", "allreduce", 0)]
    width = 0.38
    for offset, (label, suffix) in ((-width / 2, ("uninterrupted", "")), (width / 2, ("killed", "_killed"))):
        stats = [kill_rejoin.over_seeds(part, lambda s, run=run, m=m: s[run + suffix]["top1"][m]) for _, run, m in arms]
        right.bar([i + offset for i in range(len(arms))], [m for m, _ in stats], width, yerr=[s for _, s in stats],
                  capsize=4, label=label)
    right.set_xticks(range(len(arms)), [label for label, _, _ in arms])
    values = [s[run + suffix]["top1"][m] for s in part["seeds"] for _, run, m in arms for suffix in ("", "_killed")]
    right.set_ylim(min(values) - 1, max(values) + 1)   # bars from 0 would hide differences of tenths of a point
    right.set_ylabel("final top-1 (%)")
    right.legend(fontsize=8)
    fig.suptitle("Mini: a model job killed and rejoining vs all_reduce killed (mean ± std over seeds)")
    save(fig, path)


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=1))
