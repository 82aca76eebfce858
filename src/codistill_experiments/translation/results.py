"""The end of a fairseq run: BLEU of every translation model's final checkpoint (fairseq's beam
search, scored with sacreBLEU; a language model has its validation NLL only), and metrics.jsonl
assembled from the models' own records, in the layout a vision run's has (header, eval records,
test records, end record)."""
import json
import shutil
import time
from pathlib import Path

from .. import runlog
from ..divergence import fairseq_divergence
from ..jobs import trains_on_gpus, visible_gpus
from .commands import distributed_backend, generate_arguments, model_dir, shape
from .data import is_language_model
from .processes import run_fairseq


def start_log(config, run_directory):
    """metrics.jsonl starts as the header alone; the records are assembled when the run ends."""
    path = Path(run_directory) / runlog.METRICS_FILE
    if path.exists() and [record["kind"] for record in runlog.read_records(path)[:1]] == ["header"]:
        return
    text = json.dumps(header(config)) + "\n"
    runlog.atomic_write_bytes(path, lambda handle: handle.write(text.encode()))


def header(config):
    record = runlog.header(config, environment(config))
    record["scale_note"] = config["workload"].get("note") or record["scale_note"]
    return record


def environment(config):
    """Where the run's fairseq ranks train: on GPUs when the job asks for them and this process
    finds them (jobs.trains_on_gpus), their gradients all_reduced over commands.distributed_backend
    when a model has several ranks."""
    cuda = trains_on_gpus(config)
    _, k = shape(config)
    return runlog.run_environment("cuda" if cuda else "cpu", distributed_backend(cuda) if k > 1 else None,
                                  "float16 (fairseq --fp16)" if cuda and config["workload"]["fp16"] else "float32",
                                  visible_gpus() if cuda else None)


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
    cuda = trains_on_gpus(config)
    # fairseq-generate without --cpu runs on the current device, GPU 0
    run_fairseq("generate", generate_arguments(config, run_directory, data_bin, group, cuda), folder / "generate.log",
                gpu=0 if cuda else None)
    hypotheses, references = read_generation(folder / f"generate-{generation['subset']}.txt")
    score, signature = corpus_bleu(hypotheses, references, config["workload"]["bleu_tokenize"])
    record = {"kind": "test", "model": group, "step": step, "subset": generation["subset"], "bleu": score.score,
              "bleu_signature": signature, "beam": generation["beam"], "lenpen": generation["lenpen"],
              "sentences": len(hypotheses)}
    runlog.atomic_write_bytes(done, lambda handle: handle.write(json.dumps(record).encode()))
    return record


def model_records(run_directory, n):
    """Every eval record the models have written, by step, then model (none for a model stopped
    before its first evaluation)."""
    evals = []
    for group in range(n):
        path = model_dir(run_directory, group) / "evals.jsonl"
        evals += runlog.read_records(path) if path.exists() else []
    return sorted(evals, key=lambda record: (record["step"], record["model"]))


def write_log(config, run_directory, records):
    """metrics.jsonl = its header (the one start_log wrote, else a new one), then `records`, written
    atomically; the exchange snapshots are removed (the run has ended)."""
    path = Path(run_directory) / runlog.METRICS_FILE
    first = runlog.read_records(path)[:1] if path.exists() else []
    head = first[0] if first and first[0]["kind"] == "header" else header(config)
    text = "".join(json.dumps(record) + "\n" for record in [head, *records])
    runlog.atomic_write_bytes(path, lambda handle: handle.write(text.encode()))
    shutil.rmtree(Path(run_directory) / "exchange", ignore_errors=True)


def finish(config, run_directory, data_bin):
    """BLEU of every translation model, then metrics.jsonl = header, every eval record (by step, then model),
    the test records, and the end record; the exchange snapshots are removed."""
    n, _ = shape(config)
    evals = model_records(run_directory, n)
    final_step = {group: max((r["step"] for r in evals if r["model"] == group), default=0) for group in range(n)}
    started = time.monotonic()
    tests = [] if is_language_model(config["workload"]) else [
        test_record(config, run_directory, data_bin, group, final_step[group]) for group in range(n)]
    train_time = max((r["wall_time"] for r in evals), default=0.0)
    end = {"kind": "end", "steps": max(final_step.values()), "wall_time": train_time + time.monotonic() - started}
    write_log(config, run_directory, [*evals, *tests, end])
    tag = "[MINI] " if config["scale"]["name"] == "mini" else ""
    for record in tests:
        print(f"{tag}model {record['model']}: BLEU {record['bleu']:.2f} on {record['subset']} "
              f"({record['sentences']} sentences)", flush=True)


def fail(config, run_directory, diverged):
    """Ends a run whose model diverged (FairseqDiverged) as the vision engine ends one: metrics.jsonl
    = header, the eval records written before, and a failed end record whose reason names the model,
    the update after which it diverged and the likely keys (src/run.py exits non-zero with it)."""
    evals = model_records(run_directory, shape(config)[0])
    after = max((r["step"] for r in evals if r["model"] == diverged.group), default=0)
    end = {"kind": "end", "status": "failed", "reason": fairseq_divergence(diverged.group, diverged.rank, after, config),
           "steps": max((r["step"] for r in evals), default=0), "wall_time": max((r["wall_time"] for r in evals),
                                                                                  default=0.0)}
    write_log(config, run_directory, [*evals, end])
