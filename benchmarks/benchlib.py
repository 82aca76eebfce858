"""What every benchmark shares: a composed job config, model shape twins
on generated data, real gloo ranks, and the engine's own training step timed in a loop."""
import datetime
import json
import math
import os
import platform
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from codistill import Layout
from codistill_experiments.config import typed_job, validate
from codistill_experiments.run_schedules import run_schedules
from codistill_experiments.training import engine
from codistill_experiments.vision.workloads import mlp
from codistill_experiments.workloads import InMemoryDataset, Workload, batch_is_ready

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "src" / "conf"
RESULTS_JSON = ROOT / "benchmarks" / "results.json"   # every part's raw numbers, which results.md is drawn from
RESNET50_PARAMS = 25_557_032  # torchvision.models.resnet50(): 1000 classes
# The engine's residual MLP with these widths has exactly ResNet-50's parameter count and output
# size: 114*4528 + 4528 + 4528*4528 + 4528 + 4528*1000 + 1000 = 25,557,032.
RESNET50_TWIN = (114, 4528, 4528, 1000)
CPU = torch.device("cpu")


def run_py_environment(**variables):
    """The environment for a `python src/run.py` child started from ROOT: this checkout's code
    first on the import path, `variables` added."""
    return {**os.environ, **variables, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def compose(overrides):
    """A validated job config (a plain dict), composed from src/conf exactly as src/run.py does."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return validate(hydra_compose("codistill", overrides=list(overrides)))


def twin_sizes(n_params, classes=1000, inputs=114):
    """Widths [inputs, h, h, classes] of the engine's residual MLP with about n_params
    parameters: h^2 + h (inputs + classes + 2) + classes = n_params. Each parameter is used once
    per sample, so a forward pass costs ~2 n_params FLOPs per sample."""
    if n_params == RESNET50_PARAMS and classes == 1000 and inputs == 114:
        return RESNET50_TWIN
    b = inputs + classes + 2
    h = round((-b + math.sqrt(b * b + 4 * (n_params - classes))) / 2)
    return (inputs, h, h, classes)


def count_params(sizes):
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def twin_workload(sizes, batch, n_batches, seed=0):
    """Generated data (Gaussian inputs, uniform labels) for a twin with these widths."""
    generator = torch.Generator().manual_seed(seed)
    n = batch * n_batches
    inputs = torch.randn(n, sizes[0], generator=generator)
    targets = torch.randint(0, sizes[-1], (n,), generator=generator)
    data = InMemoryDataset(inputs, targets)
    val = InMemoryDataset(inputs[:batch], targets[:batch])
    return Workload(train_set=data, val_set=val, num_classes=sizes[-1],
                    make_model=lambda model_seed, spec=None: mlp(list(sizes), model_seed), collate=batch_is_ready)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


COLLECTIVE_TIMEOUT = datetime.timedelta(seconds=600)


def _rank_main(rank, world_size, out_dir, function, args, timeout=COLLECTIVE_TIMEOUT):
    # a FileStore in the spawn's private folder, as the engine's local launcher
    # (jobs.local_rendezvous): a port probed free and released can be bound by a job starting
    # beside this one before rank 0 binds it, and its ranks then meet the wrong store
    run_as_rank(rank, world_size, out_dir, function, args, timeout=timeout,
                init_method=f"file://{Path(out_dir) / 'rendezvous'}")


def run_as_rank(rank, world_size, out_dir, function, args, threads=1, timeout=COLLECTIVE_TIMEOUT,
                init_method="env://"):
    """Joins the gloo group (`init_method`: env:// where the launcher set MASTER_ADDR and
    MASTER_PORT) with the collectives' `timeout`, runs function(rank, world_size, *args), writes
    its result to out_dir/rank<r>.json."""
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size, timeout=timeout)
    # torch no longer waits for every rank at the end of init_process_group: a rank whose function
    # makes no collective (one that only checks refusals) could leave and close its sockets while a
    # slower peer is still connecting to it, which fails that peer's init ("Connection closed by peer")
    dist.barrier()
    try:
        result = function(rank, world_size, *args)
    finally:
        dist.destroy_process_group()
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result))


def spawn(world_size, function, *args, timeout=COLLECTIVE_TIMEOUT):
    """Runs function on `world_size` real gloo processes on this machine (forked, like the
    engine's local launcher), their collectives timing out after `timeout`; returns every rank's
    result."""
    with tempfile.TemporaryDirectory() as out_dir:
        mp.start_processes(_rank_main, args=(world_size, out_dir, function, args, timeout),
                           nprocs=world_size, join=True, start_method="fork")
        return [json.loads((Path(out_dir) / f"rank{r}.json").read_text()) for r in range(world_size)]


def bench_schedules(cfg, batch_per_model):
    """The run's schedules (run_schedules: the workload's scales of weight decay and alpha
    included), over epochs of a million updates: longer than any benchmark, so that no milestone
    falls within one."""
    return run_schedules(cfg, batch_per_model, steps_per_epoch=10**6)


class TimedRank:
    """One rank of a job, built by the engine (engine.build_rank_state: model groups, DDP with its
    counting hook, the exchange object) with the run's schedules and stepped by engine.train_step."""

    def __init__(self, container, layout, workload, batch):
        self.cfg = typed_job(container)
        torch.manual_seed(self.cfg.seed)
        self.schedules = bench_schedules(self.cfg, batch * layout.ranks_per_group)
        self.state = engine.build_rank_state(self.cfg, layout, workload, CPU, self.schedules)
        self.optimizer = torch.optim.SGD(self.state.model.parameters(), lr=self.schedules.lr(0),
                                         momentum=self.cfg.schedule.momentum)
        self.precision = engine.Precision(False, CPU)
        data = workload.train_set
        n_batches = len(data) // batch
        self.batches = [data.__getitems__(range(i * batch, (i + 1) * batch)) for i in range(n_batches)]
        self.step = 0

    def run(self, steps):
        """`steps` updates; returns the seconds they took on this rank."""
        started = time.perf_counter()
        for _ in range(steps):
            batch = self.batches[self.step % len(self.batches)]
            engine.train_step(self.state, self.optimizer, self.precision, self.schedules, self.step, batch, None)
            self.step += 1
            self.state.method.after_update(self.step)  # as engine.train_rank: local SGD, DiLoCo average here
        return time.perf_counter() - started


def timed_across_ranks(function):
    """Seconds function() took, from a barrier before to a barrier after (the slowest rank's)."""
    dist.barrier()
    started = time.perf_counter()
    function()
    dist.barrier()
    return time.perf_counter() - started


def machine():
    """Where the numbers come from."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_gib, 1), "kernel": platform.release(),
            "python": platform.python_version(), "torch": torch.__version__, "git_commit": commit.strip(),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def layout(n_groups, ranks_per_group, ranks_per_node, rank):
    return Layout(n_groups=n_groups, ranks_per_group=ranks_per_group, ranks_per_node=ranks_per_node, rank=rank)
