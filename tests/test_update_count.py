"""The Codistiller numbers the updates itself: given the optimizer, each optimizer.step() ends one;
without it, each loss() call is one; an explicit step is checked against that count. A rank that
skips loss() stops with a message naming the rank and the update before its peers exchange with it
one update off, and its peers, left waiting at the next exchange, stop at the process groups'
timeout (or at once when its process is gone) with a message naming the update, never hanging.
The multi-process tests run real gloo processes, 2 models of 1 rank."""
import datetime
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmarks import benchlib
from codistill import Codistiller, Layout, PeerMismatch

WAIT = datetime.timedelta(seconds=4)   # the collectives' timeout: a missed exchange fails in seconds


def spawn(world_size, function, *args):
    # with one rank a model the peers' group is the world: its timeout is the one that ends a wait
    return benchlib.spawn(world_size, function, *args, timeout=WAIT)


def _model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def _skipping_rank(rank, world_size, mode, exchange, steps, linger_until=None, linger_s=0.0):
    """Rank 1 leaves out its loss() call at update 5 (period 100). With `linger_until` (a file's
    path) it then stays alive until rank 0 has ended and written that file, at most `linger_s`
    seconds. Returns (the error's message or None, the update this rank's loop was at, seconds
    spent in the loop, for rank 1 whether it was still alive when rank 0 ended)."""
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=2, rank=rank)
    model = _model(rank)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    codistiller = Codistiller(model, layout, exchange=exchange, period=100, alpha=0.5, timeout=WAIT,
                              optimizer=optimizer if mode == "optimizer" else None)
    data = torch.Generator().manual_seed(0)
    started = time.monotonic()
    step, error = 0, None
    try:
        for step in range(steps):
            x, y = torch.randn(16, 8, generator=data), torch.randint(0, 4, (16,), generator=data)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if not (rank == 1 and step == 5):
                loss = loss + (codistiller.loss(x, logits) if mode == "optimizer"
                               else codistiller.loss(x, logits, step=step))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    except PeerMismatch as mismatch:
        error = str(mismatch)
    seconds = time.monotonic() - started
    outlived = None
    if linger_until is not None:
        marker = Path(linger_until)
        if rank == 0:
            marker.touch()
        else:   # a rank that stays alive: its peer's wait must end at the timeout, not at this exit
            bound = time.monotonic() + linger_s
            while not marker.exists() and time.monotonic() < bound:
                time.sleep(0.05)
            outlived = marker.exists()
    return error, step, seconds, outlived


@pytest.mark.timeout(120)
@pytest.mark.parametrize("exchange", ["predictions", "checkpoints"])
def test_a_rank_skipping_loss_at_update_5_with_period_100_stops_naming_rank_and_update(exchange):
    (first, first_at, _, _), (second, second_at, _, _) = spawn(2, _skipping_rank, "optimizer", exchange, 150)
    # the rank that skipped stops at the end of that very update, before any exchange
    assert second_at == 5
    assert second.startswith("rank 1: the optimizer ended update 5 without a codistiller.loss() call")
    # its peer trains on to the next exchange, update 100, and stops there instead of waiting for good
    assert first_at == 100
    assert first.startswith("rank 0 (model group 0) waited in vain for its peers at the exchange of update 100")


@pytest.mark.timeout(120)
def test_an_explicit_step_is_checked_against_the_count():
    (first, first_at, _, _), (second, second_at, _, _) = spawn(2, _skipping_rank, "explicit", "predictions", 150)
    assert second_at == 6
    assert second.startswith("rank 1: teachers_logits() at update 6, but this Codistiller's count is at update 5: "
                             "update 5 had no teachers_logits() call on this rank")
    assert first_at == 100 and "exchange of update 100" in first


@pytest.mark.timeout(120)
def test_a_peer_left_waiting_by_a_live_rank_stops_at_the_timeout_naming_the_cause(tmp_path):
    # rank 1 stays alive until rank 0 has ended (up to 30 s): rank 0's wait at update 100 ends at
    # the 4 s timeout, and rank 1's exit cannot have ended it
    (first, first_at, seconds, _), (second, _, _, outlived) = spawn(
        2, _skipping_rank, "optimizer", "predictions", 150, str(tmp_path / "rank0-ended"), 30.0)
    assert first_at == 100 and "waited in vain" in first and "skipped loss() at an exchange update" in first
    assert "timed out" in first.lower()
    assert outlived is True   # rank 1 was alive when rank 0's wait ended
    assert WAIT.total_seconds() <= seconds < 30.0
    assert "update 5" in second


# --- the count in one process: from_teachers needs no process group ---------------------------------

def _frozen(**options):
    teacher = _model(1)
    return Codistiller.from_teachers(_model(0), [teacher], alpha=0.5, **options)


def test_without_an_optimizer_each_loss_call_is_one_update_and_the_count_is_saved():
    codistiller = _frozen()
    x = torch.randn(4, 8)
    for _ in range(3):
        codistiller.loss(x, codistiller.model(x))
    assert codistiller.next_update == 3 and codistiller.current_update == 2
    resumed = _frozen()
    resumed.load_state_dict(codistiller.state_dict())
    assert resumed.next_update == 3
    resumed.loss(x, resumed.model(x), step=3)          # the next update, given explicitly
    with pytest.raises(PeerMismatch, match=r"at update 5, but this Codistiller's count is at update 4: "
                                           r"update 4 had no teachers_logits\(\) call"):
        resumed.loss(x, resumed.model(x), step=5)


def test_an_explicit_step_may_repeat_the_update_in_progress_but_not_go_back():
    codistiller = _frozen()
    x = torch.randn(4, 8)
    codistiller.loss(0, x, codistiller.model(x))       # the earlier positional form
    codistiller.loss(x, codistiller.model(x), step=0)  # a second micro-batch of update 0
    codistiller.loss(x, codistiller.model(x), step=1)
    with pytest.raises(PeerMismatch, match="update 0 came after update 1"):
        codistiller.loss(x, codistiller.model(x), step=0)


def test_a_run_resumed_without_the_codistillers_state_takes_its_first_step():
    codistiller = _frozen()
    x = torch.randn(4, 8)
    codistiller.loss(x, codistiller.model(x), step=40)
    assert codistiller.next_update == 41
    codistiller.loss(x, codistiller.model(x))
    assert codistiller.current_update == 41


def test_with_an_optimizer_its_steps_end_the_updates_and_micro_batches_share_one():
    model = _model(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    codistiller = Codistiller.from_teachers(model, [_model(1)], alpha=0.5, optimizer=optimizer)
    x = torch.randn(4, 8)
    for update in range(3):
        for _ in range(2):   # two micro-batches: one update
            codistiller.loss(x, model(x)).backward()
            assert codistiller.current_update == update
        optimizer.step()
    assert codistiller.next_update == 3 and codistiller.state_dict()["next_update"] == 3
    with pytest.raises(PeerMismatch, match=r"optimizer ended update 3 without a codistiller.loss\(\) call"):
        optimizer.step()


def test_bad_steps_and_optimizers_are_refused():
    codistiller = _frozen()
    x = torch.randn(4, 8)
    with pytest.raises(ValueError, match="step=-1 is not a whole number >= 0"):
        codistiller.loss(x, codistiller.model(x), step=-1)
    with pytest.raises(ValueError, match="the step is given twice"):
        codistiller.loss(0, x, codistiller.model(x), step=0)
    with pytest.raises(ValueError, match="optimizer=.* is not a torch.optim.Optimizer"):
        _frozen(optimizer=object())
