"""Short runs of each client and method whose logs are recorded in tests/data/reference_logs/, so that
a change of how the method is assembled shows up as a change of numbers (test_one_library.py).

    python tests/reference_logs.py            # records them again (only after an intended change)

The recorded logs were produced by this file's runs on the code before the vision engine and the
fairseq plugin trained through codistill.Codistiller; each file's first line names the commit.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]

from conftest import SHORT, compose_job  # noqa: E402
from translation_helpers import SMALL  # noqa: E402

RECORDED = HERE / "data" / "reference_logs"
SMALL_CLUSTERS = ["workload=clusters_resnet", "workload.train_size=2000", "workload.val_size=500",
                  "workload.batch_per_rank=64", "workload.epoch_scale=1"]

# name -> overrides: every exchange, both clients, batch norm in teachers (clusters_resnet), mixed
# architectures, burn-in with a softened loss, k = 2 ranks per model, and runs without codistillation.
JOBS = {
    "vision-predictions": ["method=codistill", "method.period=2", *SHORT],
    "vision-predictions-kl-burn-in": ["method=codistill", "method.loss=kl", "method.temperature=2",
                                      "method.burn_in_steps=30", *SHORT],
    "vision-checkpoints-batchnorm-mixed": [*SMALL_CLUSTERS, "method=codistill", "method.exchange=checkpoints",
                                           "method.period=5", "workload.models=[{arch:resnet18},{arch:resnet50}]",
                                           *SHORT],
    "vision-sharded-checkpoints": ["method=codistill", "method.exchange=sharded_checkpoints",
                                   "scale.ranks_per_model=2", "method.period=3", *SHORT],
    "vision-allreduce": ["method=allreduce", *SHORT],
    "translation-checkpoints": [*SMALL, "method=codistill", "method.alpha=0.1", "method.period=5"],
}
VOLATILE = {"wall_time"}


def comparable(records):
    """The records a change of assembly must not move: every eval and test record, less wall time."""
    return [{key: value for key, value in record.items() if key not in VOLATILE}
            for record in records if record["kind"] in ("eval", "test")]


def run(name, results_root):
    from codistill_experiments.launch import launch
    from codistill_experiments.runlog import read_records, run_dir

    container = compose_job(JOBS[name], results_root)
    directory = run_dir(container)
    launch(container, directory)
    return comparable(read_records(directory / "metrics.jsonl"))


def recorded(name):
    lines = (RECORDED / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]


if __name__ == "__main__":
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    RECORDED.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or JOBS:
        with tempfile.TemporaryDirectory() as root:
            records = run(name, root)
        lines = [json.dumps({"recorded_at_commit": commit, "job": JOBS[name]})] + [json.dumps(r) for r in records]
        (RECORDED / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        print(name, len(records), "records")
