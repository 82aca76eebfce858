"""Shared pieces of the translation tests: the mini data-bin (built once per session by the real
fairseq-preprocess), a fairseq task/model/criterion built in-process, short mini recipes."""
import contextlib
import json

import pytest
import torch
from conftest import compose_job

from codistill_experiments.runlog import read_records
from codistill_experiments.translation.commands import PLUGIN_DIR
from codistill_experiments.translation.data import mini_data_bin
from codistill_experiments.translation.processes import run_fairseq

# A few hundred pairs, short runs: an epoch is 4 updates, a run 12-32 updates.
SMALL = ["workload=translation_mini", "workload.corpus.train_pairs=400", "workload.corpus.valid_pairs=60",
         "workload.corpus.test_pairs=40", "workload.max_tokens=700", "schedule.max_update=24",
         "schedule.warmup_updates=4"]
TINY_MODEL = ["--arch", "transformer", "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "16",
              "--decoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32", "--decoder-ffn-embed-dim", "32",
              "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
              "--share-decoder-input-output-embed", "--dropout", "0"]


@contextlib.contextmanager
def hydra_version_base(version):
    """fairseq composes its own config through hydra.experimental, refused at version base >= 1.2."""
    from hydra import version as hydra_version

    holder = hydra_version.VersionBase.instance()
    saved = holder.getbase()
    hydra_version.setbase(version)
    try:
        yield
    finally:
        holder.version_base = saved   # may be "unspecified", which setbase() refuses


@pytest.fixture(scope="session")
def mini_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation-data")
    workload = compose_job(SMALL, root)["workload"]
    return mini_data_bin(workload, root, lambda argv, log: run_fairseq("preprocess", argv, log)), workload


def fairseq_cfg(argv):
    from fairseq import options
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    with hydra_version_base("1.1"):
        args = options.parse_args_and_arch(options.get_training_parser(), input_args=argv)
        return convert_namespace_to_omegaconf(args)


@pytest.fixture
def fairseq_task(mini_data):
    """build(criterion args) -> (task, model, criterion, a validation batch), in this process."""
    from fairseq import tasks

    data_bin, _ = mini_data

    def build(criterion_argv):
        cfg = fairseq_cfg([str(data_bin), "--user-dir", str(PLUGIN_DIR), "--task", "codistill_translation",
                           "-s", "src", "-t", "tgt", *TINY_MODEL, *criterion_argv, "--max-tokens", "300", "--cpu"])
        torch.manual_seed(0)
        task = tasks.setup_task(cfg.task)
        model = task.build_model(cfg.model)
        criterion = task.build_criterion(cfg.criterion)
        task.load_dataset("valid")
        batches = task.get_batch_iterator(dataset=task.dataset("valid"), max_tokens=300).next_epoch_itr(shuffle=False)
        return task, model, criterion, next(iter(batches))

    return build


def records_of(directory, kind):
    return [r for r in read_records(directory / "metrics.jsonl") if r["kind"] == kind]


def without_times(records):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in records]


def checkpoint_params(path):
    """Parameters of a fairseq checkpoint (loaded unsafely: fairseq pickles its config)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state["model"]


def evals_file(directory, model):
    return [json.loads(line) for line in (directory / f"model{model}" / "evals.jsonl").read_text().splitlines()]
