"""Translation runs end to end at mini scale: fairseq trains every model in its own processes,
checkpoints travel through snapshot files, and the run directory and metrics log look like a vision
run's. Each check compares with a value computed independently: plain fairseq training, fairseq's
own loader and BLEU scorer, a hand-written NLL loop, the paper's bit count."""
import json
import math
import os
import re
from unittest import mock

import pytest
import torch
from test_config import run_cli
from translation_helpers import PLUGIN_DIR, SMALL, checkpoint_params, hydra_version_base, records_of, without_times

from codistill_experiments.runlog import is_finished, read_records
from codistill_experiments.seeds import model_seed
from codistill_experiments.translation.processes import FAIRSEQ_ENV, run_fairseq

CODISTILL = [*SMALL, "method=codistill", "method.alpha=0.1"]


def load_fairseq_model(checkpoint, data_bin):
    """A checkpoint through fairseq's own loader: (model in eval mode, task). Its task is the plugin's,
    which fairseq loads from --user-dir, as fairseq-generate does (the launcher does not import it)."""
    from argparse import Namespace

    from fairseq import checkpoint_utils, utils

    utils.import_user_module(Namespace(user_dir=str(PLUGIN_DIR)))
    with hydra_version_base("1.1"), mock.patch.dict(os.environ, FAIRSEQ_ENV):  # fairseq pickles its config
        [model], _, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)],
                                                                         arg_overrides={"data": str(data_bin)})
    return model.eval(), task


def parameter_count(checkpoint, data_bin):
    return sum(p.numel() for p in load_fairseq_model(checkpoint, data_bin)[0].parameters())


def fairseq_reported_bleu(path):
    return float(re.search(r"Generate test with beam=\d+: BLEU = ([0-9.]+)", path.read_text()).group(1))


def validation_nll_bits(checkpoint, data_bin):
    """NLL per target token (base 2) of a checkpoint on the validation set, with fairseq's own
    loader and a plain loop (no criterion)."""
    model, task = load_fairseq_model(checkpoint, data_bin)
    task.load_dataset("valid")
    pad = task.target_dictionary.pad()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for batch in task.get_batch_iterator(dataset=task.dataset("valid"), max_tokens=2000).next_epoch_itr(
                shuffle=False):
            logits = model(**batch["net_input"])[0].float()
            keep = batch["target"].ne(pad)
            nll = -torch.log_softmax(logits, -1).gather(-1, batch["target"].unsqueeze(-1)).squeeze(-1)
            total += nll[keep].sum().item()
            tokens += keep.sum().item()
    return total / tokens / math.log(2)


@pytest.mark.slow
def test_a_three_way_mini_run_logs_like_a_vision_run(run_job):
    # 12 updates: epochs of 5 updates, the last one cut short, exchanges at 0, 5 and 10
    n, period = 3, 5
    directory, container = run_job([*CODISTILL, "schedule.max_update=12", f"method.n={n}", f"method.period={period}",
                                    "trace=true"])
    assert re.fullmatch(r"mini-codistill-[0-9a-f]{12}", directory.name) and directory.parent.name == "runs"
    records = read_records(directory / "metrics.jsonl")
    assert records[0]["kind"] == "header" and records[0]["run_id"] == directory.name
    assert "MINI" in records[0]["scale_note"] and records[-1]["kind"] == "end" and is_finished(directory)
    evals, tests = records_of(directory, "eval"), records_of(directory, "test")
    assert [r["kind"] for r in records] == ["header"] + ["eval"] * len(evals) + ["test"] * n + ["end"]
    assert [r["model"] for r in tests] == list(range(n))

    data_bin = sorted((container_root(container) / "data").glob("translation_mini-*"))[0]
    parameters = parameter_count(directory / "model0" / "checkpoint_last.pt", data_bin)
    for model in range(n):
        mine = [r for r in evals if r["model"] == model]
        steps = [r["step"] for r in mine]
        assert steps == sorted(steps) and steps[-1] == container["schedule"]["max_update"] == 12
        for record in mine:
            assert record["val_loss"] == record["val_nll"] and record["val_nll"] > 0 and record["train_loss"] > 0
            assert record["label_smoothing"] == pytest.approx(0.1) and record["lr"] > 0
            # alpha_0 x gamma^(epochs completed before this record's last update), gamma = 1.1 (A.3)
            assert record["alpha"] == pytest.approx(0.1 * 1.1 ** (math.ceil(record["epoch"] - 1e-9) - 1))
            # every exchange point 0, T, 2T, ... up to the last update: n - 1 peers' parameters in float32
            exchanges = (record["step"] - 1) // period + 1
            assert record["comm_bits_inter_node"] == exchanges * (n - 1) * parameters * 32
        per_epoch = mine[0]["step"]   # the first validation ends epoch 1
        assert [r["epoch"] for r in mine] == pytest.approx([r["step"] / per_epoch for r in mine])
        # The logged validation NLL is the final model's, computed here by a plain loop.
        final = directory / f"model{model}" / "checkpoint_last.pt"
        assert mine[-1]["val_nll"] == pytest.approx(validation_nll_bits(final, data_bin), rel=1e-5)
        # BLEU: our sacreBLEU on fairseq's beam-search output equals fairseq's own sacreBLEU scorer.
        test = tests[model]
        assert test["step"] == 12 and test["sentences"] == 40 and "tok:13a" in test["bleu_signature"]
        assert round(test["bleu"], 2) == fairseq_reported_bleu(directory / f"model{model}" / "generate-test.txt")

    # Lock-step: at update s every teacher is its peer exactly as it was after floor(s/T)*T updates.
    traces = [[json.loads(line) for line in open(directory / f"model{m}" / "trace.jsonl")] for m in range(n)]
    own = [{entry["step"]: entry["own"] for entry in trace} for trace in traces]
    for model, trace in enumerate(traces):
        peers = [j for j in range(n) if j != model]
        assert [entry["step"] for entry in trace] == list(range(12))
        for entry in trace:
            source = entry["step"] // period * period
            assert entry["teachers_from_step"] == [source] * (n - 1)
            assert entry["teachers"] == [own[peer][source] for peer in peers]
    assert own[0][period] != own[0][0]
    assert not (directory / "exchange").exists()   # snapshots are removed when the run ends


def container_root(container):
    from pathlib import Path

    return Path(container["results_root"])


def plain_fairseq_arguments(container, data_bin, seed, save_dir, extra=()):
    """fairseq-train with fairseq's own task and criterion, written out from the config values."""
    w, s, m = container["workload"], container["schedule"], container["workload"]["model"]
    sizes = [item for key in ("encoder_layers", "decoder_layers", "encoder_embed_dim", "decoder_embed_dim",
                              "encoder_ffn_embed_dim", "decoder_ffn_embed_dim", "encoder_attention_heads",
                              "decoder_attention_heads", "dropout")
             for item in ("--" + key.replace("_", "-"), str(m[key]))]
    return [str(data_bin), "--task", "translation", "-s", "src", "-t", "tgt", "--arch", "transformer", *sizes,
            "--share-decoder-input-output-embed", "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)",
            "--lr", str(s["lr"]), "--lr-scheduler", "inverse_sqrt", "--warmup-updates", str(s["warmup_updates"]),
            "--warmup-init-lr", str(s["warmup_init_lr"]), "--max-update", str(s["max_update"]),
            "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", str(s["label_smoothing"]),
            "--max-tokens", str(w["max_tokens"]), "--seed", str(seed), "--save-dir", str(save_dir),
            "--required-batch-size-multiple", str(w["required_batch_size_multiple"]),
            "--no-epoch-checkpoints", "--cpu", "--num-workers", "0", *extra]


@pytest.mark.slow
def test_alpha_zero_makes_each_model_plain_fairseq_training_with_its_seed(run_job, tmp_path):
    seed = 3
    directory, container = run_job([*CODISTILL, "schedule.max_update=12", "method.alpha=0",
                                    "method.coordinated_sampling=false", "method.period=3", f"seed={seed}"])
    evals = records_of(directory, "eval")
    assert evals[-1]["comm_bits_inter_node"] > 0 and evals[-1]["teachers_from_step"] == [9]  # it did exchange
    data_bin = sorted((tmp_path / "data").glob("translation_mini-*"))[0]
    for model in range(2):
        plain = tmp_path / f"plain{model}"
        run_fairseq("train", plain_fairseq_arguments(container, data_bin, model_seed(seed, model), plain),
                    tmp_path / f"plain{model}.log")
        ours = checkpoint_params(directory / f"model{model}" / "checkpoint_last.pt")
        theirs = checkpoint_params(plain / "checkpoint_last.pt")
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[key], theirs[key]) for key in ours), f"model {model} differs"
    first, second = (checkpoint_params(directory / f"model{m}" / "checkpoint_last.pt") for m in range(2))
    assert not torch.equal(first["encoder.embed_tokens.weight"], second["encoder.embed_tokens.weight"])


@pytest.mark.slow
def test_all_reduce_over_two_rank_processes_equals_one_process_accumulating_both_batches(run_job, tmp_path):  # noqa
    directory, container = run_job([*SMALL, "schedule.max_update=12", "method=allreduce",
                                    "workload.model.dropout=0.0"])
    assert container["scale"]["ranks_per_model"] == 2
    evals = records_of(directory, "eval")
    data_bin = sorted((tmp_path / "data").glob("translation_mini-*"))[0]
    plain = tmp_path / "plain"
    run_fairseq("train", plain_fairseq_arguments(container, data_bin, model_seed(0, 0), plain, ["--update-freq", "2"]),
                tmp_path / "plain.log")
    ours = checkpoint_params(directory / "model0" / "checkpoint_last.pt")
    theirs = checkpoint_params(plain / "checkpoint_last.pt")
    for key in ours:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=1e-5)
    parameters = parameter_count(directory / "model0" / "checkpoint_last.pt", data_bin)
    # Mini scale: one rank per node, so the gradient all_reduce crosses nodes: 2 x b_model per update.
    assert evals[-1]["comm_bits_inter_node"] == evals[-1]["step"] * 2 * parameters * 32


# A run killed mid-training and rerun resumes from fairseq's checkpoints and ends with the
# uninterrupted run's log: tests/test_preflight.py (iwslt14_transformer, commoncrawl_lstm) at the paper's shapes.


def test_a_checkpoint_torn_by_a_kill_during_fairseqs_copy_is_restored_from_the_complete_one(tmp_path):
    from codistill_experiments.translation.launcher import FairseqFailed, repair_torn_checkpoint

    state = {"model": {"w": torch.arange(1000.0)}, "step": 7}
    torch.save(state, tmp_path / "checkpoint_best.pt")
    complete = (tmp_path / "checkpoint_best.pt").read_bytes()
    (tmp_path / "checkpoint_last.pt").write_bytes(complete[: len(complete) // 2])   # the copy was cut short
    repair_torn_checkpoint(tmp_path)
    assert (tmp_path / "checkpoint_last.pt").read_bytes() == complete
    repair_torn_checkpoint(tmp_path)   # a complete checkpoint is left alone
    assert torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["step"] == 7
    (tmp_path / "checkpoint_best.pt").unlink()
    (tmp_path / "checkpoint_last.pt").write_bytes(complete[:100])
    with pytest.raises(FairseqFailed, match="incomplete .* no complete copy"):
        repair_torn_checkpoint(tmp_path)


@pytest.mark.slow
def test_submitit_tasks_train_the_same_run_as_the_local_launcher(run_job, tmp_path):
    """One submitit task per rank (as on Slurm): each trains its model's rank, task 0 waits for the
    other models, scores BLEU and writes the log, which equals the locally launched run's."""
    overrides = [*CODISTILL, "schedule.max_update=12", "method.period=4"]
    local, _ = run_job(overrides)
    done = run_cli("-m", *overrides, "launcher=submitit_local", f"results_root={tmp_path / 'submitit'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = tmp_path / "submitit" / "runs" / local.name
    assert is_finished(remote)
    assert without_times(records_of(remote, "eval")) == without_times(records_of(local, "eval"))
    assert records_of(remote, "test") == records_of(local, "test")


@pytest.mark.slow
def test_a_diverged_translation_run_ends_failed_exits_nonzero_and_gives_no_resume_advice(tmp_path):
    """An absurd LR: fairseq raises FloatingPointError("gradients are Nan/Inf"), its NanDetector
    then fails with StopIteration. The run ends as a vision run that diverged does: a failed end
    record naming the model and the likely keys, a non-zero exit with that reason as the last line,
    and a rerun that repeats nothing."""
    job = [*CODISTILL, "schedule.lr=1e6", f"results_root={tmp_path}"]
    done = run_cli(*job, cwd=tmp_path)
    message = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0, done.stderr[-2000:]
    assert re.fullmatch(r"error: diverged: the gradients of model [01] \(rank 0 of its group\) became non-finite at "
                        r"an update after \d+ \(.*\); likely keys: schedule\.lr=1000000\.0, method\.alpha=0\.1\. The "
                        r"run stopped and is recorded as failed", message), message
    assert "resume" not in done.stderr.lower()
    [directory] = (tmp_path / "runs").iterdir()
    records = read_records(directory / "metrics.jsonl")
    kinds = [record["kind"] for record in records]
    assert kinds[0] == "header" and set(kinds[1:-1]) <= {"eval"} and kinds[-1] == "end"
    end = records[-1]
    assert end["status"] == "failed" and "error: " + end["reason"] == message
    assert end["steps"] == max((record["step"] for record in records[1:-1]), default=0)
    assert not records_of(directory, "test") and not (directory / "exchange").exists()
    before = (directory / "metrics.jsonl").read_bytes()
    again = run_cli(*job, cwd=tmp_path)
    assert again.returncode != 0 and "failed: diverged" in again.stderr.strip().splitlines()[-1]
    assert (directory / "metrics.jsonl").read_bytes() == before
