"""examples/torchrun_codistill.py under the real torchrun on CPU (gloo), 2 models x 2 ranks: on one
node (--standalone, 4 processes, ranks_per_node=4) and on two "nodes" of 2 processes each (two
torchrun invocations, static rendezvous on 127.0.0.1: ranks_per_node=2, one model per node). Each
model is checked against the models trained in one process by Algorithm 1 written out here (a
model's batch: its 2 ranks' shards of one permutation per epoch; DDP's average over the ranks is
the mean over that batch). A run stopped halfway and resumed from its saved state equals the
uninterrupted run bit for bit; the summary's top-1s, ensemble and parameter average are
recomputed here from the saved models."""
import contextlib
import copy
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from benchmarks.benchlib import free_port
from conftest import ROOT

SCRIPT = ROOT / "examples" / "torchrun_codistill.py"
STEPS = 20          # 16 updates an epoch with 2 ranks a model: the run crosses an epoch
RUNS = {"one_node": ["--exchange", "checkpoints", "--period", "3", "--alpha", "0.5"],
        "two_nodes": ["--exchange", "predictions", "--period", "2", "--alpha", "0.5"]}


def example():
    spec = importlib.util.spec_from_file_location("torchrun_codistill", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torchrun(launch, out, steps, arguments):
    """Starts one torchrun of the example (CPU, gloo); returns the process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "library" / "src"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", *launch, str(SCRIPT),
               "--models", "2", "--steps", str(steps), "--out", str(out), *arguments]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(processes):
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The output folders of the runs: one node, two nodes, and one node stopped at update 10 then
    resumed to STEPS (started together: each process mostly starts up)."""
    root = tmp_path_factory.mktemp("torchrun")
    port = free_port()
    nodes = [["--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
              "--master-port", str(port)] for node in (0, 1)]
    standalone = ["--standalone", "--nproc-per-node", "4"]
    others = [torchrun(standalone, root / "one_node", STEPS, RUNS["one_node"]),
              *[torchrun(node, root / "two_nodes", STEPS, RUNS["two_nodes"]) for node in nodes]]
    try:
        finished([torchrun(standalone, root / "resumed", STEPS // 2, RUNS["one_node"])])
        halfway = torch.load(root / "resumed" / "rank0.pt", weights_only=True)["step"]
        finished([torchrun(standalone, root / "resumed", STEPS, RUNS["one_node"]), *others])
    finally:
        for process in others:
            if process.poll() is None:
                process.kill()
    return root, halfway


@contextlib.contextmanager
def one_thread():
    """torch on one thread, as in the example's processes (OMP_NUM_THREADS=1): on matrices this
    small a second thread only waits, seconds per reference run on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@one_thread()
def reference_models(exchange, period, alpha, steps=STEPS, models=2, ranks=2):
    """The example's models trained in one process. Update s of epoch e = s // E (E updates an
    epoch) takes, for rank r of a model, positions (s % E) x B ... of permutation e's entries
    r, r + k, r + 2k, ... (a DistributedSampler over the model's k ranks, seed 0); a model's batch is
    its k ranks' together, the same for every model. Model i's loss: CE + alpha x the mean over the
    other models j of MSE(f_i(x), teacher_j(x)), where teacher_j is model j itself on updates with
    s % period == 0 for predictions (none in between), and for checkpoints model j's parameters at
    the latest s' <= s with s' % period == 0, at every update."""
    module = example()
    inputs, targets = module.make_data(1024, seed=1).tensors
    per_epoch = len(inputs) // ranks // module.BATCH
    nets = []
    for group in range(models):
        torch.manual_seed(group)
        nets.append(module.make_model())
    optimizers = [module.make_optimizer(net.parameters()) for net in nets]
    stale = None
    for step in range(steps):
        epoch, position = divmod(step, per_epoch)
        order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(epoch))
        rows = slice(position * module.BATCH, (position + 1) * module.BATCH)
        batch = torch.cat([order[rank::ranks][rows] for rank in range(ranks)])
        x, y = inputs[batch], targets[batch]
        if exchange == "checkpoints" and step % period == 0:
            stale = [copy.deepcopy(net) for net in nets]
        logits = [net(x) for net in nets]
        for i, optimizer in enumerate(optimizers):
            if exchange == "checkpoints":
                teachers = [stale[j](x).detach() for j in range(models) if j != i]
            else:
                teachers = [logits[j].detach() for j in range(models) if j != i] if step % period == 0 else []
            loss = F.cross_entropy(logits[i], y)
            if teachers:
                loss = loss + alpha * sum(((logits[i] - t) ** 2).mean() for t in teachers) / len(teachers)
            optimizer.zero_grad()
            loss.backward()
        for optimizer in optimizers:
            optimizer.step()
    return nets


def saved_models(out):
    module = example()
    nets = []
    for group in range(2):
        net = module.make_model()
        net.load_state_dict(torch.load(out / f"model{group}.pt", weights_only=True))
        nets.append(net)
    return nets


def flat(net):
    return torch.nn.utils.parameters_to_vector(net.parameters()).detach()


@pytest.mark.slow
@pytest.mark.parametrize("run", list(RUNS))
def test_torchrun_trains_the_models_of_the_single_process_reference(runs, run):
    root, _ = runs
    arguments = dict(zip(RUNS[run][::2], RUNS[run][1::2]))
    expected = reference_models(arguments["--exchange"], int(arguments["--period"]), float(arguments["--alpha"]))
    trained = saved_models(root / run)
    for got, want in zip(trained, expected, strict=True):
        torch.testing.assert_close(flat(got), flat(want), rtol=0, atol=1e-5)
    # the term acted: without it, or with the other exchange, the models differ
    for other in (reference_models(arguments["--exchange"], int(arguments["--period"]), 0.0),
                  reference_models({"checkpoints": "predictions"}.get(arguments["--exchange"], "checkpoints"),
                                   int(arguments["--period"]), float(arguments["--alpha"]))):
        assert (flat(trained[0]) - flat(other[0])).abs().max() > 1e-3
    # every rank of a model saved the same state, step and teachers
    states = [torch.load(root / run / f"rank{rank}.pt", weights_only=True) for rank in range(4)]
    assert {state["step"] for state in states} == {STEPS}
    for a, b in ((0, 1), (2, 3)):
        for name, tensor in states[a]["model"].items():
            assert torch.equal(tensor, states[b]["model"][name])


@pytest.mark.slow   # the module's torchrun jobs (`runs`): about a minute
def test_a_run_stopped_halfway_and_resumed_equals_the_uninterrupted_run(runs):
    root, halfway = runs
    assert halfway == STEPS // 2 and halfway % 3 != 0     # stopped between two checkpoint exchanges
    for rank in range(4):
        resumed = torch.load(root / "resumed" / f"rank{rank}.pt", weights_only=True)
        whole = torch.load(root / "one_node" / f"rank{rank}.pt", weights_only=True)
        for name, tensor in whole["model"].items():
            assert torch.equal(resumed["model"][name], tensor), (rank, name)
        for got, want in zip(resumed["codistiller"]["exchange"]["vectors"], whole["codistiller"]["exchange"]["vectors"],
                             strict=True):
            assert torch.equal(got, want)
        assert resumed["codistiller"]["inter_node_bits"] == whole["codistiller"]["inter_node_bits"]
        assert resumed["codistiller"]["intra_node_bits"] == whole["codistiller"]["intra_node_bits"]


@pytest.mark.slow   # the module's torchrun jobs (`runs`): about a minute
def test_the_summary_reports_each_model_the_ensemble_and_the_parameter_average_on_held_out_data(runs):
    root, _ = runs
    module = example()
    x, y = module.make_data(2048, seed=2).tensors
    for run in RUNS:
        summary = json.loads((root / run / "summary.json").read_text())
        nets = saved_models(root / run)
        with torch.no_grad():
            logits = [net(x) for net in nets]
            averaged = module.make_model()
            torch.nn.utils.vector_to_parameters((flat(nets[0]) + flat(nets[1])) / 2, averaged.parameters())
            top1 = [(l.argmax(1) == y).float().mean().item() for l in logits]
            ensemble = ((logits[0].softmax(1) + logits[1].softmax(1)) / 2).argmax(1)
            assert summary["steps"] == STEPS and summary["top1"] == pytest.approx(top1, abs=1e-6)
            assert summary["best"] == max(range(2), key=top1.__getitem__)
            assert summary["ensemble_top1"] == pytest.approx((ensemble == y).float().mean().item(), abs=1e-6)
            average_top1 = (averaged(x).argmax(1) == y).float().mean().item()
            assert summary["parameter_average_top1"] == pytest.approx(average_top1, abs=1e-6)


@pytest.mark.slow   # the module's torchrun jobs (`runs`): about a minute
def test_the_two_node_run_counts_the_exchange_between_nodes_and_ddp_inside_them(runs):
    root, _ = runs
    states = [torch.load(root / "two_nodes" / f"rank{rank}.pt", weights_only=True) for rank in range(4)]
    # predictions every 2nd update: 10 exchanges of 32 rows x 8 float32 logits to the one peer, on another node
    assert {state["codistiller"]["inter_node_bits"] for state in states} == {10 * 32 * 8 * 32}
    one_node = torch.load(root / "one_node" / "rank0.pt", weights_only=True)["codistiller"]
    assert one_node["inter_node_bits"] == 0 and one_node["intra_node_bits"] > 0
