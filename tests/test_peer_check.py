"""The misuses of the library that used to train silently wrong, or abort inside gloo with no word
about peers, each stopped by Codistiller's peer check with a message naming the peer and the cause
(real gloo processes: 2 models of 1 rank, or of 2 ranks where DDP is involved). Each rank returns
the message it raised (None: it trained to the end)."""
import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, TensorDataset

from benchmarks.benchlib import spawn
from codistill import Codistiller, Layout, PeerMismatch

STEPS = 4


def dataset(rows=64):
    generator = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(rows, 8, generator=generator), torch.randint(0, 4, (rows,), generator=generator))


def train(rank, world_size, misuse, ranks_per_group=1, exchange="predictions"):
    """A DDP loop of 2 models with one misuse; returns the PeerMismatch message or None."""
    layout = Layout(n_groups=2, ranks_per_group=ranks_per_group, ranks_per_node=world_size, rank=rank)
    torch.manual_seed(layout.group_index)
    classes = 3 if misuse == "classes" and layout.group_index == 1 else 4
    hidden = 16 if misuse == "architecture" and layout.group_index == 1 else 32
    model = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes))
    codistiller = Codistiller(model, layout, exchange=exchange, period=1, alpha=0.5)
    group = None if misuse == "ddp_over_the_world" else codistiller.model_group
    ddp = DistributedDataParallel(model, process_group=group)
    data = dataset()
    sampler = (DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=False)
               if misuse == "whole_world_sampler" else layout.shared_batch_sampler(data, shuffle=False))
    loader = torch.utils.data.DataLoader(data, batch_size=8 if misuse == "batch_size" and rank == 1 else 16,
                                         sampler=sampler)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.1)
    try:
        for step, (x, y) in zip(range(STEPS), loader):
            logits = ddp(x)
            loss = F.cross_entropy(logits, y.clamp(max=classes - 1))
            skipped = misuse == "skipped_update" and rank == 1 and step == 1
            if not skipped:
                shown = step + 1 if misuse == "step_off_by_one" and rank == 1 else step
                loss = loss + codistiller.loss(shown, x, logits)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    except PeerMismatch as error:
        return str(error)
    return None


def messages(misuse, ranks_per_group=1, exchange="predictions"):
    return spawn(2 * ranks_per_group, train, misuse, ranks_per_group, exchange)


def test_correct_use_trains_without_a_word():
    assert messages(None) == [None, None]
    assert messages(None, ranks_per_group=2) == [None] * 4
    assert messages(None, exchange="checkpoints") == [None, None]


def test_peers_given_different_batches_of_the_same_size_are_stopped():
    for message in messages("whole_world_sampler"):
        assert "another batch" in message and "shared_batch_sampler" in message


def test_a_step_off_by_one_on_one_rank_is_stopped():
    first, second = messages("step_off_by_one")
    assert "model 1 is at update 1, this rank at 0" in first
    assert "model 0 is at update 0, this rank at 1" in second


def test_a_rank_that_skips_an_update_is_stopped_at_the_next_exchange():
    first, second = messages("skipped_update")
    assert "model 1 is at update 2, this rank at 1" in first and "every rank must call loss()" in first
    assert "model 0 is at update 1, this rank at 2" in second


def test_ddp_over_the_whole_world_averaging_the_models_into_one_is_stopped():
    for message in messages("ddp_over_the_world", ranks_per_group=2):
        assert "every model holds the same parameters after update 0" in message
        assert "process_group=codistiller.model_group" in message


def test_peers_with_other_batch_sizes_or_classes_are_named():
    first, _ = messages("batch_size")
    assert "model 1 sends logits of 8 rows x 4 classes, this rank 16 x 4" in first
    first, _ = messages("classes")
    assert "model 1 sends logits of 16 rows x 3 classes, this rank 16 x 4" in first


def test_a_teacher_built_with_another_architecture_than_its_peer_is_named():
    first, second = messages("architecture", exchange="checkpoints")
    assert "the teacher built for model 1 has 420 parameters, model 1 sends 212" in first   # 8*32+32+32*4+4 vs 8*16+16+16*4+4
    assert "make_teacher(1) must build model 1's architecture" in first
    assert "the teacher built for model 0 has 212 parameters, model 0 sends 420" in second


def test_the_shared_batch_sampler_gives_peers_the_same_samples_and_a_models_ranks_disjoint_ones():
    data = dataset(40)
    drawn = {rank: list(Layout(n_groups=2, ranks_per_group=2, ranks_per_node=4, rank=rank).shared_batch_sampler(data))
             for rank in range(4)}
    assert drawn[0] == drawn[2] and drawn[1] == drawn[3]            # peers: the same position in each model group
    assert set(drawn[0]).isdisjoint(drawn[1]) and sorted(drawn[0] + drawn[1]) == list(range(40))


def _checked_every(rank, world_size, every):
    """Rank 1 goes off by one from update 5 on; returns the update at which its peer check raised."""
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=2, rank=rank)
    torch.manual_seed(rank)
    model = torch.nn.Linear(8, 4)
    codistiller = Codistiller(model, layout, peer_check_every=every)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    for step in range(12):
        try:
            codistiller.loss(step + (rank == 1 and step >= 5), x, model(x))
        except PeerMismatch:
            return step
    return None


def test_numbers_are_read_at_the_first_two_exchanges_then_every_n():
    assert spawn(2, _checked_every, 1) == [5, 5]
    assert spawn(2, _checked_every, 4) == [8, 8]      # read at exchanges 0, 1, 4, 8
    assert dist.is_available()


class _Handed(Exception):
    pass


def test_the_numbers_handed_to_the_collective_live_on_the_runs_device(monkeypatch):
    # a meta tensor stands in for a CUDA one: NCCL takes only tensors on the run's device
    from types import SimpleNamespace

    import codistill.peer_check as peer_check

    handed = []

    def all_gather(outputs, tensor, group=None):
        handed.extend([tensor, *outputs])
        raise _Handed

    monkeypatch.setattr(peer_check.dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(peer_check.dist, "all_gather", all_gather)
    model = torch.nn.Linear(8, 4, device="meta")
    check = peer_check.PeerCheck(SimpleNamespace(peers=None), 0, 100)
    for logits, inputs in ((torch.empty(16, 4, device="meta"), {"x": torch.empty(16, 8, device="meta")}),
                           (None, None)):   # a checkpoint exchange: the parameters' device
        handed.clear()
        with pytest.raises(_Handed):
            check(3, model, logits, inputs)
        assert handed and {tensor.device.type for tensor in handed} == {"meta"}
