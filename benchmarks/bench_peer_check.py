"""The cost of Codistiller's peer check (peer_check.py): seconds per update of a DDP loop of 2
models x 1 rank (gloo, CPU) exchanging predictions at every update, with the check off, read every
100 exchanges (the default), and read at every exchange.

    python -m benchmarks.bench_peer_check [--steps 400] [--width 512] [--rounds 3]
    python -m benchmarks.bench --parts peercheck   # as part 9 of make bench, into results.md

On a GPU each read also makes the host wait for the device once; not measured here (no GPU).
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from benchmarks.benchlib import machine, median, spawn
from codistill import Codistiller, Layout

SETTINGS = {"off": None, "every 100 (default)": 100, "every exchange": 1}


def _seconds_per_update(rank, world_size, every, steps, width):
    torch.set_num_threads(1)
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=2, rank=rank)
    torch.manual_seed(rank)
    model = torch.nn.Sequential(torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, 100))
    codistiller = Codistiller(model, layout, peer_check_every=every)
    ddp = DistributedDataParallel(model, process_group=codistiller.model_group)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(128, 64, generator=generator), torch.randint(0, 100, (128,), generator=generator))
               for _ in range(16)]
    for step in range(steps + 20):
        if step == 20:
            start = time.perf_counter()
        x, y = batches[step % len(batches)]
        logits = ddp(x)
        loss = F.cross_entropy(logits, y) + codistiller.loss(step, x, logits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def measure(steps=400, width=512, rounds=3, progress=print):
    """Seconds per update of each setting: the median over `rounds` rounds, the settings alternated
    within each round so that load on the machine moves them alike."""
    seconds = {name: [] for name in SETTINGS}
    for round_index in range(rounds):
        for name, every in SETTINGS.items():
            seconds[name].append(max(spawn(2, _seconds_per_update, every, steps, width)))
        progress(f"peer check: round {round_index + 1} of {rounds}")
    return {name: median(values) for name, values in seconds.items()}, seconds


def run(progress=print, steps=400, width=512, rounds=3):
    """Part 9 of `make bench` (benchmarks/bench.py)."""
    medians, rounds_seconds = measure(steps, width, rounds, progress)
    params = 64 * width + width + width * 100 + 100
    return {"machine": machine(), "steps": steps, "width": width, "params": params, "batch": 128,
            "seconds_per_update": medians, "rounds": rounds_seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args(argv)
    measured, _ = measure(arguments.steps, arguments.width, arguments.rounds)
    for name, seconds in measured.items():
        print(f"peer check {name:>20}: {1e3 * seconds:.3f} ms/update "
              f"({100 * (seconds / measured['off'] - 1):+.1f} % against off)")


if __name__ == "__main__":
    main()
