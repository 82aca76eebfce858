"""Codistillation under torchrun: n models of k ranks each, a model's k ranks GPUs of one node.

One node of 4 GPUs, 2 models x 2 GPUs (on a CPU machine: 4 processes on gloo):

    torchrun --standalone --nproc-per-node 4 examples/torchrun_codistill.py --models 2

Two nodes of 8 GPUs, one model per node (DDP's all_reduce stays inside a node, only the exchange
crosses nodes); run on each node, with its --node-rank:

    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 8 --master-addr HOST0 --master-port 29500 \\
        examples/torchrun_codistill.py --models 2 --out runs/codistill

Run it again with the same --out and more --steps: it resumes from the last committed state (every
rank saves, then rank 0 commits the step: a kill between two ranks' saves never resumes ranks at
different steps). At the end
each model is evaluated on held-out data; the best one, the ensemble of all (mean of their
probabilities) and, for contrast, the average of their parameters are reported in summary.json
(docs/library.md, "At the end: which model to keep"). tests/test_torchrun_example.py runs it.
"""
import argparse
import datetime
import io
import json
import os
from itertools import islice
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset

from codistill import Codistiller, Layout

FEATURES, CLASSES, BATCH = 16, 8, 32      # BATCH: per rank; a model's batch is k x BATCH
TIMEOUT = datetime.timedelta(minutes=30)   # the world's and the Codistiller's groups' collectives
SAVE_EVERY = 100
COMMITTED = "committed.json"   # {"step": s}: the step whose state every rank has saved


def state_path(out, rank, step):
    return out / "state" / f"rank{rank}-step{step}.pt"


def write_atomically(path, data):
    """`data` (bytes) into `path` through a temporary file and a rename (os.replace is atomic): a
    kill at any point leaves the old file or the new one, never a torn one. Each file has one
    writer (a rank its own state, rank 0 the commit), so the temporary name is the file's."""
    temporary = path.with_name(f"{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def save_and_commit(out, rank, step, state):
    """Every rank writes its state of `step`; once all have (a barrier), rank 0 commits the step in
    committed.json; after a second barrier each rank removes its files of other steps. Every
    write is atomic, and until the commit the previous committed step's files are all still
    there, so that a kill at any point leaves one step that every rank can resume from."""
    (out / "state").mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomically(state_path(out, rank, step), buffer.getvalue())
    dist.barrier()
    if dist.get_rank() == 0:
        write_atomically(out / COMMITTED, json.dumps({"step": step}).encode())
    dist.barrier()
    for path in (out / "state").glob(f"rank{rank}-step*.pt"):
        if path != state_path(out, rank, step):
            path.unlink()


def committed_step(out, device):
    """The last committed step, None before the first commit. Rank 0 reads it and sends it to the
    others: on nodes that share no file system, only rank 0's --out holds committed.json."""
    step = -1
    if dist.get_rank() == 0 and (out / COMMITTED).exists():
        step = json.loads((out / COMMITTED).read_text())["step"]
    step = torch.tensor([step], device=device)
    dist.broadcast(step, 0)
    return None if step.item() < 0 else int(step.item())


def make_data(size, seed):
    """Gaussian clusters, 2 per class, partly overlapping (the same on every rank)."""
    centres = 2.0 * torch.randn(2 * CLASSES, FEATURES, generator=torch.Generator().manual_seed(0))
    draw = torch.Generator().manual_seed(seed)
    cluster = torch.randint(0, 2 * CLASSES, (size,), generator=draw)
    return TensorDataset(centres[cluster] + 2.5 * torch.randn(size, FEATURES, generator=draw), cluster % CLASSES)


def make_model():
    return torch.nn.Sequential(torch.nn.Linear(FEATURES, 64), torch.nn.ReLU(), torch.nn.Linear(64, CLASSES))


def make_optimizer(parameters):
    return torch.optim.SGD(parameters, lr=0.05, momentum=0.9)


def held_out_summary(model, layout, codistiller, device):
    """Every model's held-out top-1, the best model, the ensemble's top-1 (the mean of the models'
    probabilities: codistiller.evaluate, which gathers one rank of every model) and, for contrast,
    the top-1 of one model holding the mean of their parameters. (Choose on held-out data you do
    not then report on: the best of n is biased upwards there; evaluate's select= takes such a
    split.) Every rank evaluates its model; the collectives' tensors live on the run's device."""
    x, y = (t.to(device) for t in make_data(2048, seed=2).tensors)
    model.eval()
    with torch.no_grad():
        summary = codistiller.evaluate(model(x), y)
        vector = torch.nn.utils.parameters_to_vector(model.parameters())
        every_vector = [torch.empty_like(vector) for _ in range(layout.world_size)]
        dist.all_gather(every_vector, vector)
        first_ranks = [group * layout.ranks_per_group for group in range(layout.n_groups)]   # one rank a model
        averaged = make_model().to(device)
        torch.nn.utils.vector_to_parameters(torch.stack([every_vector[r] for r in first_ranks]).mean(0),
                                            averaged.parameters())
        return {**summary, "parameter_average_top1": (averaged(x).argmax(1) == y).float().mean().item()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=2, help="n: the world splits into n models of k ranks")
    parser.add_argument("--steps", type=int, default=400, help="updates in all (a resumed run continues to it)")
    parser.add_argument("--exchange", default="predictions",
                        choices=["predictions", "checkpoints", "sharded_checkpoints"])
    parser.add_argument("--period", type=int, default=1, help="updates between exchanges")
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term")
    parser.add_argument("--out", type=Path, default=Path("codistill_out"), help="checkpoints and summary.json")
    args = parser.parse_args()

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank, local_world = int(os.environ["LOCAL_RANK"]), int(os.environ["LOCAL_WORLD_SIZE"])
    if torch.cuda.is_available():
        device, backend = torch.device("cuda", local_rank), "nccl"
        torch.cuda.set_device(device)
    else:
        device, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)   # env:// (torchrun sets MASTER_ADDR, RANK, ...)
    if world % args.models:
        raise SystemExit(f"{world} ranks do not split into {args.models} models")
    layout = Layout(args.models, ranks_per_group=world // args.models, ranks_per_node=local_world, rank=rank)

    torch.manual_seed(layout.group_index)      # each model its own initialisation
    model = make_model().to(device)
    codistiller = Codistiller(model, layout, exchange=args.exchange, period=args.period, alpha=args.alpha,
                              timeout=TIMEOUT)
    ddp = DDP(model, device_ids=[local_rank] if device.type == "cuda" else None,
              process_group=codistiller.model_group)    # averages gradients inside the model only
    optimizer = make_optimizer(ddp.parameters())
    train = make_data(1024, seed=1)
    sampler = layout.shared_batch_sampler(train, seed=0)  # peers see the same batches
    loader = DataLoader(train, batch_size=BATCH, sampler=sampler, drop_last=True)

    args.out.mkdir(parents=True, exist_ok=True)
    step = committed_step(args.out, device) or 0
    if step:                                    # resume: CPU tensors, copied onto the device by each load
        state = torch.load(state_path(args.out, rank, step), map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        codistiller.load_state_dict(state["codistiller"])

    def save():
        save_and_commit(args.out, rank, step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                               "codistiller": codistiller.state_dict(), "step": step})

    while step < args.steps:
        epoch, done_in_epoch = divmod(step, len(loader))
        sampler.set_epoch(epoch)
        for x, y in islice(loader, done_in_epoch, done_in_epoch + args.steps - step):
            x, y = x.to(device), y.to(device)
            logits = ddp(x)
            loss = F.cross_entropy(logits, y) + codistiller.loss(step, x, logits)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % SAVE_EVERY == 0:
                save()
    save()

    # At the end: every model on held-out data; keep the best one, or the ensemble of all.
    summary = held_out_summary(model, layout, codistiller, device)
    if layout.rank_in_group == 0:
        torch.save(model.state_dict(), args.out / f"model{layout.group_index}.pt")
    if rank == 0:
        (args.out / "summary.json").write_text(json.dumps({"steps": step, **summary}, indent=1))
        for group, top1 in enumerate(summary["top1"]):
            print(f"model {group}: held-out top-1 {100 * top1:.2f}%")
        print(f"ensemble of {layout.n_groups} (mean probabilities): {100 * summary['ensemble_top1']:.2f}%; "
              f"one model of their mean parameters: {100 * summary['parameter_average_top1']:.2f}%; "
              f"keep model {summary['best']} ({args.out}/model{summary['best']}.pt) or the ensemble")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
