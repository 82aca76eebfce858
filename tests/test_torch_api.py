"""What a torch user expects of the library, on real gloo processes (2 models x 2 ranks):
Layout.device_mesh() is the models x ranks DeviceMesh (coordinates, and the ranks each dimension's
group reduces over); the run's state saved with torch.distributed.checkpoint and loaded into
fresh objects continues bit for bit as the run that never stopped (and the naive dcp.save of
model.state_dict(), which DCP writes once for every rank, keeps one model of two); the evaluation
helpers against values computed by hand on fixed logits."""
import hashlib

import pytest
import torch
import torch._dynamo  # noqa: F401  (a first optimizer imports it: once here, not in each forked rank)
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.nn.functional as F

from benchmarks.benchlib import spawn
from codistill import Codistiller, Layout, evaluate_models, make_process_groups

# Three models' logits on 4 examples of 3 classes, targets 0, 1, 2, 0 (softmax by hand below).
A = [[0, 10, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0]]     # wrong on example 0 only: top-1 3/4
B = [[3, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]]      # right on 0 and 2: 1/2
C = [[3, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]      # right on 0 and 1: 1/2
TARGETS = [0, 1, 2, 0]


def _tensors(*rows):
    return [torch.tensor(r, dtype=torch.float32) for r in rows]


def test_evaluate_models_against_hand_computed_top1_ensemble_and_choice():
    # softmax([3, 0, 0]) = [.9094, .0453, .0453], softmax([0, 10, 0]) = [4.5e-5, .99991, 4.5e-5]:
    # example 0's mean probability is .6063 for class 0 and .3635 for class 1, so the ensemble is
    # right there (the mean of the logits, [2, 3.33, 0], would say class 1); examples 1 and 2:
    # two of three models at softmax([0, 1, 0]) = [.2119, .5761, .2119] carry it; example 3:
    # class 0 at (.7870 + .2119 + .2119) / 3 = .4036 against .2982.
    result = evaluate_models(_tensors(A, B, C), torch.tensor(TARGETS))
    assert result == {"top1": [0.75, 0.5, 0.5], "ensemble_top1": 1.0, "best": 0}
    mean_logits = torch.stack(_tensors(A, B, C)).mean(0).argmax(1)
    assert (mean_logits == torch.tensor(TARGETS)).float().mean().item() == 0.75   # not what is computed
    # chosen on another split: there only C is right twice (A 0, B 1 of 2)
    select = (_tensors([[1, 0, 0], [1, 0, 0]], [[0, 1, 0], [1, 0, 0]], [[0, 1, 0], [0, 1, 0]]), torch.tensor([1, 1]))
    assert evaluate_models(_tensors(A, B, C), torch.tensor(TARGETS), select)["best"] == 2
    # a tie goes to the lower index (B and C both right once)
    select = (_tensors([[1, 0, 0], [1, 0, 0]], [[0, 1, 0], [1, 0, 0]], [[1, 0, 0], [0, 1, 0]]), torch.tensor([1, 1]))
    assert evaluate_models(_tensors(A, B, C), torch.tensor(TARGETS), select)["best"] == 1


def test_evaluate_models_refuses_logits_it_cannot_compare():
    with pytest.raises(ValueError, match="one shape"):
        evaluate_models(_tensors(A, [[0, 1]]), torch.tensor(TARGETS))
    with pytest.raises(ValueError, match="targets of logits have shape"):
        evaluate_models(_tensors(A, B), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="select holds 1 models"):
        evaluate_models(_tensors(A, B), torch.tensor(TARGETS), (_tensors(A), torch.tensor(TARGETS)))


def _mesh_and_evaluate(rank, world_size):
    layout = Layout(n_groups=2, ranks_per_group=2, ranks_per_node=4, rank=rank)
    seen = {}
    for name, groups in (("own groups", None), ("the Codistiller's groups", make_process_groups(layout))):
        mesh = layout.device_mesh(groups=groups)
        sums = {}
        for dim in ("model", "rank"):
            value = torch.tensor([rank])
            dist.all_reduce(value, group=mesh[dim].get_group())
            sums[dim] = value.item()
        seen[name] = {"device_type": mesh.device_type, "names": list(mesh.mesh_dim_names),
                      "mesh": mesh.mesh.tolist(), "coordinate": mesh.get_coordinate(), "sums": sums,
                      "rank group is the model group": groups is None or mesh["rank"].get_group() is groups.group}
    # every rank of model j evaluates model j's logits; the peers gather one per model
    torch.manual_seed(0)
    codistiller = Codistiller(torch.nn.Linear(2, 2), layout)
    logits = _tensors([[2, 0], [0, 1], [1, 0]], [[0, 1], [0, 3], [0, 2]])[layout.group_index]
    select = (_tensors([[0, 1]], [[1, 0]])[layout.group_index], torch.tensor([0]))
    seen["evaluate"] = codistiller.evaluate(logits, torch.tensor([0, 1, 1]), select=select)
    return seen


@pytest.fixture(scope="module")
def four_ranks():
    return spawn(4, _mesh_and_evaluate)


def test_the_layouts_device_mesh_is_models_by_ranks(four_ranks):
    for rank, seen in enumerate(four_ranks):
        group, position = divmod(rank, 2)
        for name in ("own groups", "the Codistiller's groups"):
            assert seen[name] == {
                "device_type": "cpu", "names": ["model", "rank"], "mesh": [[0, 1], [2, 3]],
                "coordinate": [group, position],
                # along "model" the peers at this position (ranks p and 2 + p), along "rank" the
                # model's own ranks (2g and 2g + 1)
                "sums": {"model": position + (2 + position), "rank": 2 * group + (2 * group + 1)},
                "rank group is the model group": True}, (rank, name)


def test_a_device_mesh_needs_the_layouts_world():
    with pytest.raises(ValueError, match="not initialized: call init_process_group"):
        Layout(n_groups=2, ranks_per_group=2, ranks_per_node=4, rank=0).device_mesh()


def test_the_codistillers_evaluate_gathers_one_model_from_each_group(four_ranks):
    # model 0 predicts 0, 1, 0 and model 1 predicts 1, 1, 1 (targets 0, 1, 1): 2/3 each; the
    # ensemble: example 0 (.8808 + .2689) / 2 for class 0, example 2 (.2689 + .8808) / 2 for
    # class 1: all 3 right. Chosen on the one example of the select split, which model 1 alone gets.
    for seen in four_ranks:
        assert seen["evaluate"] == {"top1": [pytest.approx(2 / 3), pytest.approx(2 / 3)], "ensemble_top1": 1.0,
                                    "best": 1}


ROWS, FEATURES, CLASSES, PERIOD, STEPS, SAVED_AT = 8, 6, 4, 3, 8, 5


def _batch(step, layout):
    """Update `step`'s batch of this rank: the model's 2 x ROWS examples drawn for the update (the
    same for every model), this rank's half."""
    draw = torch.Generator().manual_seed(step)
    x, y = torch.randn(2 * ROWS, FEATURES, generator=draw), torch.randint(0, CLASSES, (2 * ROWS,), generator=draw)
    rows = slice(layout.rank_in_group * ROWS, (layout.rank_in_group + 1) * ROWS)
    return x[rows], y[rows]


def _rank_objects(layout, seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, 16), torch.nn.ReLU(), torch.nn.Linear(16, CLASSES))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    codistiller = Codistiller(model, layout, exchange="checkpoints", period=PERIOD, alpha=0.5, optimizer=optimizer)
    return model, codistiller.data_parallel(), optimizer, codistiller


def _train(ddp, optimizer, codistiller, layout, until):
    """Updates from the Codistiller's count to `until`; each update's term and parameters."""
    trace = []
    while codistiller.next_update < until:
        x, y = _batch(codistiller.next_update, layout)
        logits = ddp(x)
        term = codistiller.loss(x, logits)
        optimizer.zero_grad()
        (F.cross_entropy(logits, y) + term).backward()
        optimizer.step()
        vector = torch.nn.utils.parameters_to_vector(ddp.parameters()).detach()
        trace.append([term.item(), hashlib.sha256(vector.numpy().tobytes()).hexdigest()])
    return trace


def _digest(model):
    return hashlib.sha256(torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy().tobytes()).hexdigest()


def _save_load_continue(rank, world_size, folder):
    layout = Layout(n_groups=2, ranks_per_group=2, ranks_per_node=2, rank=rank)
    model, ddp, optimizer, codistiller = _rank_objects(layout, seed=layout.group_index)
    _train(ddp, optimizer, codistiller, layout, SAVED_AT)
    dcp.save(codistiller.dcp_state(optimizer), checkpoint_id=f"{folder}/run")
    dcp.save({"model": model.state_dict()}, checkpoint_id=f"{folder}/naive")
    uninterrupted = _train(ddp, optimizer, codistiller, layout, STEPS)

    # fresh objects, initialised otherwise, loaded from the checkpoint
    model, ddp, optimizer, codistiller = _rank_objects(layout, seed=10 + layout.group_index)
    dcp.load(codistiller.dcp_state(optimizer), checkpoint_id=f"{folder}/run")
    resumed_at, teachers_from = codistiller.next_update, codistiller.teachers_from_step()
    resumed = _train(ddp, optimizer, codistiller, layout, STEPS)

    naive = _rank_objects(layout, seed=20)[0]
    state = {"model": naive.state_dict()}
    dcp.load(state, checkpoint_id=f"{folder}/naive")
    naive.load_state_dict(state["model"])
    return {"uninterrupted": uninterrupted, "resumed": resumed, "resumed_at": resumed_at,
            "teachers_from": teachers_from, "naive": _digest(naive)}


def test_a_run_saved_and_loaded_through_dcp_continues_bit_for_bit(tmp_path):
    ranks = spawn(4, _save_load_continue, str(tmp_path))
    for seen in ranks:
        # the count (the data position), the teachers of the exchange at update 3 and the
        # momentum came back: every later update's term and parameters equal the run that never stopped
        assert (seen["resumed_at"], seen["teachers_from"]) == (SAVED_AT, 3)
        assert seen["resumed"] == seen["uninterrupted"] and len(seen["resumed"]) == STEPS - SAVED_AT
        assert any(term for term, _ in seen["resumed"])
    # the ranks of a model hold one model (each its own half batch, its own term), the two models differ
    parameters = [[digest for _, digest in seen["resumed"]] for seen in ranks]
    assert parameters[0] == parameters[1] and parameters[2] == parameters[3] and parameters[0] != parameters[2]
    # the naive save: DCP wrote the key "model.0.weight" once for all 4 ranks, so every rank
    # loaded the same model
    assert len({seen["naive"] for seen in ranks}) == 1
