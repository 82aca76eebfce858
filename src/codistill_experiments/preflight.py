"""The first hour on a GPU node: every paper workload trained at its paper shape for a few updates,
killed and resumed, with one table of what passed and how fast it ran.

    make preflight                       # every workload; or: python -m codistill_experiments.preflight --only criteo

Each workload is built as `scale=paper` builds it (the paper's model, optimizer, schedule, exchange,
augmentation and loader workers), 2 models x (the node's GPUs / 2) ranks, on the real data where its
path exists and otherwise on a few generated samples in the real on-disk format (ImageFolder JPEGs,
CIFAR-10's python batches, a Criteo TSV, fairseq data-bins made by fairseq-preprocess). Per workload:
  trains            the run finishes, its models' exchange carried bits between them (the
                    collectives between models: NCCL on GPUs, gloo on a CPU);
  same peer inputs  under prediction exchange, peers saw bit-identical (augmented) batches;
  kill + resume     a second copy is SIGKILLed after its first committed state, rerun, and ends
                    with the uninterrupted run's log (times aside);
and, on GPUs, peak GPU memory beside the paper's V100 (16 GB vision, 32 GB translation), throughput
per GPU beside a published V100 figure, and time per update beside the step-time model's
(job_cost.py). Without a GPU the same checks run at CPU sizes and throughput is not judged. Exit
status 1 when any check fails, with one line per failure. The test suite runs the same checks on
CPU (tests/test_preflight.py)."""
import argparse
import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .job_cost import RESNET50_V100_IMAGES_PER_S, TRANSFORMER_BIG_V100_TOKENS_PER_S, NotCosted, job_cost
from .jobs import visible_gpus
from .run_state import committed_step
from .runlog import FINISHED, METRICS_FILE, end_state, read_records

RUN = [sys.executable, str(Path(__file__).resolve().parents[1] / "run.py")]
NOT_JUDGED = "throughput not judged (no GPU)"


# ----- generated data in the real on-disk formats

def write_imagefolder(root, per_class, classes=("n01440764", "n01443537")):
    """An ImageFolder tree: root/<split>/<class>/<class>_<i>.JPEG, seeded random 80 x 96 pixels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for label in classes:
            folder = Path(root) / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{label}_{index}.JPEG", quality=90)
    return Path(root)


def write_cifar_batches(root, per_batch=4, test=4):
    """A local CIFAR-10 copy: cifar-10-batches-py/ with data_batch_1..5, test_batch, batches.meta."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def batch(count):
        return {"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(count)]}

    for name in [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(pickle.dumps(batch(per_batch)))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(test)))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}))
    return Path(root)


def write_criteo_tsv(root, rows=400):
    """Criteo's train.txt: label, 13 integer features, 26 hexadecimal categorical ones, tab-separated,
    some of them missing (empty), as Kaggle's file."""
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(rows):
        integers = ["" if rng.random() < 0.1 else str(rng.integers(0, 100)) for _ in range(13)]
        categorical = ["" if rng.random() < 0.1 else f"{rng.integers(0, 12):08x}" for _ in range(26)]
        lines.append("\t".join([str(rng.integers(0, 2)), *integers, *categorical]))
    Path(root).mkdir(parents=True, exist_ok=True)
    (Path(root) / "train.txt").write_text("\n".join(lines) + "\n")
    return Path(root)


def write_data_bin(root, workload):
    """A fairseq data-bin of a generated corpus for a paper translation or language-model workload,
    binarised by fairseq-preprocess with the workload's languages (one dictionary when it shares
    all embeddings)."""
    from .translation.data import write_raw_corpus
    from .translation.processes import run_fairseq

    raw, target = Path(root) / "raw", Path(root) / "data-bin"
    raw.mkdir(parents=True, exist_ok=True)
    language_model = workload["task"] == "language_modeling"
    corpus = ({"seed": 0, "vocab": 60, "classes": 10, "successors": 3, "zipf": 1.0, "min_len": 4, "max_len": 12,
               "min_sentences": 3, "max_sentences": 8, "train_documents": 60, "valid_documents": 4,
               "test_documents": 4} if language_model else
              {"seed": 0, "vocab": 24, "train_pairs": 64, "valid_pairs": 8, "test_pairs": 8, "min_len": 3, "max_len": 8,
               "noise": 0.05})
    argv = write_raw_corpus({**workload, "corpus": corpus}, raw)
    joined = ["--joined-dictionary"] if workload.get("model", {}).get("share_embeddings") == "all" else []
    run_fairseq("preprocess", [*argv, *joined, "--destdir", str(target), "--workers", "1"], Path(root) / "preprocess.log")
    return target


# ----- the paper workloads

@dataclass(frozen=True)
class PaperWorkload:
    name: str
    figures: str                  # which of the papers' figures its sweeps draw
    overrides: tuple              # the paper job (scale=paper is added)
    bounds: tuple                 # on GPUs: the paper's job cut to a few updates
    tiny: tuple                   # on a CPU, added to bounds: smaller batches, never the model or the recipe's kind
    data_key: str                 # the workload key of its data
    unit: str                     # what throughput counts
    paper_gb: int                 # the paper's V100 memory (A.3)
    ranks_per_model: int = 2      # on CPU (GPUs: the node's GPUs / 2)
    v100: dict = field(default_factory=dict)   # published V100 rate per precision ({} : none known)

    @property
    def vision(self):
        return self.unit == "images" or self.name == "criteo"


VISION_BOUNDS = ("schedule.epochs=2", "schedule.lr.warmup_epochs=0", "schedule.lr.milestones=[1]")
VISION_TINY = ("scale.batch_per_rank=2", "workload.eval_batch=4", "workload.loader_workers=2")
FAIRSEQ_BOUNDS = ("schedule.max_update=6", "schedule.warmup_updates=2", "method.period=2", "workload.log_interval=1",
                  "workload.generation.max_len_b=10")
FAIRSEQ_TINY = ("workload.max_tokens=256", "workload.required_batch_size_multiple=1", "workload.fp16=false",
                "workload.loader_workers=0")
WORKLOADS = [
    PaperWorkload("imagenet_resnet50", "Figs. 1-3, 5, 7-11, 13-17 (ImageNet, ResNet-50)",
                  ("workload=imagenet_resnet50", "method=codistill"), VISION_BOUNDS, VISION_TINY, "data_root", "images",
                  16, v100=RESNET50_V100_IMAGES_PER_S),
    PaperWorkload("imagenet_resnext101", "Figs. 3, 8, 14, 15 (ResNeXt-101 32x8d)",
                  ("workload=imagenet_resnet50", "workload.arch=resnext101_32x8d", "method=codistill"), VISION_BOUNDS,
                  VISION_TINY, "data_root", "images", 16, ranks_per_model=1),
    PaperWorkload("cifar10_wrn", "Fig. 6 (multi-view, WRN-28-10 on CIFAR-10)",
                  ("workload=cifar10_wrn", "workload.scenario=random_init", "method=codistill"), VISION_BOUNDS,
                  VISION_TINY, "data_root", "images", 16, ranks_per_model=1),
    PaperWorkload("criteo", "Anil et al. Table 1 (Criteo click prediction)",
                  ("workload=criteo", "schedule=anil_adagrad", "method=codistill", "method.exchange=checkpoints"),
                  ("schedule.epochs=2", "method.period=2"),
                  ("scale.batch_per_rank=16", "workload.eval_batch=64", "workload.min_count=2"), "data_root", "rows", 16),
    PaperWorkload("wmt16_transformer_big", "Figs. 4, 12 (WMT'16 En-De, transformer big)",
                  ("workload=wmt16_transformer_big", "method=codistill"), FAIRSEQ_BOUNDS, FAIRSEQ_TINY, "data_bin",
                  "tokens", 32, ranks_per_model=1, v100=TRANSFORMER_BIG_V100_TOKENS_PER_S),
    PaperWorkload("iwslt14_transformer", "Table 2, iwslt_overfit (IWSLT'14 De-En transformer)",
                  ("workload=iwslt14_transformer", "method=codistill"), FAIRSEQ_BOUNDS, FAIRSEQ_TINY, "data_bin",
                  "tokens", 32, ranks_per_model=1),
    PaperWorkload("commoncrawl_lstm", "Anil et al. Fig. 4 (LSTM language model, anil_fig4_lm)",
                  ("workload=commoncrawl_lstm", "method=codistill"),
                  ("schedule.max_update=6", "method.period=2", "workload.log_interval=1"),
                  ("workload.batch_size=4", "workload.loader_workers=0"), "data_bin", "tokens", 32, ranks_per_model=1),
]
BY_NAME = {workload.name: workload for workload in WORKLOADS}


def compose(overrides):
    """The validated job of a list of overrides (as src/run.py composes it)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .config import CONF, validate

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return validate(hydra_compose("codistill", overrides=list(overrides)))


def real_data(workload):
    """Overrides for the workload's real data when its configured path exists here (the vision
    workloads on a slice of a few updates per epoch), else None."""
    from .job_cost import PAPER_TRAIN_SIZES

    paper = compose(["scale=paper", *workload.overrides])
    path = paper["workload"][workload.data_key]
    if not path or not Path(path).exists():
        return None
    if workload.data_key == "data_bin":
        return []
    per_model = paper["scale"]["batch_per_rank"] * paper["scale"]["ranks_per_model"]
    return [f"data.fraction={min(1.0, 4 * per_model / PAPER_TRAIN_SIZES[paper['workload']['name']]):.8f}"]


def generated_data(workload, root, batch_per_model):
    """Overrides pointing the workload at generated data of its real format under root, two
    updates per epoch at `batch_per_model` (images or rows; fairseq's batches are in tokens)."""
    if workload.name.startswith("imagenet"):
        root = write_imagefolder(root, {"train": batch_per_model, "val": 2})   # 2 classes
        return [f"workload.data_root={root}", "workload.num_classes=2"]
    if workload.name == "cifar10_wrn":
        return [f"workload.data_root={write_cifar_batches(root, per_batch=math.ceil(2 * batch_per_model / 5))}"]
    if workload.name == "criteo":
        return [f"workload.data_root={write_criteo_tsv(root, rows=max(400, 3 * batch_per_model))}"]
    paper = compose(["scale=paper", *workload.overrides])["workload"]
    return [f"workload.data_bin={write_data_bin(root, paper)}"]


def job_overrides(workload, gpus, data=()):
    """The preflight job: the paper's, 2 models over the node's GPUs (or CPU ranks), a few updates."""
    per_model = max(1, gpus // 2) if gpus else workload.ranks_per_model
    placement = ([f"scale.ranks_per_model={per_model}", f"scale.ranks_per_node={2 * per_model}"] +
                 ([] if gpus else ["scale.gpus_per_rank=0"]))
    sizes = () if gpus else workload.tiny
    # traced: the vision ranks' input hashes (same peer inputs); fairseq's per-update parameter
    # hashes, which a resume rewinds with the rest of the model's logs
    return ["scale=paper", *workload.overrides, *workload.bounds, *sizes, *placement, *data, "trace=true"]


def batch_per_model(workload, gpus):
    scale = compose(job_overrides(workload, gpus))["scale"]
    return int(scale["batch_per_rank"]) * int(scale["ranks_per_model"])


# ----- running and checking

@dataclass
class Outcome:
    workload: PaperWorkload
    checks: dict = field(default_factory=dict)    # check -> "pass" | "n/a ..." | failure text
    measured: dict = field(default_factory=dict)

    @property
    def failures(self):
        return {name: text for name, text in self.checks.items() if text != "pass" and not text.startswith("n/a")}


def run(overrides, results_root, log, wait=True, env=None):
    """Starts src/run.py on `overrides` (env: its environment, by default this process's)."""
    command = [*RUN, *overrides, f"results_root={results_root}"]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    if wait:
        process.wait()
    return process


def run_directory(results_root):
    runs = sorted((Path(results_root) / "runs").glob("*"))
    return runs[0] if runs else None


def comparable(directory):
    """The run's log records without wall times, header and end record aside."""
    return [{key: value for key, value in record.items() if key != "wall_time"}
            for record in read_records(directory / METRICS_FILE) if record["kind"] not in ("header", "end")]


def first_difference(expected, got):
    if len(expected) != len(got):
        return f"{len(got)} records where the uninterrupted run has {len(expected)}"
    for index, (a, b) in enumerate(zip(expected, got)):
        if a != b:
            keys = sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))
            return f"record {index} ({a.get('kind')}, step {a.get('step')}) differs in {', '.join(keys[:4])}"
    return None


def committed(directory):
    """Whether the run has committed state it can resume from (vision: its state/ commit; fairseq:
    every model's checkpoint_last.pt)."""
    if directory is None:
        return False
    models = sorted(directory.glob("model*/"))
    if models:
        return all((model / "checkpoint_last.pt").exists() for model in models if model.is_dir())
    return committed_step(directory) is not None


def kill_after_commit(overrides, results_root, log, limit_s=600, env=None):
    """Starts the run, SIGKILLs its process group once it has committed state; whether a kill was
    delivered before the run finished."""
    process = run(overrides, results_root, log, wait=False, env=env)
    deadline = time.monotonic() + limit_s
    while process.poll() is None and time.monotonic() < deadline and not committed(run_directory(results_root)):
        time.sleep(0.05)
    if process.poll() is not None:
        return False
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return True


def largest_relative_difference(expected, got):
    """Over the numbers two logs both record, record by record and key by key."""
    largest = 0.0
    for a, b in zip(expected, got):
        for key in a.keys() & b.keys():
            x, y = a[key], b[key]
            if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool):
                if math.isfinite(x) and math.isfinite(y) and x != y:
                    largest = max(largest, abs(x - y) / max(abs(x), abs(y), 1e-12))
    return largest


# The largest relative difference between a resumed run's logged values and the uninterrupted
# run's that a resume on GPUs passes with: their kernels are nondeterministic by default (cuDNN's
# chosen algorithms, atomics in reductions) and WMT trains in float16, so a resumed GPU run drifts
# a little; scripts/one_gpu_check.py measured 3.3e-4 (ResNet-50), 5.4e-4 (2 models) and 9.4e-4
# (WMT'16 in float16) on an H200. On the CPU a resume is exact: 0.
GPU_RESUME_TOLERANCE = 2e-3


def resume_tolerance(gpus):
    """The relative difference a resume passes with: GPU_RESUME_TOLERANCE on GPUs, 0 on the CPU."""
    return GPU_RESUME_TOLERANCE if gpus else 0.0


def resumed_log_verdict(expected, got, close):
    """None when the resumed run's records `got` are the uninterrupted run's `expected` (equal, or
    with `close` > 0 as many and within that relative difference), else what differs."""
    difference = first_difference(expected, got)
    if difference is None:
        return None
    if len(expected) == len(got) and largest_relative_difference(expected, got) <= close:
        return None
    return difference


def resume_verdict(overrides, root, reference, delivered, env=None, close=0.0):
    """The "kill + resume" check of a copy under root/killed, SIGKILLed after its first commit
    (delivered: whether the kill came before it finished): rerun, it must continue from the
    committed state and end with the log of the uninterrupted run `reference`, equal or, with
    `close` > 0, within that relative difference (a GPU's nondeterministic kernels)."""
    logs = root / "logs"
    if not delivered:
        return "the run ended before it could be killed after its first commit"
    resumed = run(overrides, root / "killed", logs / "resumed.log", env=env)
    directory = run_directory(root / "killed")
    if resumed.returncode != 0:
        return f"the rerun failed (exit {resumed.returncode}): {tail(logs / 'resumed.log')}"
    expected, got = comparable(reference), comparable(directory)
    difference = first_difference(expected, got)
    relative = largest_relative_difference(expected, got)
    if resumed_log_verdict(expected, got, close) is not None:
        return f"the resumed run differs: {difference}" + (f" (beyond the {close:g} relative a GPU run may differ by)"
                                                          if close else "")
    if not resumed_from_saved_state(directory, (logs / "resumed.log").read_text(errors="replace")):
        return "the rerun matched, but it started from scratch instead of the committed state"
    return "pass" if difference is None else f"pass (largest relative difference {relative:.1e}; {difference})"


def resumed_from_saved_state(directory, rerun_output):
    """Whether the rerun continued from what the killed attempt saved (a run started again from
    scratch would end with the same log): the training engine's "resume (from update N)", fairseq's
    "Loaded checkpoint ... @ N updates" in a model's training log, or no model left to train."""
    if re.search(r"^resume \(from update [1-9]", rerun_output, re.M):
        return True
    loaded = r"Loaded checkpoint .*\(epoch \d+ @ [1-9]\d* updates\)"
    if any(re.search(loaded, path.read_text(errors="replace")) for path in directory.glob("model*/train-rank*.log")):
        return True
    return bool(list(directory.glob("model*/"))) and not re.search(r"^model \d+: update ", rerun_output, re.M)


def peer_inputs(directory):
    """Under prediction exchange, rank r of every model must see the same (augmented) inputs at
    every update, and the ranks of one model different ones (trace=true: per-update input hashes)."""
    by_rank = {}
    for path in sorted(directory.glob("trace-model*.jsonl")):
        model, _, rank = path.stem.removeprefix("trace-model").partition("-rank")
        by_rank.setdefault(int(rank or 0), {})[int(model)] = [json.loads(line)["inputs"] for line in path.open()]
    if not by_rank or any(len(models) < 2 for models in by_rank.values()):
        return "no trace of two models to compare"
    for rank, models in by_rank.items():
        if not models[0] or any(inputs != models[0] for inputs in models.values()):
            return f"rank {rank} of the models saw different inputs"
    if len(by_rank) > 1 and any(a == b for a, b in zip(by_rank[0][0], by_rank[1][0])):
        return "two ranks of one model saw the same inputs"
    return "pass"


def seconds_per_update(directory):
    """Wall time between model 0's first and last evaluations over the updates between them
    (evaluation included), or None."""
    files = sorted(directory.glob("model0/evals.jsonl")) or [directory / METRICS_FILE]
    evals = [r for path in files for r in read_records(path) if r["kind"] == "eval" and r.get("model", 0) == 0
             and "wall_time" in r]
    if len(evals) < 2 or evals[-1]["step"] == evals[0]["step"]:
        return None
    return (evals[-1]["wall_time"] - evals[0]["wall_time"]) / (evals[-1]["step"] - evals[0]["step"])


def check(workload, root, gpus=None, data=None):
    """Runs the workload's checks under folder root; its Outcome."""
    gpus = visible_gpus() if gpus is None else gpus
    root = Path(root)
    outcome = Outcome(workload)
    if data is None:
        data = real_data(workload)
        outcome.measured["data"] = "real" if data is not None else "generated"
        data = data if data is not None else generated_data(workload, root / "data", batch_per_model(workload, gpus))
    overrides = job_overrides(workload, gpus, data)
    container = compose(overrides)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = run(overrides, root / "reference", logs / "reference.log", wait=False)
    # Without GPUs the copy to kill runs beside the reference (their start-ups overlap); on GPUs
    # after it, each on all of the node's GPUs.
    killed = {}
    killer = threading.Thread(target=lambda: killed.update(
        delivered=kill_after_commit(overrides, root / "killed", logs / "killed.log")))
    if not gpus:
        killer.start()
    peak_mib = 0
    while done.poll() is None:
        peak_mib = max(peak_mib, gpu_memory_used_mib() if gpus else 0)
        time.sleep(0.5)
    outcome.measured["wall_s"] = time.monotonic() - started
    if peak_mib:
        outcome.measured["gpu_gb"] = peak_mib / 1024
    reference = run_directory(root / "reference")
    state = end_state(reference / METRICS_FILE)[0] if reference else None
    if done.returncode != 0 or state != FINISHED:
        outcome.checks["trains"] = f"the run failed (exit {done.returncode}): {tail(logs / 'reference.log')}"
        if killer.is_alive():
            killer.join()
        return outcome
    evals = [r for r in comparable(reference) if r["kind"] == "eval"]
    bits = sum(r.get("comm_bits_inter_node", 0) + r.get("comm_bits_intra_node", 0) for r in evals[-2:])
    outcome.checks["trains"] = "pass" if evals and bits > 0 else "no bits were exchanged between the models"
    exchange = container["method"].get("exchange")
    outcome.checks["same peer inputs"] = (peer_inputs(reference) if exchange == "predictions" else
                                          f"n/a ({exchange}: peers need not share batches)")
    if gpus:
        killer.start()
    killer.join()
    outcome.checks["kill + resume"] = resume_verdict(overrides, root, reference, killed["delivered"],
                                                     close=resume_tolerance(gpus))
    per_update = outcome.measured["s_per_update"] = seconds_per_update(reference)
    if per_update:
        outcome.measured["units_per_s"] = units_per_update(container) / per_update
    if gpus:
        try:
            outcome.measured["model_s_per_update"] = job_cost(container).seconds_per_update
        except NotCosted:
            pass
    return outcome


def units_per_update(container):
    """Images, rows or tokens one rank trains on per update (throughput per GPU)."""
    workload = container["workload"]
    if workload.get("task") == "language_modeling":
        return workload["batch_size"] * workload["tokens_per_sample"]
    if workload.get("task") == "translation":
        return workload["max_tokens"]    # an upper bound: fairseq fills batches up to it
    return container["scale"]["batch_per_rank"]


def gpu_memory_used_mib():
    """The most memory in use on one visible GPU now, as the driver reports it (nvidia-smi), or 0."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
        return max((int(line) for line in out.split() if line.strip().isdigit()), default=0)
    except (OSError, subprocess.TimeoutExpired):
        return 0


def tail(path, lines=3):
    text = Path(path).read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


# ----- the table

def table(outcomes, gpus):
    import pandas as pd

    rows = []
    for outcome in outcomes:
        workload, measured = outcome.workload, outcome.measured
        row = {"workload": workload.name, "stands for": workload.figures, "data": measured.get("data", "given")}
        row.update({name: ("pass" if text == "pass" else "n/a" if text.startswith("n/a") else "FAIL")
                    for name, text in outcome.checks.items()})
        per_update = measured.get("s_per_update")
        if gpus:
            rate = measured.get("units_per_s")
            row["s/update"] = f"{per_update:.3f}" if per_update else "-"
            row["step-time model s/update"] = (f"{measured['model_s_per_update']:.3f}"
                                               if "model_s_per_update" in measured else "-")
            row[f"V100 published {workload.unit}/s"] = (", ".join(f"{v:,.0f} {k}" for k, v in workload.v100.items())
                                                        or "none known")
            row["peak GPU GB (paper's V100)"] = (f"{measured['gpu_gb']:.1f} ({workload.paper_gb})"
                                                 if "gpu_gb" in measured else f"- ({workload.paper_gb})")
            if rate:
                row[f"{workload.unit}/s per GPU"] = f"{rate:,.0f}"
        else:
            row["s/update (CPU)"] = f"{per_update:.2f}" if per_update else "-"
            row["throughput"] = "not judged"
        row["wall s"] = f"{measured.get('wall_s', 0):.0f}"
        rows.append(row)
    return pd.DataFrame(rows).fillna("-").to_string(index=False)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BY_NAME), help="these workloads only")
    parser.add_argument("--keep", type=Path, help="keep the runs and logs in this folder")
    args = parser.parse_args(argv)
    gpus = visible_gpus()
    if gpus == 1:   # 2 models x 1 rank would share it, which NCCL refuses
        print("preflight: one GPU visible, and its 2 models would share it, which NCCL refuses (\"Duplicate GPU "
              "detected\"): run scripts/one_gpu_check.py on a machine with one GPU, this on a node with 2 or more",
              file=sys.stderr)
        return 2
    chosen = [BY_NAME[name] for name in args.only] if args.only else WORKLOADS
    folder = args.keep or Path(tempfile.mkdtemp(prefix="preflight-"))
    print(f"preflight: {len(chosen)} paper workload(s) on {gpus or 'no'} GPU(s), runs under {folder}", flush=True)
    outcomes = []
    for workload in chosen:
        print(f"  {workload.name}: {workload.figures} ...", flush=True)
        outcome = check(workload, folder / workload.name, gpus)
        outcomes.append(outcome)
        for name, text in outcome.checks.items():
            print(f"    {name}: {text}", flush=True)
        if not args.keep:   # transformer big's checkpoints alone are gigabytes
            shutil.rmtree(folder / workload.name, ignore_errors=True)
    print()
    print(table(outcomes, gpus))
    if not gpus:
        print(f"\n{NOT_JUDGED}: the checks ran at CPU sizes (the paper's models and recipes, a few generated samples)")
    failed = [(outcome.workload.name, name, text) for outcome in outcomes for name, text in outcome.failures.items()]
    for name, check_name, text in failed:
        print(f"preflight FAILED: {name}: {check_name}: {text}", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
