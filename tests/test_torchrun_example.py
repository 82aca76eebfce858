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
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT

from benchmarks.benchlib import free_port

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


def saved_state(out, rank):
    """Rank `rank`'s state of the run's last committed step."""
    step = json.loads((out / "committed.json").read_text())["step"]
    return torch.load(out / "state" / f"rank{rank}-step{step}.pt", weights_only=True)


def finished(processes):
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The output folders of the runs: one node, two nodes, and one node stopped at update 10 then
    resumed to STEPS (started together: each process mostly starts up); "halfway" keeps a copy of
    the stopped run as it was at update 10, where the kill test starts from."""
    root = tmp_path_factory.mktemp("torchrun")
    port = free_port()
    nodes = [["--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
              "--master-port", str(port)] for node in (0, 1)]
    standalone = ["--standalone", "--nproc-per-node", "4"]
    others = [torchrun(standalone, root / "one_node", STEPS, RUNS["one_node"]),
              *[torchrun(node, root / "two_nodes", STEPS, RUNS["two_nodes"]) for node in nodes]]
    try:
        finished([torchrun(standalone, root / "resumed", STEPS // 2, RUNS["one_node"])])
        halfway = saved_state(root / "resumed", 0)["step"]
        shutil.copytree(root / "resumed", root / "halfway")
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
    states = [saved_state(root / run, rank) for rank in range(4)]
    assert {state["step"] for state in states} == {STEPS}
    for a, b in ((0, 1), (2, 3)):
        for name, tensor in states[a]["model"].items():
            assert torch.equal(tensor, states[b]["model"][name])


@pytest.mark.slow   # the module's torchrun jobs (`runs`): about a minute
def test_a_run_stopped_halfway_and_resumed_equals_the_uninterrupted_run(runs):
    root, halfway = runs
    assert halfway == STEPS // 2 and halfway % 3 != 0     # stopped between two checkpoint exchanges
    for rank in range(4):
        resumed = saved_state(root / "resumed", rank)
        whole = saved_state(root / "one_node", rank)
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
            top1 = [(logit.argmax(1) == y).float().mean().item() for logit in logits]
            ensemble = ((logits[0].softmax(1) + logits[1].softmax(1)) / 2).argmax(1)
            assert summary["steps"] == STEPS and summary["top1"] == pytest.approx(top1, abs=1e-6)
            assert summary["best"] == max(range(2), key=top1.__getitem__)
            assert summary["ensemble_top1"] == pytest.approx((ensemble == y).float().mean().item(), abs=1e-6)
            average_top1 = (averaged(x).argmax(1) == y).float().mean().item()
            assert summary["parameter_average_top1"] == pytest.approx(average_top1, abs=1e-6)


@pytest.mark.slow   # the module's torchrun jobs (`runs`): about a minute
def test_the_two_node_run_counts_the_exchange_between_nodes_and_ddp_inside_them(runs):
    root, _ = runs
    states = [saved_state(root / "two_nodes", rank) for rank in range(4)]
    # predictions every 2nd update: 10 exchanges of 32 rows x 8 float32 logits to the one peer, on another node
    assert {state["codistiller"]["inter_node_bits"] for state in states} == {10 * 32 * 8 * 32}
    one_node = saved_state(root / "one_node", 0)["codistiller"]
    assert one_node["inter_node_bits"] == 0 and one_node["intra_node_bits"] > 0


KILL_RANK_AT_ITS_SAVE = """\
import os, runpy, sys
import torch
if os.environ["RANK"] == "2":   # killed as it starts to write its state: the other ranks have written theirs
    torch.save = lambda *args, **kwargs: os._exit(9)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow   # torchrun jobs of 4 processes: the fast tier keeps the in-process test below
def test_a_kill_between_two_ranks_saves_resumes_every_rank_from_the_same_step(tmp_path, runs):
    """Committed at update 10; at update 15 rank 2 is killed as it saves, after the other ranks
    saved theirs: the rerun resumes every rank from update 10 and ends with the uninterrupted run's
    models (not ranks 0, 1 and 3 from 15 and rank 2 from 10, whose collectives then never meet)."""
    out, standalone = tmp_path / "run", ["--standalone", "--nproc-per-node", "4"]
    # the one-node run stopped at update 10: the module's, copied (the same torchrun job)
    shutil.copytree(runs[0] / "halfway", out)
    assert json.loads((out / "committed.json").read_text()) == {"step": 10}
    killer = tmp_path / "kill_rank2_at_its_save.py"
    killer.write_text(KILL_RANK_AT_ITS_SAVE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "library" / "src"), os.environ.get("PYTHONPATH", "")])}
    killed = subprocess.run([sys.executable, "-m", "torch.distributed.run", *standalone, str(killer), str(SCRIPT),
                             "--models", "2", "--steps", "15", "--out", str(out), *RUNS["one_node"]],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode != 0, killed.stdout[-3000:] + killed.stderr[-3000:]
    resumed = torchrun(standalone, out, STEPS, RUNS["one_node"])
    try:
        output, _ = resumed.communicate(timeout=180)
    finally:
        resumed.kill()
    assert resumed.returncode == 0, output[-4000:]
    assert json.loads((out / "committed.json").read_text()) == {"step": STEPS}
    expected = reference_models("checkpoints", 3, 0.5)
    for got, want in zip(saved_models(out), expected, strict=True):
        torch.testing.assert_close(flat(got), flat(want), rtol=0, atol=1e-5)


def commit_rank(rank, port, out, phase, results):
    """One of 2 gloo ranks running the example's save and resume; phase 'kill': both commit update
    5, then rank 1 dies before it saves update 10 while rank 0 saves it; phase 'resume': the step
    each rank resumes from and the state it loads."""
    import datetime

    import torch.distributed as dist

    module = example()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=20))
    if phase == "kill":
        module.save_and_commit(out, rank, 5, {"step": 5, "rank": rank})
        if rank == 1:
            os._exit(9)
        try:
            module.save_and_commit(out, rank, 10, {"step": 10, "rank": rank})
        except RuntimeError:   # its peer is gone: it dies too, as torchrun would end it
            os._exit(9)
        os._exit(0)
    step = module.committed_step(out, torch.device("cpu"))
    results.put((rank, step, torch.load(module.state_path(out, rank, step), weights_only=True)))
    dist.destroy_process_group()


def test_only_a_step_every_rank_saved_is_resumed_from(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    for phase in ("kill", "resume"):
        port = free_port()
        ranks = [context.Process(target=commit_rank, args=(rank, port, tmp_path, phase, results)) for rank in range(2)]
        for process in ranks:
            process.start()
        for process in ranks:
            process.join(timeout=60)
        assert all(process.exitcode is not None for process in ranks)
        if phase == "kill":
            assert (tmp_path / "state" / "rank0-step10.pt").exists()   # rank 0 saved update 10, rank 1 never did
            assert not (tmp_path / "state" / "rank1-step10.pt").exists()
            assert json.loads((tmp_path / "committed.json").read_text()) == {"step": 5}
    got = sorted(results.get(timeout=10) for _ in range(2))
    assert got == [(0, 5, {"step": 5, "rank": 0}), (1, 5, {"step": 5, "rank": 1})]
