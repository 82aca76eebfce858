"""A Codistiller with torch.compile, bf16 autocast and FSDP2 (fully_shard), on real gloo processes
(CPU): what docs/library.md's section "compile, AMP, FSDP" states, each against a reference.

- compile: a compiled model (DDP over torch.compile(model), the Codistiller given the model; or
  model.compile() in place before the Codistiller) trains the parameters, teachers and
  state_dict() of the eager run, within 1e-5 (2 models x 1 rank, predictions and checkpoints),
  and did compile (dynamo's count of graphs).
- bf16 autocast: the term equals alpha x the MSE computed here from the logits the ranks returned;
  the logits travel as bfloat16 with prediction_bits=None (16 bits a value) and as float32 with 32,
  training alike; a checkpoint exchange under autocast gives the same term.
- FSDP2 inside each model group (2 models x 2 ranks) with the prediction exchange trains the
  parameters of the DDP run, within 1e-6; checkpoint exchanges refuse FSDP2, with a message,
  whether the Codistiller is built before fully_shard or after it, and parameters moved (to
  float64) after the Codistiller was built."""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from benchmarks.benchlib import spawn
from codistill import Codistiller, Layout, make_process_groups

STEPS, ALPHA = 6, 0.5


def make_model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


def batches(rank_in_group, steps=STEPS):
    """Each rank of a model its own batches, the same for every model (peers)."""
    generator = torch.Generator().manual_seed(rank_in_group)
    return [(torch.randn(16, 8, generator=generator), torch.randint(0, 4, (16,), generator=generator))
            for _ in range(steps)]


def train(model, net, codistiller, layout, autocast=False):
    """STEPS updates of SGD with momentum; returns the terms and the logits of every update."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    terms, logits_seen = [], []
    for step, (x, y) in enumerate(batches(layout.rank_in_group)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = net(x)
            term = codistiller.loss(step, x, logits)
            loss = F.cross_entropy(logits, y) + term
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        terms.append(term.item())
        logits_seen.append(logits.detach().float().tolist())
    return terms, logits_seen, str(logits.dtype), str(term.dtype)


def vector(model):
    return torch.nn.utils.parameters_to_vector(model.parameters()).tolist()


def _compiled_and_eager(rank, world_size):
    from torch._dynamo.utils import counters  # graphs compiled: the compiled runs did compile

    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=1, rank=rank)
    results = {}
    for exchange, how in (("predictions", "eager"), ("predictions", "compiled_inside_ddp"), ("checkpoints", "eager"),
                          ("checkpoints", "compiled_inside_ddp"), ("checkpoints", "compile_in_place")):
        model = make_model(layout.group_index)
        if how == "compile_in_place":
            model.compile()         # before the Codistiller: the checkpoint teachers are compiled copies
        codistiller = Codistiller(model, layout, exchange=exchange, period=2, alpha=ALPHA)
        inner = torch.compile(model) if how == "compiled_inside_ddp" else model   # the Codistiller keeps `model`
        net = DistributedDataParallel(inner, process_group=codistiller.model_group)
        torch.compiler.reset()      # forget the graphs of the run before: each compiled run compiles its own
        graphs = counters["stats"]["unique_graphs"]
        terms = train(model, net, codistiller, layout)[0]
        state = codistiller.state_dict()
        results[f"{exchange} {how}"] = {
            "parameters": vector(model), "terms": terms, "keys": sorted(model.state_dict()),
            "teachers": [v.tolist() for v in state["exchange"].get("vectors", [])],
            "bits": state["inter_node_bits"], "graphs": counters["stats"]["unique_graphs"] - graphs}
    return results


@pytest.mark.slow
def test_a_compiled_model_trains_the_parameters_teachers_and_state_of_the_eager_run():
    for rank_results in spawn(2, _compiled_and_eager):
        for exchange, hows in (("predictions", ["compiled_inside_ddp"]),
                               ("checkpoints", ["compiled_inside_ddp", "compile_in_place"])):
            eager = rank_results[f"{exchange} eager"]
            assert any(eager["terms"]) and eager["bits"] > 0 and eager["graphs"] == 0
            for how in hows:
                compiled = rank_results[f"{exchange} {how}"]
                torch.testing.assert_close(torch.tensor(compiled["parameters"]), torch.tensor(eager["parameters"]),
                                           rtol=0, atol=1e-5)
                torch.testing.assert_close(compiled["terms"], eager["terms"], rtol=1e-5, atol=1e-7)
                torch.testing.assert_close(torch.tensor(compiled["teachers"]), torch.tensor(eager["teachers"]),
                                           rtol=0, atol=1e-5)
                assert compiled["keys"] == eager["keys"] and compiled["bits"] == eager["bits"]
                assert compiled["graphs"] > 0


def _autocast(rank, world_size):
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=1, rank=rank)
    results = {}
    for name, exchange, bits in (("bits None", "predictions", None), ("bits 32", "predictions", 32),
                                 ("checkpoints", "checkpoints", None)):
        model = make_model(layout.group_index)
        codistiller = Codistiller(model, layout, exchange=exchange, period=1, alpha=ALPHA, prediction_bits=bits)
        ddp = DistributedDataParallel(model, process_group=codistiller.model_group)
        terms, logits, logits_dtype, term_dtype = train(model, ddp, codistiller, layout, autocast=True)
        results[name] = {"terms": terms, "logits": logits, "logits_dtype": logits_dtype, "term_dtype": term_dtype,
                         "parameters": vector(model), "bits": codistiller.counter.inter_node_bits}
    return results


def test_under_bf16_autocast_the_term_is_the_mse_of_the_gathered_logits_and_they_travel_as_asked():
    ranks = spawn(2, _autocast)
    for name in ("bits None", "bits 32", "checkpoints"):
        for rank, result in enumerate(ranks):
            assert result[name]["logits_dtype"] == "torch.bfloat16" and result[name]["term_dtype"] == "torch.float32"
            own, peer = (torch.tensor(ranks[r][name]["logits"]) for r in (rank, 1 - rank))
            by_hand = [ALPHA * ((own[step] - peer[step]) ** 2).mean().item() for step in range(STEPS)]
            torch.testing.assert_close(result[name]["terms"], by_hand, rtol=1e-5, atol=1e-8)
            assert all(torch.isfinite(torch.tensor(result[name]["parameters"])))
    values = STEPS * 16 * 4                       # a 16 x 4 batch of logits an update, to one peer
    assert ranks[0]["bits None"]["bits"] == 16 * values and ranks[0]["bits 32"]["bits"] == 32 * values
    # bfloat16 values are exact in float32: sending float32 changes the bits, not the training
    assert ranks[0]["bits None"]["parameters"] == ranks[0]["bits 32"]["parameters"]


def _fsdp_or_ddp(rank, world_size):
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.fsdp import fully_shard

    layout = Layout(n_groups=2, ranks_per_group=2, ranks_per_node=4, rank=rank)
    results = {}
    for wrapper in ("ddp", "fsdp2"):
        model = make_model(layout.group_index)
        codistiller = Codistiller(model, layout, exchange="predictions", period=2, alpha=ALPHA)
        if wrapper == "ddp":
            net = DistributedDataParallel(model, process_group=codistiller.model_group)
        else:
            net = fully_shard(model, mesh=DeviceMesh.from_group(codistiller.model_group, "cpu"))
        terms = train(model, net, codistiller, layout)[0]
        full = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in model.parameters()]
        results[wrapper] = {"terms": terms, "parameters": torch.cat([p.detach().flatten() for p in full]).tolist(),
                            "sharded": any(hasattr(p, "full_tensor") for p in model.parameters())}
    return results


@pytest.mark.slow
def test_fsdp2_inside_a_model_group_with_the_prediction_exchange_trains_the_ddp_runs_models():
    ranks = spawn(4, _fsdp_or_ddp)
    for result in ranks:
        assert result["fsdp2"]["sharded"] and not result["ddp"]["sharded"]
        fsdp2, ddp = (torch.tensor(result[wrapper]["parameters"]) for wrapper in ("fsdp2", "ddp"))
        torch.testing.assert_close(fsdp2, ddp, rtol=0, atol=1e-6)
        torch.testing.assert_close(result["fsdp2"]["terms"], result["ddp"]["terms"], rtol=1e-5, atol=1e-8)
        assert any(result["ddp"]["terms"])
    assert ranks[0]["ddp"]["parameters"] == ranks[1]["ddp"]["parameters"]      # one model's two ranks
    assert ranks[0]["ddp"]["parameters"] != ranks[2]["ddp"]["parameters"]      # two models


def _fsdp_checkpoints(rank, world_size):
    from torch.distributed.device_mesh import DeviceMesh
    from torch.distributed.fsdp import fully_shard

    layout = Layout(n_groups=2, ranks_per_group=2, ranks_per_node=4, rank=rank)
    messages = {}
    for order in ("codistiller first", "fully_shard first"):
        model = make_model(layout.group_index)
        try:
            if order == "codistiller first":
                codistiller = Codistiller(model, layout, exchange="checkpoints", period=1, alpha=ALPHA)
                fully_shard(model, mesh=DeviceMesh.from_group(codistiller.model_group, "cpu"))
            else:
                groups = make_process_groups(layout)
                fully_shard(model, mesh=DeviceMesh.from_group(groups.group, "cpu"))
                codistiller = Codistiller(model, layout, exchange="checkpoints", period=1, alpha=ALPHA, groups=groups)
            train(model, model, codistiller, layout)
        except ValueError as error:
            messages[order] = str(error)
    model = make_model(layout.group_index)
    codistiller = Codistiller(model, layout, exchange="checkpoints", period=1, alpha=ALPHA)
    model.double()              # parameters moved after the Codistiller was built: it would send the old ones
    try:
        codistiller.prepare(0)
    except ValueError as error:
        messages["moved"] = str(error)
    return messages


def test_checkpoint_exchanges_refuse_fsdp2_in_either_order_and_parameters_moved_after_them():
    for messages in spawn(4, _fsdp_checkpoints):
        before = messages["codistiller first"]
        assert "is no longer the tensor the checkpoint exchange was built on (fully_shard" in before
        assert "checkpoint exchanges do not support DTensor parameters" in messages["fully_shard first"]
        assert "exchange='predictions'" in messages["fully_shard first"]
        assert "'0.weight' is no longer the tensor" in messages["moved"] and "dtype" in messages["moved"]


def _gather_without_all_gather_single(rank, world_size):
    from codistill import CommCounter
    from codistill.counting import counted_all_gather_into

    del torch.distributed.all_gather_single   # as on torch 2.11, inside the library's range (torch>=2.4)
    sent = torch.full((3,), float(rank + 1))
    output = torch.zeros(world_size * 3)
    counted_all_gather_into(output, sent, torch.distributed.group.WORLD, CommCounter(), False).wait()
    return output.tolist()


def test_a_torch_without_all_gather_single_gathers_into_the_kept_tensor():
    """A checkpoint exchange's collective on a torch that has all_gather_into_tensor only (torch 2.11
    has no all_gather_single; torch 2.14 deprecates all_gather_into_tensor for it)."""
    assert spawn(2, _gather_without_all_gather_single) == [[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]] * 2
