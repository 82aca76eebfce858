"""Codistiller's collapse guard (codistill/collapse_guard.py): a model that stops telling inputs
apart (its logits the same for every row of the batch: one class whatever the input, the collapse
measured in docs/library.md "Choosing alpha and period (measured)") raises one CollapseWarning; a
model that keeps learning raises none. The rule on hand-made spreads, the spread by hand, and the
guard inside Codistiller on real gloo processes (2 models x 1 rank), where one model's hidden
layer is killed at a known update: its logits are then its last bias, the same for every input."""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from benchmarks.benchlib import spawn
from codistill import Codistiller, CollapseGuard, CollapseWarning, Layout
from codistill.collapse_guard import DROP, EVERY_UPDATES, PATIENCE, logit_spread

PERIOD, STEPS = 5, 120   # checkpoints every 5 updates; the guard looks every 10


def looks(spreads):
    """Looks at updates 0, 10, 20, ... seeing `spreads`: the update the guard warned at (None: none)."""
    guard = CollapseGuard("test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for index, spread in enumerate(spreads):
            guard.judge(10 * index, spread)
    assert len(caught) == (guard.warned_at is not None)
    assert all(w.category is CollapseWarning for w in caught)
    return guard.warned_at


def test_the_constants_the_docs_state():
    assert (EVERY_UPDATES, DROP, PATIENCE) == (10, 0.001, 5)


@pytest.mark.parametrize("calls, looked", [(range(35), [0, 10, 20, 30]),              # every update
                                           (range(0, 40, 3), [0, 12, 24, 36]),         # every 3rd
                                           (range(0, 100, 25), [0, 25, 50, 75]),       # every 25th
                                           ([0, 0, 0, 5, 10, 10], [0, 10])])           # micro-batches
def test_it_looks_once_in_ten_updates(calls, looked):
    guard = CollapseGuard("test")
    seen = []
    guard.judge = lambda step, spread: seen.append(step)
    for step in calls:
        guard.observe(step, torch.randn(4, 3))
    assert seen == looked


def test_the_rule_by_hand():
    # largest earlier spread 2.0, so a look is low under 0.002: the fifth low look in a row warns
    assert looks([1e-4, 1.0, 2.0, 0.0015, 0.001, 0.0, 0.0, 0.0019]) == 70
    assert looks([1e-4, 1.0, 2.0, 0.0015, 0.001, 0.0, 0.0021, 0.0, 0.0]) is None   # 0.0021 breaks the run
    assert looks([1e-4, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0]) is None                     # four lows only
    assert looks([0.5, 1.0, math.nan, math.inf, 0.0, 0.0, 0.0]) == 60              # not finite counts as low
    # early training: a spread that only grows, from a tiny start, never warns; nor does a head
    # initialised to zero (every row's logits 0 until it learns)
    assert looks([1e-6 * 3 ** k for k in range(20)]) is None
    assert looks([0.0] * 10 + [0.5]) is None
    # warned once, however long the collapse lasts
    assert looks([1.0] + [0.0] * 20) == 50


def test_spread_by_hand():
    logits = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    # class 0: rows 1, 3, 5 -> variance 8/3; class 1: 2, 4, 0 -> 8/3; mean 8/3
    assert logit_spread(logits).item() == pytest.approx(8 / 3)
    assert logit_spread(torch.tensor([[0.3, -1.0]] * 4)).item() == 0.0
    tokens = torch.tensor([[[1.0, 0.0], [9.0, 9.0]], [[3.0, 0.0], [9.0, 9.0]]])     # batch 2 x length 2
    keep = torch.tensor([[True, False], [True, False]])                                 # padding ignored
    assert logit_spread(tokens, keep).item() == pytest.approx(0.5)                      # var([1, 3]) / 2


def run(rank, world_size, kill_at, collapse_guard=True):
    """Two models codistilling through checkpoints every PERIOD updates on a learnable 4-class
    problem; model 1's hidden layer is killed (bias -100: every ReLU 0) before update `kill_at`.
    Returns (the update of each CollapseWarning on this rank, its final top-1)."""
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=2, rank=rank)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=generator)
    y = (x[:, :2] > 0).long() @ torch.tensor([1, 2])                      # 4 classes from 2 signs
    torch.manual_seed(layout.group_index)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    codistiller = Codistiller(model, layout, exchange="checkpoints", period=PERIOD, alpha=0.1,
                              collapse_guard=collapse_guard)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    warned = []
    for step in range(STEPS):
        if kill_at is not None and step == kill_at and layout.group_index == 1:
            with torch.no_grad():
                model[0].bias.fill_(-100.0)
        batch = slice(32 * (step % 8), 32 * (step % 8 + 1))
        logits = model(x[batch])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loss = F.cross_entropy(logits, y[batch]) + codistiller.loss(step, x[batch], logits)
        warned += [step for w in caught if issubclass(w.category, CollapseWarning)]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        top1 = (model(x).argmax(-1) == y).float().mean().item()
    return warned, top1


def test_a_model_that_keeps_learning_raises_nothing():
    (warned0, top1_0), (warned1, top1_1) = spawn(2, run, None)
    assert warned0 == warned1 == []
    assert min(top1_0, top1_1) > 0.9


def test_a_collapsed_model_warns_once_at_the_fifth_low_look():
    # looks every 10 updates; killed before update 60, so the looks at 60, 70, 80, 90 and 100 see
    # constant logits (spread exactly 0): the warning comes at update 100, on the collapsed
    # model's rank only.
    (warned0, top1_0), (warned1, top1_1) = spawn(2, run, 60)
    assert warned0 == [] and warned1 == [100]
    assert top1_0 > 0.9 and top1_1 < 0.5          # model 1 predicts one class


def test_collapse_guard_false_silences_it_and_other_values_are_refused():
    assert spawn(2, run, 60, False)[1][0] == []
    with pytest.raises(ValueError, match="collapse_guard='yes' is not True or False"):
        Codistiller(torch.nn.Linear(2, 2), Layout(2, 1, 1, 0), exchange="checkpoints", collapse_guard="yes")


def test_pull_step_by_hand():
    from codistill.collapse_guard import pull_step

    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    sgd = torch.optim.SGD([{"params": [a], "lr": 0.1, "momentum": 0.9}, {"params": [b], "lr": 0.5}], lr=0.5)
    # alpha 0.3, 10 classes: 0.3 x 0.1 / (0.1 x 10) = 0.03 and 0.3 x 0.5 / (1 x 10) = 0.015; the largest
    assert pull_step(sgd, 0.3, 10) == pytest.approx(0.03)
    assert pull_step(sgd, 0.3, 100) == pytest.approx(0.003)
    assert pull_step(torch.optim.Adam([a], lr=0.1), 0.3, 10) is None       # no heavy-ball momentum


def pull_run(rank, world_size):
    """Per setting, the updates at which CollapseWarning came on this rank: 12 updates of SGD whose
    learning rate at update k is 0.0007 x (k + 1) (LambdaLR), so that with momentum 0.9, alpha 1 and
    10 classes the pull on each logit, alpha x lr / ((1 - momentum) x classes), is 0.0007 x (k + 1):
    0.0028 at update 3, 0.0035 at 4 (the limit: 0.003); with 100 classes a tenth of it."""
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=2, rank=rank)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    settings = {"checkpoints T=10": dict(exchange="checkpoints", period=10, alpha=1.0),
                "sharded_checkpoints T=49": dict(exchange="sharded_checkpoints", period=49, alpha=1.0),
                "checkpoints T=50": dict(exchange="checkpoints", period=50, alpha=1.0),
                "predictions T=10": dict(exchange="predictions", period=10, alpha=1.0),
                "alpha 0.3, at most 0.00252": dict(exchange="checkpoints", period=10, alpha=0.3),
                "100 classes, at most 0.00084": dict(exchange="checkpoints", period=10, alpha=1.0, classes=100),
                "no optimizer given": dict(exchange="checkpoints", period=10, alpha=1.0, optimizer=None),
                "collapse_guard=False": dict(exchange="checkpoints", period=10, alpha=1.0, collapse_guard=False),
                "adam": dict(exchange="checkpoints", period=10, alpha=1.0, adam=True)}
    warned = {}
    for name, setting in settings.items():
        setting = dict(setting)
        classes = setting.pop("classes", 10)
        y = torch.arange(16) % classes
        torch.manual_seed(layout.group_index)
        model = torch.nn.Linear(4, classes)
        optimizer = (torch.optim.Adam(model.parameters(), lr=0.0007) if setting.pop("adam", False)
                     else torch.optim.SGD(model.parameters(), lr=0.0007, momentum=0.9))
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: k + 1)
        given = setting.pop("optimizer", optimizer)
        codistiller = Codistiller(model, layout, optimizer=given, **setting)
        warned[name] = []
        for step in range(12):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                loss = F.cross_entropy(model(x), y) + codistiller.loss(x, model(x), step=step)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            warned[name] += [step for w in caught if issubclass(w.category, CollapseWarning)]
            schedule.step()
    return warned


def test_the_measured_region_warns_at_the_first_update_in_it():
    for warned in spawn(2, pull_run):
        assert warned == {"checkpoints T=10": [4], "sharded_checkpoints T=49": [4], "checkpoints T=50": [],
                          "predictions T=10": [], "alpha 0.3, at most 0.00252": [],
                          "100 classes, at most 0.00084": [], "no optimizer given": [],
                          "collapse_guard=False": [], "adam": []}
