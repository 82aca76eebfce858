"""What the bit counter counts, on real gloo processes: an update at alpha 0 exchanges nothing and
counts nothing (all ranks skip it alike, from the same alpha); a checkpoint exchange point skipped
that way is made up at the next update with alpha > 0; the counter's world total is the sum over the
ranks; DDP's gradient all_reduce is counted through data_parallel(), and through count_all_reduce()
for a DDP built by the caller. The expected bits are computed here from the sizes (Section 3's
convention: all_gather over m ranks (m - 1)|x| a device, all_reduce 2|x|)."""
import pytest
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from benchmarks.benchlib import spawn
from codistill import Codistiller, CommCounter, Layout

ROWS, CLASSES = 16, 4
PARAMETERS = 8 * 16 + 16 + 16 * CLASSES + CLASSES   # the MLP below: 212 values


def _model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, CLASSES))


def _schedule(kind):
    return {"zero": 0.0,
            "zero_before_3": lambda step: 0.0 if step < 3 else 0.5,
            "zero_at_2": lambda step: 0.0 if step == 2 else 0.5}[kind]


def _train(rank, world_size, exchange, alpha, steps=6):
    """2 models x 1 rank, period 2; returns (inter-node bits, the teachers' update per update, the
    terms' nonzero updates)."""
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=1, rank=rank)   # peers on two nodes
    model = _model(rank)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    codistiller = Codistiller(model, layout, exchange=exchange, period=2, alpha=_schedule(alpha),
                              prediction_bits=32, optimizer=optimizer)
    data = torch.Generator().manual_seed(0)
    sources, distilled = [], []
    for step in range(steps):
        x, y = torch.randn(ROWS, 8, generator=data), torch.randint(0, CLASSES, (ROWS,), generator=data)
        logits = model(x)
        term = codistiller.loss(x, logits)
        sources.append(codistiller.teachers_from_step())
        if term.item() != 0:
            distilled.append(step)
        optimizer.zero_grad()
        (F.cross_entropy(logits, y) + term).backward()
        optimizer.step()
    return codistiller.counter.inter_node_bits, codistiller.counter.intra_node_bits, sources, distilled


@pytest.mark.parametrize("exchange", ["predictions", "checkpoints"])
def test_alpha_zero_exchanges_nothing_and_counts_nothing(exchange):
    for inter, intra, sources, distilled in spawn(2, _train, exchange, "zero"):
        assert (inter, intra, distilled) == (0, 0, [])
        assert sources == [None] * 6


def test_a_schedule_at_zero_skips_those_exchanges_only():
    # predictions every 2 updates: at 0 and 2 alpha is 0, so only update 4 sends 16 x 4 float32 logits
    for inter, intra, _, distilled in spawn(2, _train, "predictions", "zero_before_3"):
        assert (inter, intra) == (ROWS * CLASSES * 32, 0) and distilled == [4]
    # checkpoints: the first update with alpha > 0 (3) exchanges, then the exchange point 4
    for inter, _, sources, distilled in spawn(2, _train, "checkpoints", "zero_before_3"):
        assert inter == 2 * PARAMETERS * 32
        assert sources == [None, None, None, 3, 4, 4] and distilled == [3, 4, 5]


def test_a_checkpoint_exchange_point_skipped_at_alpha_zero_is_made_up_at_the_next_update():
    for inter, _, sources, distilled in spawn(2, _train, "checkpoints", "zero_at_2"):
        assert sources == [0, 0, 0, 3, 4, 4]      # the teachers are never older than one period
        assert inter == 3 * PARAMETERS * 32 and distilled == [0, 1, 3, 4, 5]


def _world_total(rank, world_size):
    counter = CommCounter()
    counter.charge(100 * (rank + 1), crosses_nodes=True)
    counter.charge(7 * (rank + 1), crosses_nodes=False)
    total = counter.world_total()
    return total.inter_node_bits, total.intra_node_bits, counter.inter_node_bits


def test_the_counters_world_total_is_the_sum_over_the_ranks():
    assert spawn(3, _world_total) == [[600, 42, 100], [600, 42, 200], [600, 42, 300]]


def _all_reduce_counted(rank, world_size, own_ddp):
    """2 models x 2 ranks on one node, alpha 0 (no exchange): the bits are DDP's alone."""
    layout = Layout(n_groups=2, ranks_per_group=2, ranks_per_node=4, rank=rank)
    model = _model(layout.group_index)
    codistiller = Codistiller(model, layout, alpha=0.0)
    ddp = (codistiller.count_all_reduce(DistributedDataParallel(model, process_group=codistiller.model_group))
           if own_ddp else codistiller.data_parallel())
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    x, y = torch.randn(ROWS, 8), torch.randint(0, CLASSES, (ROWS,))
    for _ in range(3):
        logits = ddp(x)
        optimizer.zero_grad()
        (F.cross_entropy(logits, y) + codistiller.loss(x, logits)).backward()
        optimizer.step()
    return codistiller.counter.inter_node_bits, codistiller.counter.intra_node_bits


@pytest.mark.parametrize("own_ddp", [False, True])
def test_ddps_all_reduce_is_counted(own_ddp):
    # 3 updates x all_reduce of the 212 float32 gradients (2 x their bits), inside the node
    assert spawn(4, _all_reduce_counted, own_ddp) == [[0, 3 * 2 * PARAMETERS * 32]] * 4
