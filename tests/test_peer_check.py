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
    wide = misuse == "float64" and layout.group_index == 1
    if wide:
        model = model.double()
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
            x = x.double() if wide else x
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


def test_a_rank_that_skips_an_update_is_stopped_before_its_next_exchange():
    first, second = messages("skipped_update")
    # the rank that skipped: at its next call, against its own count, before any collective
    assert second.startswith("rank 1: teachers_logits() at update 2, but this Codistiller's count is at update 1: "
                             "update 1 had no teachers_logits() call on this rank")
    # its peer, waiting in update 1's exchange, is told so once the rank's process is gone
    assert first.startswith("rank 0 (model group 0) waited in vain for its peers at the exchange of update 1")


def test_ddp_over_the_whole_world_averaging_the_models_into_one_is_stopped():
    for message in messages("ddp_over_the_world", ranks_per_group=2):
        assert "every model holds the same parameters after update 0" in message
        assert "process_group=codistiller.model_group" in message


def test_peers_with_other_batch_sizes_or_classes_are_named():
    first, _ = messages("batch_size")
    assert "model 1 sends logits of 8 rows x 4 classes, this rank 16 x 4" in first
    first, _ = messages("classes")
    assert "model 1 sends logits of 16 rows x 3 classes, this rank 16 x 4" in first


@pytest.mark.timeout(120)
@pytest.mark.parametrize("exchange", ["predictions", "checkpoints"])
def test_a_float64_model_beside_a_float32_peer_is_named_before_the_collective(exchange):
    # gloo aborted both processes (SIGABRT, "Received data size doesn't match expected size")
    first, second = messages("float64", exchange=exchange)
    assert "model 1 sends torch.float64, this rank torch.float32: peers must send one dtype" in first
    assert "model 0 sends torch.float32, this rank torch.float64" in second
    assert first.startswith("codistillation peers disagree (model group 0, update 0)")


def test_the_payloads_dtype_device_and_shape_are_compared_at_every_exchange():
    from codistill.peer_check import FIELDS, PeerCheck, device_code, dtype_code

    def numbers(**changed):
        peer = dict.fromkeys(FIELDS, 0.0)
        peer.update(update=7.0, rows=16.0, classes=4.0, batch=1.0, parameters=2.0, parameter_count=3.0,
                    dtype=dtype_code(torch.float32), device=device_code("cpu"), width=4.0, bits=32.0,
                    fraction=float("nan"))
        peer.update(changed)
        return peer

    check = PeerCheck(None, 0, 100)
    assert check.problems([numbers(), numbers(parameters=5.0)], read=False) == []
    assert check.problems([numbers(), numbers(batch=9.0)], read=False) == []      # a checksum: not read
    (device,) = check.problems([numbers(), numbers(device=device_code("cuda"))], read=False)
    assert device.startswith("model 1 exchanges on device type 'cuda', this rank on 'cpu'")
    (dtype,) = check.problems([numbers(), numbers(dtype=dtype_code(torch.bfloat16))], read=False)
    assert dtype.startswith("model 1 sends torch.bfloat16, this rank torch.float32")
    (topk,) = check.problems([numbers(), numbers(width=2.0)], read=False)
    assert topk.startswith("model 1 sends 2 values per row of logits, this rank 4: give every rank the same "
                           "prediction_topk")
    (bits,) = check.problems([numbers(), numbers(bits=16.0)], read=False)
    assert "bits=16" in bits and "bits=32" in bits
    (shape,) = check.problems([numbers(), numbers(rows=8.0)], read=False)
    assert shape.startswith("model 1 sends logits of 8 rows x 4 classes, this rank 16 x 4")


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


def _checked_every(rank, world_size, every, off_by_one=False):
    """Rank 1 sees another batch (or, off_by_one, goes one update ahead) from update 5 on; returns
    the update at which its peer check raised."""
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=2, rank=rank)
    torch.manual_seed(rank)
    model = torch.nn.Linear(8, 4)
    codistiller = Codistiller(model, layout, peer_check_every=every)
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    for step in range(12):
        shown = step + (rank == 1 and step >= 5 and off_by_one)
        batch = x.flip(0) if rank == 1 and step >= 5 and not off_by_one else x
        try:
            codistiller.loss(batch, model(batch), step=shown)
        except PeerMismatch:
            return step
    return None


def test_checksums_are_read_at_the_first_two_exchanges_then_every_n_and_the_update_at_every_one():
    assert spawn(2, _checked_every, 1) == [5, 5]
    assert spawn(2, _checked_every, 4) == [8, 8]      # read at exchanges 0, 1, 4, 8
    assert spawn(2, _checked_every, 4, True) == [5, 5]
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
