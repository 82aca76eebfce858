"""Translation runs (paper Sec. 4.2, A.3, A.5): n fairseq transformers, each trained by fairseq
itself (`fairseq-train` with the `src/codistill_fairseq` plugin) and codistilled through checkpoint
snapshots on the run directory's file system.

A run has n model groups of k ranks (method.n x scale.ranks_per_model); a group is one fairseq
world (its own data parallelism, all_reduce over its k ranks), and groups share nothing but the
snapshot files. Every rank is one fairseq-train process: forked from this process by the local
launcher (fairseq and torch are imported once for a whole sweep), or started by Slurm/submitit
with one task per rank. fairseq runs in its own process, so the unsafe checkpoint loading it needs
on torch >= 2.6 (TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD) and its Hydra set-up stay out of this one.

Layout of a run directory (results/runs/<scale>-<method>-<hash>):
  metrics.jsonl          header, eval records of every model, test (BLEU) records, end record
  model<i>/              fairseq's save dir (checkpoint_last.pt: the model, for resume and BLEU),
                         evals.jsonl (model i's records), train-rank<r>.log, generate-test.txt
  exchange/model<i>/     parameter snapshots step<s>.pt (removed when the run finishes)
"""
import json
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
import zipfile
from pathlib import Path

from . import runlog
from .engine import model_seed
from .translation_data import mini_data_bin

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "codistill_fairseq"
# fairseq's checkpoints pickle argparse.Namespace; torch >= 2.6 refuses them unless told otherwise.
FAIRSEQ_ENV = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
MODEL_FLAGS = ("encoder_layers", "decoder_layers", "encoder_embed_dim", "decoder_embed_dim",
               "encoder_ffn_embed_dim", "decoder_ffn_embed_dim", "encoder_attention_heads",
               "decoder_attention_heads", "dropout", "attention_dropout", "activation_dropout")
SHARE_FLAGS = {"all": ["--share-all-embeddings"], "decoder": ["--share-decoder-input-output-embed"], "none": []}


def shape(config):
    """(n model groups, k ranks per group)."""
    return config["method"]["n"], int(config["scale"]["ranks_per_model"])


def model_dir(run_directory, group):
    return Path(run_directory) / f"model{group}"


def flag(name):
    return "--" + name.replace("_", "-")


def exchanges(config):
    method = config["method"]
    return method["name"] == "codistill" and method["n"] > 1


def fairseq_seed(config, group):
    if config["init_seed"] is not None and config["method"]["n"] == 1:
        return config["init_seed"]
    return model_seed(config["seed"], group)


def data_order_seed(config):
    if not config["method"].get("coordinated_sampling", False):
        return None
    order = config["data"]["order_seed"]
    return config["seed"] if order is None else order


def model_arguments(workload):
    model = workload["model"]
    argv = ["--arch", model["arch"], *SHARE_FLAGS[model["share_embeddings"]]]
    for key in MODEL_FLAGS:
        if model.get(key) is not None:
            argv += [flag(key), str(model[key])]
    return argv


def schedule_arguments(schedule):
    betas = schedule["adam_betas"]
    return ["--optimizer", "adam", "--adam-betas", f"({betas[0]}, {betas[1]})", "--adam-eps", str(schedule["adam_eps"]),
            "--clip-norm", str(schedule["clip_norm"]), "--weight-decay", str(schedule["weight_decay"]),
            "--lr", str(schedule["lr"]), "--lr-scheduler", "inverse_sqrt",
            "--warmup-updates", str(schedule["warmup_updates"]), "--warmup-init-lr", str(schedule["warmup_init_lr"]),
            "--max-update", str(schedule["max_update"]), "--max-epoch", str(schedule["max_epoch"])]


def criterion_arguments(config):
    method, schedule = config["method"], config["schedule"]
    alpha = method.get("alpha", 0.0) if exchanges(config) else 0.0
    return ["--criterion", "codistill", "--label-smoothing", str(schedule["label_smoothing"]),
            "--label-smoothing-schedule", schedule["label_smoothing_schedule"],
            "--label-smoothing-decay", str(schedule["label_smoothing_decay"]),
            "--codistill-alpha", str(alpha), "--alpha-schedule", method.get("alpha_schedule", "constant"),
            "--alpha-gamma", str(method.get("alpha_gamma", 1.0))]


def exchange_arguments(config, run_directory, group):
    n, _ = shape(config)
    workload, method = config["workload"], config["method"]
    argv = ["--codistill-dir", str(run_directory), "--model-index", str(group), "--n-models", str(n),
            "--exchange-period", str(method["period"] if exchanges(config) else 0),
            "--exchange-mode", workload["exchange_mode"], "--exchange-timeout", str(workload["exchange_timeout_s"]),
            "--burn-in-updates", str(method.get("burn_in_steps", 0)),
            "--progress-tag", "[MINI] " if config["scale"]["name"] == "mini" else ""]
    if shape(config)[1] > int(config["scale"]["ranks_per_node"]):
        argv.append("--group-spans-nodes")  # its gradient all_reduce crosses nodes (counted as such)
    order = data_order_seed(config)
    if order is not None:
        argv += ["--data-order-seed", str(order)]
    if config["trace"]:
        argv.append("--trace")
    return argv


def device_arguments(config, cuda, rank_in_group, gpu, init_method):
    _, k = shape(config)
    argv = [] if cuda else ["--cpu"]
    if cuda and config["workload"]["fp16"]:
        argv.append("--fp16")
    argv += ["--distributed-world-size", str(k)]
    if k > 1:
        argv += ["--distributed-rank", str(rank_in_group), "--distributed-init-method", init_method,
                 "--distributed-no-spawn", "--device-id", str(gpu),
                 "--distributed-backend", "nccl" if cuda else "gloo",
                 "--ddp-backend", "pytorch_ddp" if cuda else "legacy_ddp"]
    elif cuda:
        argv += ["--device-id", str(gpu)]
    return argv


def train_arguments(config, run_directory, data_bin, group, rank_in_group=0, gpu=0, init_method=None,
                    cuda=False):
    """The fairseq-train argument list of one rank of model group `group` (`gpu`: its GPU on the node)."""
    workload, schedule = config["workload"], config["schedule"]
    every = str(config["eval_every_epochs"])
    return [str(data_bin), "--user-dir", str(PLUGIN_DIR), "--task", "codistill_translation",
            "-s", workload["source_lang"], "-t", workload["target_lang"],
            *model_arguments(workload), *schedule_arguments(schedule), *criterion_arguments(config),
            "--max-tokens", str(workload["max_tokens"]), "--seed", str(fairseq_seed(config, group)),
            "--required-batch-size-multiple", str(workload["required_batch_size_multiple"]),
            "--save-dir", str(model_dir(run_directory, group)), "--no-epoch-checkpoints",
            "--save-interval", every, "--validate-interval", every,
            "--log-format", "simple", "--log-interval", str(workload["log_interval"]), "--no-progress-bar",
            "--num-workers", str(workload["loader_workers"]),
            *exchange_arguments(config, run_directory, group),
            *device_arguments(config, cuda, rank_in_group, gpu, init_method)]


def generate_arguments(config, run_directory, data_bin, group, cuda=False):
    """fairseq-generate on the test set with beam search (the model's final checkpoint)."""
    workload, generation = config["workload"], config["workload"]["generation"]
    argv = [str(data_bin), "--user-dir", str(PLUGIN_DIR), "--task", "translation",
            "-s", workload["source_lang"], "-t", workload["target_lang"],
            "--path", str(model_dir(run_directory, group) / "checkpoint_last.pt"),
            "--gen-subset", generation["subset"], "--beam", str(generation["beam"]),
            "--lenpen", str(generation["lenpen"]), "--max-len-a", str(generation["max_len_a"]),
            "--max-len-b", str(generation["max_len_b"]), "--max-tokens", str(generation["max_tokens"]),
            "--required-batch-size-multiple", "1",  # every test sentence (see workload.required_batch_size_multiple)
            "--results-path", str(model_dir(run_directory, group)), "--num-workers", "0", "--scoring", "sacrebleu",
            "--sacrebleu-tokenizer", workload["bleu_tokenize"],
            "--seed", str(fairseq_seed(config, group))]
    if generation["remove_bpe"]:
        argv += ["--remove-bpe", generation["remove_bpe"]]
    if not cuda:
        argv.append("--cpu")
    elif workload["fp16"]:
        argv.append("--fp16")
    return argv


# -- running fairseq in a child process ------------------------------------------------------------

def _fairseq_entry(tool):
    if tool == "train":
        from fairseq_cli.train import cli_main
    elif tool == "generate":
        from fairseq_cli.generate import cli_main
    elif tool == "preprocess":
        from fairseq_cli.preprocess import cli_main
    else:
        raise ValueError(tool)
    return cli_main


def warm_imports():
    """Import fairseq (seconds) once in this process: forked ranks inherit it."""
    import fairseq_cli.generate  # noqa: F401
    import fairseq_cli.preprocess  # noqa: F401
    import fairseq_cli.train  # noqa: F401

    import codistill_fairseq  # noqa: F401


def _die_with_parent(parent):
    """A fairseq process must not outlive the process that started it (a killed launcher would
    leave ranks writing into a run directory that a rerun resumes): Linux's parent-death signal."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _child(tool, argv, log_path, threads, parent, gpu):
    """Body of a forked fairseq process: its own log file, environment, GPU and Hydra version base."""
    import logging

    import torch
    from hydra import version

    _die_with_parent(parent)
    if gpu is not None:  # fairseq selects a device only for distributed ranks; a single-rank model needs it too
        torch.cuda.set_device(gpu)
    os.environ.update(FAIRSEQ_ENV)
    os.environ["CODISTILL_PROGRESS_FD"] = str(os.dup(1))
    log = open(log_path, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log  # also when the parent had replaced them (pytest's capture)
    logging.root.handlers = []
    logging.basicConfig(format="%(asctime)s | %(levelname)s | %(name)s | %(message)s", level=logging.INFO,
                        stream=sys.stdout, force=True)
    torch.set_num_threads(threads)
    version.setbase("1.1")  # fairseq composes its own config through hydra.experimental (Hydra 1.1 API)
    sys.argv = [f"fairseq-{tool}", *argv]
    _fairseq_entry(tool)()
    sys.stdout.flush()


def start_fairseq(tool, argv, log_path, threads=1, gpu=None):
    """Forks a process running `fairseq-<tool> argv` (on GPU `gpu`), its output appended to log_path."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"\n$ fairseq-{tool} {' '.join(argv)}\n")
    sys.stdout.flush()
    sys.stderr.flush()
    process = multiprocessing.get_context("fork").Process(
        target=_child, args=(tool, argv, str(log_path), threads, os.getpid(), gpu), name=f"fairseq-{tool}")
    process.start()
    return process


def log_tail(log_path, lines=15):
    try:
        return "".join(Path(log_path).read_text(errors="replace").splitlines(keepends=True)[-lines:])
    except FileNotFoundError:
        return ""


class FairseqFailed(RuntimeError):
    pass


def wait_all(processes, run_directory):
    """processes: {(group, rank): (process, log path)}. Waits for all; when one fails, stops the
    others and raises an error naming the model, the rank and its log."""
    try:
        while processes:
            for key, (process, log_path) in list(processes.items()):
                process.join(timeout=0.05)
                if process.exitcode is None:
                    continue
                del processes[key]
                if process.exitcode != 0:
                    group, rank = key
                    raise FairseqFailed(
                        f"model {group} (rank {rank} of its group) exited with code {process.exitcode}; the other "
                        f"models were stopped. Its log {log_path} ends with:\n{log_tail(log_path)}\nRerun the same "
                        f"command to resume every model from its last checkpoint in {run_directory}")
    finally:
        for process, _ in processes.values():
            if process.is_alive():
                process.terminate()
        for process, _ in processes.values():
            process.join(timeout=10)
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
                process.join()


def run_fairseq(tool, argv, log_path, threads=1):
    process = start_fairseq(tool, argv, log_path, threads)
    process.join()
    if process.exitcode != 0:
        raise FairseqFailed(f"fairseq-{tool} exited with code {process.exitcode}; {log_path} ends with:\n"
                            f"{log_tail(log_path)}")


# -- a run -------------------------------------------------------------------------------------------

def cuda_available():
    import torch

    return torch.cuda.is_available()


def gpu_of(local_rank):
    """The GPU of a rank on its node (ranks share GPUs round-robin when there are fewer)."""
    import torch

    return local_rank % torch.cuda.device_count()


def data_bin_of(config):
    workload = config["workload"]
    if workload["data_bin"]:
        return Path(workload["data_bin"])
    return mini_data_bin(workload, config["results_root"],
                         lambda argv, log: run_fairseq("preprocess", argv, log))


def repair_torn_checkpoint(folder):
    """fairseq writes the first file of a save atomically (checkpoint_best.pt when the model improved)
    and copies it to the others, checkpoint_last.pt included, with a plain copy: a kill during that
    copy leaves a torn checkpoint_last.pt beside a complete checkpoint_best.pt of the same update.
    Put the complete one back (torch checkpoints are zip files: a torn one lacks its directory)."""
    last, best = Path(folder) / "checkpoint_last.pt", Path(folder) / "checkpoint_best.pt"
    if not last.exists() or zipfile.is_zipfile(last):
        return
    if not (best.exists() and zipfile.is_zipfile(best)):
        raise FairseqFailed(f"{last} is incomplete (its writer was killed) and there is no complete copy; remove "
                            f"{folder} to train that model again from the start")
    temporary = last.with_name(last.name + ".repair")
    shutil.copyfile(best, temporary)
    os.replace(temporary, last)
    print(f"{last} was torn by a kill during fairseq's copy; restored it from {best.name} (same update)", flush=True)


def trained(run_directory, group):
    return (model_dir(run_directory, group) / "trained.json").exists()


def start_log(config, run_directory):
    """metrics.jsonl starts as the header alone; the records are assembled when the run ends."""
    path = Path(run_directory) / runlog.METRICS_FILE
    if path.exists() and [record["kind"] for record in runlog.read_records(path)[:1]] == ["header"]:
        return
    text = json.dumps(header(config)) + "\n"
    runlog.atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def header(config):
    record = runlog.header(config)
    record["scale_note"] = config["workload"].get("note") or record["scale_note"]
    return record


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_rank(config, run_directory, data_bin, group, rank_in_group, local_rank, init_method, cuda):
    gpu = gpu_of(local_rank) if cuda else None
    if rank_in_group == 0:
        repair_torn_checkpoint(model_dir(run_directory, group))
    argv = train_arguments(config, run_directory, data_bin, group, rank_in_group, gpu or 0, init_method, cuda)
    log_path = model_dir(run_directory, group) / f"train-rank{rank_in_group}.log"
    return start_fairseq("train", argv, log_path, config["launcher"]["threads_per_rank"], gpu), log_path


def mark_trained(run_directory, group):
    path = model_dir(run_directory, group) / "trained.json"
    runlog.atomic_write_bytes(path, lambda handle: handle.write(b'{"trained": true}\n'))


def run_local(config, run_directory, data_bin):
    """Every rank of every unfinished model group, forked from this process."""
    n, k = shape(config)
    cuda = cuda_available()
    processes = {}
    for group in range(n):
        if trained(run_directory, group):
            continue
        init_method = f"tcp://127.0.0.1:{_free_port()}" if k > 1 else None
        for rank_in_group in range(k):
            processes[group, rank_in_group] = _train_rank(config, run_directory, data_bin, group, rank_in_group,
                                                          group * k + rank_in_group, init_method, cuda)
    groups = sorted({group for group, _ in processes})
    wait_all(processes, run_directory)
    for group in groups:
        mark_trained(run_directory, group)


def group_leader_address(group, k):
    """Host of rank group*k in a Slurm/submitit job (Slurm places tasks on nodes in blocks)."""
    import submitit

    environment = submitit.JobEnvironment()
    tasks_per_node = environment.num_tasks // environment.num_nodes
    return environment.hostnames[(group * k) // tasks_per_node]


def run_task(config, run_directory, data_bin, rank, local_rank):
    """One rank of a job where every rank is its own task (Slurm, submitit, torchrun)."""
    n, k = shape(config)
    group, rank_in_group = divmod(rank, k)
    failed = model_dir(run_directory, group) / f"failed-rank{rank_in_group}.json"
    failed.unlink(missing_ok=True)
    if not trained(run_directory, group):
        init_method = None
        if k > 1:
            host = (group_leader_address(group, k) if "SLURM_JOB_ID" in os.environ or "SUBMITIT_EXECUTOR" in os.environ
                    else os.environ["MASTER_ADDR"])
            init_method = f"tcp://{host}:{int(os.environ['MASTER_PORT']) + 1 + group}"
        process, log_path = _train_rank(config, run_directory, data_bin, group, rank_in_group, local_rank,
                                        init_method, cuda_available())
        try:
            wait_all({(group, rank_in_group): (process, log_path)}, run_directory)
        except FairseqFailed as error:
            runlog.atomic_write_bytes(failed, lambda handle: handle.write(json.dumps({"error": str(error)}).encode()))
            raise
        if rank_in_group == 0:
            mark_trained(run_directory, group)
    if rank == 0:
        wait_for_groups(run_directory, n, k)
        finish(config, run_directory, data_bin)


def wait_for_groups(run_directory, n, k, poll_s=5.0):
    started = time.monotonic()
    while not all(trained(run_directory, group) for group in range(n)):
        for group in range(n):
            for failed in model_dir(run_directory, group).glob("failed-rank*.json"):
                raise FairseqFailed(f"model {group} failed ({failed}): {json.loads(failed.read_text())['error']}")
        if time.monotonic() - started > 60:
            print(f"waiting for models {[g for g in range(n) if not trained(run_directory, g)]} to finish", flush=True)
            started = time.monotonic()
        time.sleep(poll_s)


# -- the end of a run: BLEU and the metrics log ---------------------------------------------------------

def read_generation(path):
    """(hypotheses, references) of a fairseq-generate output file, in sentence order: its H- lines
    (id, score, hypothesis) and T- lines (id, reference), BPE already removed by --remove-bpe."""
    hypotheses, references = {}, {}
    for line in Path(path).read_text().splitlines():
        tag, _, rest = line.partition("-")
        fields = rest.split("\t")
        if tag == "H" and len(fields) == 3:
            hypotheses[int(fields[0])] = fields[2]
        elif tag == "T" and len(fields) == 2:
            references[int(fields[0])] = fields[1]
    if set(hypotheses) != set(references) or not hypotheses:
        raise ValueError(f"{path}: {len(hypotheses)} hypotheses for {len(references)} references")
    order = sorted(hypotheses)
    return [hypotheses[i] for i in order], [references[i] for i in order]


def corpus_bleu(hypotheses, references, tokenize):
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=tokenize)
    return metric.corpus_score(hypotheses, [references]), str(metric.get_signature())


def test_record(config, run_directory, data_bin, group, step):
    """BLEU of model `group`'s final checkpoint: fairseq's beam search, scored with sacrebleu."""
    folder = model_dir(run_directory, group)
    done = folder / "test.json"
    if done.exists():
        return json.loads(done.read_text())
    generation = config["workload"]["generation"]
    run_fairseq("generate", generate_arguments(config, run_directory, data_bin, group, cuda_available()),
                folder / "generate.log")
    hypotheses, references = read_generation(folder / f"generate-{generation['subset']}.txt")
    score, signature = corpus_bleu(hypotheses, references, config["workload"]["bleu_tokenize"])
    record = {"kind": "test", "model": group, "step": step, "subset": generation["subset"], "bleu": score.score,
              "bleu_signature": signature, "beam": generation["beam"], "lenpen": generation["lenpen"],
              "sentences": len(hypotheses)}
    runlog.atomic_write_bytes(done, lambda handle: handle.write(json.dumps(record).encode()))
    return record


def finish(config, run_directory, data_bin):
    """BLEU of every model, then metrics.jsonl = header, every eval record (by step, then model),
    the test records, and the end record; the exchange snapshots are removed."""
    n, _ = shape(config)
    evals = []
    for group in range(n):
        evals += runlog.read_records(model_dir(run_directory, group) / "evals.jsonl")
    evals.sort(key=lambda record: (record["step"], record["model"]))
    final_step = {group: max((r["step"] for r in evals if r["model"] == group), default=0) for group in range(n)}
    started = time.monotonic()
    tests = [test_record(config, run_directory, data_bin, group, final_step[group]) for group in range(n)]
    path = Path(run_directory) / runlog.METRICS_FILE
    first = runlog.read_records(path)[:1] if path.exists() else []
    head = first[0] if first and first[0]["kind"] == "header" else header(config)
    train_time = max((r["wall_time"] for r in evals), default=0.0)
    end = {"kind": "end", "steps": max(final_step.values()), "wall_time": train_time + time.monotonic() - started}
    text = "".join(json.dumps(record) + "\n" for record in [head, *evals, *tests, end])
    runlog.atomic_write_bytes(path, lambda handle: handle.write(text.encode()))
    shutil.rmtree(Path(run_directory) / "exchange", ignore_errors=True)
    tag = "[MINI] " if config["scale"]["name"] == "mini" else ""
    for record in tests:
        print(f"{tag}model {record['model']}: BLEU {record['bleu']:.2f} on {record['subset']} "
              f"({record['sentences']} sentences)", flush=True)


def launch_translation(config, run_directory, task=None):
    """task: (rank, local_rank) when this process is one task of a multi-task job, else None."""
    run_directory = Path(run_directory)
    run_directory.mkdir(parents=True, exist_ok=True)
    warm_imports()
    data_bin = data_bin_of(config)
    if task is None or task[0] == 0:
        start_log(config, run_directory)
    if task is not None:
        rank, local_rank = task
        n, k = shape(config)
        if int(os.environ.get("WORLD_SIZE", n * k)) != n * k:
            raise RuntimeError(f"the job has {os.environ['WORLD_SIZE']} tasks but the run needs {n * k} ranks "
                               "(method.n x scale.ranks_per_model)")
        run_task(config, run_directory, data_bin, rank, local_rank)
        return rank
    run_local(config, run_directory, data_bin)
    finish(config, run_directory, data_bin)
    return 0

