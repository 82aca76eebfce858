"""How long a lock-step model waits for a peer's snapshot, and what else waits meanwhile.

- A model of several ranks: while its first rank waits for a peer's snapshot, its other ranks sit
  in a collective of the model's group, whose timeout (fairseq creates its group with none: NCCL's
  10 minutes) may be shorter than the wait (workload.exchange_timeout_s, 30 minutes). Real gloo
  processes with a group timeout of 2 s stand in for it.
- Models that are separate jobs of a queue start at different times: a wait counts from when the
  peer has started (its started marker), and a peer that never starts is waited for up to its own,
  longer bound, then named as the cause."""
import datetime
import json
import os
import re
import threading
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks.benchlib import free_port
from codistill.file_exchange import FileCheckpointExchange
from codistill.snapshots import SnapshotStore, SnapshotTimeout

GROUP_TIMEOUT_S = 2.0   # stands in for the model group's default timeout (NCCL: 10 minutes)


def _model_rank(rank, port, root, out, wait_timeout_s):
    """One of model 0's two ranks (its own gloo world, as a fairseq model's group is): reads model
    1's snapshot of update 0 into its teacher, its first rank from the files, the other by broadcast."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=GROUP_TIMEOUT_S))
    teacher = torch.nn.Linear(3, 2)
    exchange = FileCheckpointExchange(SnapshotStore(root), 0, 2, 1, [teacher], timeout_s=wait_timeout_s,
                                      publish=rank == 0, model_group=dist.group.WORLD)
    started = time.monotonic()
    try:
        exchange.refresh(0, None)
        result = {"teacher": [p.tolist() for p in teacher.parameters()], "held": exchange.held_steps()}
    except Exception as error:
        result = {"error": type(error).__name__, "message": str(error)}
    result["waited_s"] = time.monotonic() - started
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)
    dist.destroy_process_group()


def _start_model(tmp_path, wait_timeout_s):
    """Model 0's two ranks, started (forked: see waits() for when); (ranks, exchange root, out)."""
    root, out = tmp_path / "exchange", tmp_path / "out"
    out.mkdir(parents=True)
    ranks = mp.start_processes(_model_rank, args=(free_port(), str(root), str(out), wait_timeout_s), nprocs=2,
                               join=False, start_method="fork")
    return ranks, root, out


def _results(ranks, out):
    while not ranks.join(timeout=60):
        pass
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(2)]


def _after(seconds, action):
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def _lockstep_wait(tmp_path):
    store = SnapshotStore(tmp_path, start_timeout_s=60)
    peer = {"w": torch.full((4,), 7.0)}
    # Model 1 starts 3 s after model 0 waits (its job was queued), publishes 1 s later: a 2 s
    # timeout counted from the wait's start would have ended before the peer even started.
    timers = [_after(3.0, lambda: store.mark_started(1)), _after(4.0, lambda: store.publish(1, 0, peer))]
    began = time.monotonic()
    found = store.wait_for(1, 0, timeout_s=2.0)
    waited = time.monotonic() - began
    for timer in timers:
        timer.join()
    return {"found": found, "peer": peer, "waited_s": waited}


def _restarting_peer(tmp_path):
    store = SnapshotStore(tmp_path, start_timeout_s=60)
    store.mark_started(1, "first-attempt")
    # it dies before it publishes and its requeued job starts again 1.5 s later; it publishes 1.5 s
    # after that: 3 s after the wait began, more than its 2 s timeout, 1.5 s after its restart.
    timers = [_after(1.5, lambda: store.mark_started(1)),
              _after(3.0, lambda: store.publish(1, 0, {"w": torch.ones(2)}))]
    began = time.monotonic()
    store.wait_for(1, 0, timeout_s=2.0)
    restarted_s = time.monotonic() - began
    for timer in timers:
        timer.join()
    # A peer that started and then publishes nothing: the timeout, counted from its start.
    store.mark_started(2)
    began = time.monotonic()
    try:
        store.wait_for(2, 0, timeout_s=1.0)
        silent = None
    except SnapshotTimeout as error:
        silent = error
    return {"restarted_s": restarted_s, "silent": silent, "silent_s": time.monotonic() - began}


def _peer_that_never_starts(tmp_path):
    outcome = {}
    for name, store, timeout_s in (("bounded", SnapshotStore(tmp_path, start_timeout_s=2.0), 0.5),
                                   # without start_timeout_s a store waits timeout_s from the wait's start
                                   ("unbounded", SnapshotStore(tmp_path), 0.5)):
        began = time.monotonic()
        try:
            store.wait_for(1, 0, timeout_s=timeout_s)
            outcome[name] = (None, time.monotonic() - began)
        except SnapshotTimeout as error:
            outcome[name] = (error, time.monotonic() - began)
    return outcome


@pytest.fixture(scope="module")
def waits(tmp_path_factory):
    """Every scenario of this file that waits, run at once: each spends its seconds sleeping on a
    timer or a file, so together they take as long as the longest (about 7 s) instead of their sum
    (about 23 s), and each test asserts on its own. The two models' ranks are forked first, while
    this process has no other thread; the in-process waits then run in threads beside them."""
    root = tmp_path_factory.mktemp("waits")
    torch.manual_seed(3)
    peer = torch.nn.Linear(3, 2)
    waits_long, waits_long_root, waits_long_out = _start_model(root / "publishes", wait_timeout_s=60)
    gives_up, _, gives_up_out = _start_model(root / "never-publishes", wait_timeout_s=3 * GROUP_TIMEOUT_S)
    publish = _after(3 * GROUP_TIMEOUT_S,
                     lambda: SnapshotStore(waits_long_root).publish(1, 0, dict(peer.named_parameters())))
    outcomes = {}
    scenarios = {"lockstep": _lockstep_wait, "restart": _restarting_peer, "never": _peer_that_never_starts}
    threads = [threading.Thread(target=lambda name=name, run=run: outcomes.update({name: run(root / name)}))
               for name, run in scenarios.items()]
    for thread in threads:
        thread.start()
    outcomes["waits long"] = (peer, _results(waits_long, waits_long_out))
    outcomes["gives up"] = _results(gives_up, gives_up_out)
    publish.join()
    for thread in threads:
        thread.join()
    assert set(outcomes) == {*scenarios, "waits long", "gives up"}, "a scenario raised: its traceback is above"
    return outcomes


def test_a_model_of_two_ranks_waits_for_a_snapshot_longer_than_its_groups_timeout(waits):
    peer, (first, second) = waits["waits long"]
    expected = [p.tolist() for p in peer.parameters()]
    assert "error" not in first and "error" not in second, (first, second)
    assert first["teacher"] == second["teacher"] == expected and first["held"] == second["held"] == [0]
    assert first["waited_s"] > 2 * GROUP_TIMEOUT_S and second["waited_s"] > 2 * GROUP_TIMEOUT_S


def test_when_the_first_rank_gives_up_waiting_every_rank_of_the_model_stops_with_its_reason(waits):
    for result in waits["gives up"]:   # model 1 never publishes
        assert result["error"] == "SnapshotTimeout", result
        assert result["message"].startswith("waited 6 s for model 1's snapshot of update 0")
        assert 3 * GROUP_TIMEOUT_S <= result["waited_s"] < 3 * GROUP_TIMEOUT_S + 10


def test_a_lockstep_wait_counts_from_when_the_peer_has_started(waits):
    outcome = waits["lockstep"]
    assert torch.equal(outcome["found"]["w"], outcome["peer"]["w"]) and outcome["waited_s"] >= 4.0


def test_a_peer_that_restarts_is_given_the_whole_timeout_again(waits):
    outcome = waits["restart"]
    assert outcome["restarted_s"] >= 3.0
    assert isinstance(outcome["silent"], SnapshotTimeout)
    assert re.search(r"waited 1 s for model 2's snapshot of update 0 .* since it started", str(outcome["silent"]))
    assert 1.0 <= outcome["silent_s"] < 5.0


def test_a_peer_that_never_starts_is_waited_for_up_to_its_own_bound_then_named(waits):
    error, waited = waits["never"]["bounded"]
    assert isinstance(error, SnapshotTimeout)
    assert re.search(r"model 1 has not started: no attempt marked in .*started\.json", str(error))
    assert 2.0 <= waited < 6.0 and "method.peer_start_timeout_s" in str(error)
    error, waited = waits["never"]["unbounded"]
    assert isinstance(error, SnapshotTimeout) and "waited 0.5 s for model 1's snapshot of update 0" in str(error)
    assert waited < 2.0


def test_a_publishing_rank_marks_each_attempt_of_its_model_as_started(tmp_path):
    store = SnapshotStore(tmp_path)
    assert store.started(0) is None
    FileCheckpointExchange(store, 0, 2, 1, [torch.nn.Linear(2, 2)], publish=False)
    assert store.started(0) is None                       # a rank that does not publish marks nothing
    FileCheckpointExchange(store, 0, 2, 1, [torch.nn.Linear(2, 2)])
    first = store.started(0)
    FileCheckpointExchange(store, 0, 2, 1, [torch.nn.Linear(2, 2)])   # the model's next attempt
    assert first is not None and store.started(0) not in (None, first)
