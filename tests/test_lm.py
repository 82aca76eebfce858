"""The LSTM language-model stand-in (Anil et al. 2018's Common Crawl, Sec. 3) on the fairseq client:
the generated corpus, the codistill criterion on a language model's output, a short mini run and
the paper-scale job's command line."""
import math
from collections import defaultdict

import pytest
import torch
from conftest import compose_job
from translation_helpers import fairseq_cfg

from codistill_experiments.runlog import read_records
from codistill_experiments.translation.commands import PLUGIN_DIR, train_arguments
from codistill_experiments.translation.data import generate_lm_corpus, mini_data_bin
from codistill_experiments.translation.processes import run_fairseq

pytest.importorskip("fairseq")

SMALL_CORPUS = ["workload=lm_mini", "workload.corpus.train_documents=300", "workload.corpus.valid_documents=30",
                "workload.corpus.test_documents=10"]


def mini_corpus_cfg(tmp_path, *overrides):
    return compose_job([*SMALL_CORPUS, *overrides], tmp_path)["workload"]["corpus"]


def test_the_generated_corpus_is_a_pure_function_of_its_settings(tmp_path):
    cfg = mini_corpus_cfg(tmp_path)
    assert generate_lm_corpus(cfg) == generate_lm_corpus(dict(cfg))
    assert generate_lm_corpus({**cfg, "seed": 1})["train"] != generate_lm_corpus(cfg)["train"]
    corpus = generate_lm_corpus(cfg)
    # one empty line ends each document
    assert [sum(line == "" for line in corpus[split]) for split in ("train", "valid", "test")] == [300, 30, 10]


def test_the_generated_sentences_follow_a_sparse_order_2_chain_over_word_classes(tmp_path):
    cfg = mini_corpus_cfg(tmp_path)
    classes = cfg["classes"]
    following = defaultdict(set)   # the classes seen after each pair of classes (start: `classes`)
    lengths = []
    for line in generate_lm_corpus(cfg)["train"]:
        if not line:
            continue
        words = [int(word[1:]) for word in line.split()]
        lengths.append(len(words))
        context = (classes, classes)
        for word in words:
            following[context].add(word % classes)
            context = (context[1], word % classes)
    assert min(lengths) >= cfg["min_len"] and max(lengths) <= cfg["max_len"]
    assert max(len(seen) for seen in following.values()) == cfg["successors"] < classes


@pytest.fixture(scope="module")
def lm_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm-data")
    workload = compose_job(SMALL_CORPUS, root)["workload"]
    return mini_data_bin(workload, root, lambda argv, log: run_fairseq("preprocess", argv, log)), workload


def test_the_mini_data_bin_holds_the_generated_tokens(lm_data):
    from fairseq.data import Dictionary, data_utils

    data_bin, workload = lm_data
    dictionary = Dictionary.load(str(data_bin / "dict.txt"))
    dataset = data_utils.load_indexed_dataset(str(data_bin / "valid"), dictionary)
    lines = generate_lm_corpus(workload["corpus"])["valid"]
    # fairseq-preprocess: every line, an empty one too, ends with </s>
    assert sum(len(dataset[i]) for i in range(len(dataset))) == sum(len(line.split()) + 1 for line in lines)
    assert dictionary.string(dataset[0]) == lines[0]


def test_the_codistill_criterion_distils_a_language_model_token_by_token(lm_data, tmp_path):
    """The registered criterion on the plugin's LSTM LM: cross-entropy + alpha x the mean over
    peers of the per-token MSE between logits, by hand."""
    from fairseq import tasks

    from codistill import Codistiller, SnapshotStore

    data_bin, _ = lm_data
    cfg = fairseq_cfg([str(data_bin), "--user-dir", str(PLUGIN_DIR), "--task", "codistill_language_modeling",
                       "--tokens-per-sample", "16", "--arch", "codistill_lstm_lm", "--decoder-embed-dim", "8",
                       "--decoder-hidden-size", "12", "--criterion", "codistill", "--codistill-alpha", "0.5",
                       "--batch-size", "4", "--cpu"])
    torch.manual_seed(0)
    task = tasks.setup_task(cfg.task)
    model, criterion = task.build_model(cfg.model), task.build_criterion(cfg.criterion)
    task.load_dataset("valid")
    sample = next(iter(task.get_batch_iterator(dataset=task.dataset("valid"), max_sentences=4)
                       .next_epoch_itr(shuffle=False)))
    teacher = task.build_model(task.model_cfg)
    store = SnapshotStore(tmp_path)
    store.publish(1, 10, dict(teacher.named_parameters()))
    task.codistiller = Codistiller.through_files(
        model, store, 0, 2, period=1, alpha=task.scheduled_alpha, timeout_s=5, publish=False,
        make_teacher=lambda peer: task.build_model(task.model_cfg),
        run_teacher=lambda peer, net_input: peer(**net_input)[0])
    task.update = 10
    model.train()
    loss, sample_size, logging = criterion(model, sample)

    with torch.no_grad():
        logits, teacher_logits = model(**sample["net_input"])[0], teacher(**sample["net_input"])[0]
    target = sample["target"]
    keep = target.ne(task.target_dictionary.pad())
    assert logits.shape == (*target.shape, len(task.target_dictionary))
    nll = torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum")
    distill = ((logits - teacher_logits) ** 2).mean(-1)[keep].sum()
    assert sample_size == keep.sum().item() == sample["ntokens"]
    assert distill.item() > 0
    assert logging["nll_loss"].item() == pytest.approx(nll.item(), rel=1e-5)
    assert logging["distill"].item() == pytest.approx(distill.item(), rel=1e-5)
    assert loss.item() == pytest.approx((nll + 0.5 * distill).item(), rel=1e-5)


@pytest.mark.slow
def test_a_short_mini_run_learns_below_the_uniform_cross_entropy(run_job):
    directory, container = run_job([*SMALL_CORPUS, "method=allreduce", "method.nodes_per_model=1",
                                    "schedule.max_update=30", "workload.validate_interval_updates=10"])
    records = read_records(directory / "metrics.jsonl")
    assert records[0]["kind"] == "header" and "MINI" in records[0]["scale_note"] and records[-1]["kind"] == "end"
    evals = [record for record in records if record["kind"] == "eval"]
    assert evals and evals[-1]["step"] == 30
    assert {10, 20, 30} <= {record["step"] for record in evals}   # every 10 updates, besides each epoch's end
    # fractional epochs within an epoch too: updates over the epoch's updates, one ratio for all
    per_update = {round(record["epoch"] / record["step"], 9) for record in evals}
    assert len(per_update) == 1 and 0 < per_update.pop() < 1
    vocab = container["workload"]["corpus"]["vocab"]
    # below log2 of the words alone (fairseq's output also covers its 4 special symbols)
    assert all(math.isfinite(record["val_nll"]) for record in evals)
    assert evals[-1]["val_nll"] < math.log2(vocab) - 0.5
    assert evals[-1]["val_loss"] == evals[-1]["val_nll"]


def test_the_paper_job_composes_to_anil_et_al_s_model_and_batch(tmp_path):
    container = compose_job(["scale=paper", "workload=commoncrawl_lstm", "dry_run=true"], tmp_path)
    argv = train_arguments(container, tmp_path / "run", "/data", 0, init_method="tcp://127.0.0.1:1")
    value = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    assert value["--task"] == "codistill_language_modeling" and value["--arch"] == "codistill_lstm_lm"
    assert (value["--decoder-layers"], value["--decoder-hidden-size"], value["--decoder-embed-dim"]) == ("2", "1024",
                                                                                                          "256")
    assert "--no-layer-norm" not in argv
    assert (value["--tokens-per-sample"], value["--batch-size"], value["--optimizer"]) == ("32", "128", "adam")
    assert container["schedule"]["name"] == "lm_commoncrawl_adam"
    codistill = compose_job(["scale=paper", "workload=commoncrawl_lstm", "method=codistill"], tmp_path)
    assert (codistill["method"]["exchange"], codistill["method"]["period"]) == ("checkpoints", 50)


def test_a_language_model_refuses_a_translation_schedule(tmp_path):
    from codistill_experiments.config import ConfigError

    with pytest.raises(ConfigError, match="needs a language_model schedule; allowed: lm_commoncrawl_adam, lm_mini"):
        compose_job(["workload=lm_mini", "schedule=translation_mini"], tmp_path)


def test_the_paper_language_model_checkpoints_during_its_one_pass_over_the_data(tmp_path):
    """Common Crawl is never revisited (max_epoch 0: no epoch ends), so the run checkpoints (and
    validates) every so many updates: a requeued job resumes from there, not from update 0, and the
    models' snapshots are pruned back to the oldest checkpoint, not kept all (400 of 170 MB)."""
    container = compose_job(["scale=paper", "workload=commoncrawl_lstm", "method=codistill"], tmp_path)
    argv = train_arguments(container, tmp_path / "run", "/data", 0, init_method="tcp://127.0.0.1:1")
    value = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    every = int(value["--save-interval-updates"])
    assert value["--validate-interval-updates"] == str(every) and value["--keep-interval-updates"] == "1"
    updates, period = container["schedule"]["max_update"], container["method"]["period"]
    assert 10 <= updates // every   # at least 10 checkpoints over the run
    assert every // period + 1 <= 40   # snapshots a model keeps between two checkpoints, not updates // period
