"""The minimal plain-PyTorch training loop the engine is compared with (bench_loop.py): in-memory
tensors, a fresh shuffle per epoch, SGD with momentum and weight decay, nothing else."""
import resource
import time

import torch
import torch.nn.functional as F


def cpu_seconds():
    """CPU time of this process (every thread: torch's, gloo's) and of its children that have
    ended: what a loop costs, whatever other processes' load does to the wall clock."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def train(model, inputs, targets, batch, epochs, lr, momentum, weight_decay, seed=0):
    """Returns (wall clock, CPU seconds: cpu_seconds()) at the start of every update."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    starts = []
    for _ in range(epochs):
        order = torch.randperm(len(targets), generator=generator)
        for first in range(0, len(targets) - batch + 1, batch):
            starts.append((time.perf_counter(), cpu_seconds()))
            index = order[first:first + batch]
            loss = F.cross_entropy(model(inputs[index]), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return starts
