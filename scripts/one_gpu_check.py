"""The paper path on a machine with one GPU (docs/gpu-cluster.md, "What one GPU checked").

NCCL refuses two ranks on one GPU ("Duplicate GPU detected"), so a single GPU checks what it can:
- NCCL on one rank: each vision paper workload (ResNet-50 on a generated ImageFolder through the
  paper's transforms, WRN-28-10 on generated CIFAR-10 batches, Criteo's DNN) trained by all_reduce
  on the GPU: the NCCL group bound to it, DDP over NCCL, evaluation, committed state; ResNet-50
  killed after its first commit and resumed (once with cuDNN's benchmark-chosen kernels, once with
  deterministic kernels and channels-last memory), and once more under float16 autocast with loss
  scaling (workload.amp=true).
- CUDA tensors through codistillation: 2 models x 1 rank sharing the GPU over a backend that takes
  CUDA tensors and, as NCCL, refuses CPU ones (jobs.SHARED_GPU_BACKEND=cuda:gloo): ResNet-50
  exchanging predictions (peers' augmented inputs compared), killed and resumed; Criteo exchanging
  checkpoints. (Not SyncBatchNorm: gloo cannot all_gather CUDA tensors into one tensor, which it
  asks of its group.)
- fairseq (when installed): WMT'16's transformer big by all_reduce on one rank (its recipe's
  float16), killed and resumed; IWSLT'14's transformer by all_reduce over 2 ranks sharing the GPU
  (DDP over cuda:gloo), killed and resumed; IWSLT'14's transformer and the LSTM language model,
  2 models sharing the GPU, exchanging checkpoints (IWSLT'14 killed and resumed).
On a GPU the checks run as many at a time as its free memory holds (torch.cuda.mem_get_info, asked
once before they start): each is given the paper's V100 memory per process it puts on the GPU (16 GB
vision, 32 GB translation: what its recipe was sized for), a check starts while the running ones'
sum and its own fit, and one that needs more than the whole GPU runs alone: about 150 GB free (an
H200) runs 7 at once, a 16 or 32 GB card one at a time. Prints one table and the runs' environment; exits 1 when a
check failed. Without a GPU it rehearses the same jobs on the CPU at preflight's CPU sizes.
Each check's logs stay under FOLDER; its saved models and checkpoints are deleted once it is judged.

    python scripts/one_gpu_check.py [FOLDER]      # runs under FOLDER (default: a temporary one)
"""
import argparse
import concurrent.futures
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from codistill_experiments import preflight  # noqa: E402
from codistill_experiments.jobs import SHARED_GPU_BACKEND, visible_gpus  # noqa: E402
from codistill_experiments.runlog import FINISHED, METRICS_FILE, end_state, read_records  # noqa: E402

ONE_RANK = ("method=allreduce", "scale.ranks_per_model=1", "scale.ranks_per_node=1")
TWO_MODELS = ("method=codistill", "scale.ranks_per_model=1", "scale.ranks_per_node=2")
# (name, paper workload, overrides replacing its method and placement, kill and resume, share the GPU)
CHECKS = [
    ("ResNet-50, all_reduce, NCCL", "imagenet_resnet50", ONE_RANK, True, False),
    ("ResNet-50, all_reduce, NCCL, float16 + loss scaling", "imagenet_resnet50", (*ONE_RANK, "workload.amp=true"),
     False, False),
    ("ResNet-50, all_reduce, NCCL, deterministic kernels, channels-last", "imagenet_resnet50",
     (*ONE_RANK, "deterministic=true", "workload.channels_last=true"), True, False),
    ("WRN-28-10, all_reduce, NCCL", "cifar10_wrn", ONE_RANK, False, False),
    ("Criteo DNN, all_reduce, NCCL", "criteo", ONE_RANK, False, False),
    ("ResNet-50, codistillation (predictions), 2 models sharing the GPU", "imagenet_resnet50", TWO_MODELS, True, True),
    ("Criteo DNN, codistillation (checkpoints), 2 models sharing the GPU", "criteo",
     (*TWO_MODELS, "method.exchange=checkpoints"), False, True),
    # fairseq: one process per rank; a model of one rank starts no process group. These check
    # fairseq's CUDA path (float16 where the recipe asks for it, checkpoints, beam search, resume),
    # and a model of 2 ranks its distributed path (DDP over the shared backend, not NCCL)
    ("WMT'16 transformer big, all_reduce (fairseq)", "wmt16_transformer_big", ONE_RANK, True, False),
    ("IWSLT'14 transformer, all_reduce, 2 ranks sharing the GPU (fairseq)", "iwslt14_transformer",
     ("method=allreduce", "scale.ranks_per_model=2", "scale.ranks_per_node=2"), True, True),
    ("IWSLT'14 transformer, codistillation (checkpoints), 2 models sharing the GPU (fairseq)", "iwslt14_transformer",
     (*TWO_MODELS, "method.exchange=checkpoints"), True, True),
    ("LSTM language model, codistillation (checkpoints), 2 models sharing the GPU (fairseq)", "commoncrawl_lstm",
     (*TWO_MODELS, "method.exchange=checkpoints"), False, True),
]
CLOSE = 1e-3   # largest relative difference of a resumed run's logged values called close (CUDA's nondeterministic kernels)


def job(workload, replaced, gpus, data=()):
    """The preflight job of `workload` with its method and placement replaced (on the CPU: its CPU sizes)."""
    kept = [o for o in workload.overrides if not o.startswith("method")]
    sizes = () if gpus else (*workload.tiny, "scale.gpus_per_rank=0")
    # all_reduce has no exchange period (Criteo's bounds set one)
    bounds = [o for o in workload.bounds if not (o.startswith("method.") and "method=allreduce" in replaced)]
    return ["scale=paper", *kept, *replaced, *bounds, *sizes, *data, "trace=true"]


def prepared(workload_name, replaced, root, gpus):
    """The job's overrides, its data generated under root. Hydra's compose is not thread-safe: the
    jobs are prepared one after another, then run at once."""
    workload = preflight.BY_NAME[workload_name]
    scale = preflight.compose(job(workload, replaced, gpus))["scale"]
    data = preflight.generated_data(workload, Path(root) / "data",
                                    int(scale["batch_per_rank"]) * int(scale["ranks_per_model"]))
    return job(workload, replaced, gpus, data)


def check(overrides, kill, root, env):
    """{check: "pass" | what failed} of one job (its processes started with environment `env`), and its
    run's header."""
    root = Path(root)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    outcome, header = {}, None
    started = time.monotonic()
    preflight.run(overrides, root / "reference", logs / "reference.log", env=env)
    outcome["wall s"] = f"{time.monotonic() - started:.0f}"
    reference = preflight.run_directory(root / "reference")
    state = end_state(reference / METRICS_FILE)[0] if reference else None
    if state != FINISHED:
        outcome["trains"] = f"the run did not finish: {preflight.tail(logs / 'reference.log', 6)}"
        return outcome, header
    header = next(r for r in read_records(reference / METRICS_FILE) if r["kind"] == "header")
    evals = [r for r in preflight.comparable(reference) if r["kind"] == "eval"]
    outcome["trains"] = "pass" if evals else "no evaluation was logged"
    if "method=codistill" in overrides:
        bits = sum(r.get("comm_bits_inter_node", 0) + r.get("comm_bits_intra_node", 0) for r in evals[-2:])
        outcome["exchanges"] = "pass" if bits > 0 else "no bits were exchanged between the models"
        if "method.exchange=checkpoints" not in overrides:
            outcome["same peer inputs"] = preflight.peer_inputs(reference)
    if kill:
        delivered = preflight.kill_after_commit(overrides, root / "killed", logs / "killed.log", env=env)
        outcome["kill + resume"] = preflight.resume_verdict(overrides, root, reference, delivered, env, CLOSE)
    return outcome, header


def checked(overrides, kill, root, env):
    """check(), then the job's saved models and checkpoints deleted, its logs kept: WMT'16's
    transformer big leaves 2 GB per checkpoint file, 12 GB over its two copies."""
    try:
        return check(overrides, kill, root, env)
    finally:
        for path in Path(root).rglob("*.pt"):
            path.unlink(missing_ok=True)


def gpu_need_gb(workload, share):
    """GPU memory a check is given: the paper's V100 memory for the workload (its recipe's batch was
    sized for it) per process on the GPU (2 where the check's ranks share it)."""
    return preflight.BY_NAME[workload].paper_gb * (2 if share else 1)


def free_gpu_gb():
    """The first visible GPU's free memory in GB (torch.cuda.mem_get_info), asked in a child
    process: this one then holds no CUDA context on the GPU while the checks run."""
    done = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.mem_get_info()[0])"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1e9


def fairseq_installed():
    return importlib.util.find_spec("fairseq") is not None


def run_within(jobs, budget_gb, work, say=print):
    """Runs work(key) for each (key, need in GB) of `jobs` in threads, in order, starting one while
    the needs of those running and its own fit budget_gb (None: all at once); one that needs more
    than budget_gb runs alone. Yields (key, future) as each ends."""
    pending, running = list(jobs), {}   # running: {future: (key, need)}
    with concurrent.futures.ThreadPoolExecutor(max(1, len(pending))) as pool:
        while pending or running:
            for key, need in list(pending):
                fits = budget_gb is None or sum(n for _, n in running.values()) + need <= budget_gb
                if fits or not running:
                    if not fits:
                        say(f"{key}: given {need} GB, more than the {budget_gb:.0f} GB free: it runs alone and "
                            "may not fit", flush=True)
                    running[pool.submit(work, key)] = (key, need)
                    pending.remove((key, need))
            ended, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in ended:
                yield running.pop(future)[0], future


def passed(text):
    return text.startswith(("pass", "n/a")) or text.replace(".", "").isdigit()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="where the runs go (default: a temporary folder)")
    parser.add_argument("--only", nargs="*", help="the checks whose name holds one of these words")
    args = parser.parse_args(argv)
    checks = [c for c in CHECKS if not args.only or any(word in c[0] for word in args.only)]
    root = Path(args.folder or tempfile.mkdtemp(prefix="one-gpu-check-"))
    gpus = visible_gpus()
    print(f"one-GPU check: {gpus or 'no'} GPU(s) visible{'' if gpus else ' (a CPU rehearsal)'}; runs under {root}",
          flush=True)
    budget = free_gpu_gb() if gpus else None   # the CPU rehearsal's small jobs all run at once
    if budget is not None:
        print(f"{budget:.0f} GB free on the GPU: each check is given the paper's V100 memory per process it puts "
              "there (16 GB vision, 32 GB translation), and runs once the running checks leave it that", flush=True)
    outcomes, jobs, arguments = {}, [], {}
    for index, (name, workload, replaced, kill, share) in enumerate(checks):
        if not preflight.BY_NAME[workload].vision and not fairseq_installed():
            outcomes[name] = ({"check": "n/a: fairseq is not installed"}, None)
            continue
        env = {**os.environ, **({SHARED_GPU_BACKEND: "cuda:gloo" if gpus else "gloo"} if share else {})}
        overrides = prepared(workload, replaced, root / f"check{index}", gpus)
        arguments[name] = (overrides, kill, root / f"check{index}", env)
        jobs.append((name, gpu_need_gb(workload, share)))
    for name, future in run_within(jobs, budget, lambda name: checked(*arguments[name])):
        try:
            outcomes[name] = future.result()
        except Exception as error:   # a check that broke is reported with the others
            outcomes[name] = ({"check": f"raised {type(error).__name__}: {error}"}, None)
        print(f"done: {name}", flush=True)
    failed = []
    for name, *_ in checks:
        outcome, header = outcomes[name]
        print(f"\n{name}")
        for key, text in outcome.items():
            print(f"  {key:<17} {text}")
            if not passed(text):
                failed.append(f"{name}: {key}: {text.splitlines()[0] if text else text}")
        if header:
            print(f"  environment       {header.get('environment')}")
    for line in failed:
        print(f"one-GPU check FAILED: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
