"""Checkpoint exchange through snapshot files (codistill/snapshots.py, the store of the core's
FileCheckpointExchange, which the translation task uses), with real writer processes: a snapshot is
never read half-written, lock-step reads exactly the peers' step floor(s/T)*T (and
waits for it), asynchronous reads the newest, and n-way readers see every peer."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch
from conftest import ROOT

from codistill.snapshots import PeerReader, SnapshotStore, SnapshotTimeout, snapshot_bits

SRC = ROOT / "src"


def params(step, size=64):
    """A recognisable 'model' of a step: every value equals the step."""
    return {"encoder.weight": torch.full((size,), float(step)), "decoder.bias": torch.full((3,), float(step))}


def writer(root, script, **kwargs):
    """A separate Python process publishing snapshots into `root` (its source in `script`)."""
    code = textwrap.dedent(f"""
        import sys, time, torch
        sys.path.insert(0, {str(SRC)!r})
        from codistill.snapshots import SnapshotStore
        store = SnapshotStore({str(root)!r})
        def params(step, size=64):
            return {{"encoder.weight": torch.full((size,), float(step)), "decoder.bias": torch.full((3,), float(step))}}
    """) + textwrap.dedent(script)
    return subprocess.Popen([sys.executable, "-c", code], **kwargs)


def wait_until(condition, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_the_previous_complete_snapshot(tmp_path):
    # The writer publishes step 0, then starts step 5 with a disk that stalls half-way through.
    process = writer(tmp_path, """
        store.publish(1, 0, params(0))
        real_save = torch.save
        def stalled_save(obj, handle):
            handle.write(b"PK" * 1000)   # the first bytes of the file, then the disk stalls
            handle.flush()
            time.sleep(600)
        torch.save = stalled_save
        store.publish(1, 5, params(5, size=1_000_000))
    """)
    store = SnapshotStore(tmp_path)
    temporary = lambda: [p for p in (tmp_path / "model1").glob("step5.pt.tmp*") if p.stat().st_size > 0]  # noqa: E731
    wait_until(lambda: temporary())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert temporary(), "the half-written file is there..."
    assert store.steps(1) == [0], "...but it is not a snapshot"
    step, tensors = store.newest(1)
    assert step == 0 and torch.equal(tensors["encoder.weight"], torch.zeros(64))
    with pytest.raises(SnapshotTimeout, match=r"model 1's snapshot of update 5 .*workload.exchange_timeout_s"):
        store.wait_for(1, 5, timeout_s=0.3)


@pytest.mark.slow
def test_a_reader_racing_a_writer_that_is_killed_only_ever_loads_complete_snapshots(tmp_path):
    process = writer(tmp_path, """
        for step in range(100000):
            store.publish(0, step, params(step, size=200_000))
            store.prune(0, step - 2)
    """)
    store = SnapshotStore(tmp_path)
    reads, deadline = [], time.monotonic() + 30
    try:
        while len(set(reads)) < 10 and time.monotonic() < deadline:
            found = store.newest(0)
            if found is not None:
                step, tensors = found
                assert tensors["encoder.weight"].shape == (200_000,)
                assert torch.all(tensors["encoder.weight"] == step) and torch.all(tensors["decoder.bias"] == step)
                reads.append(step)
    finally:
        os.kill(process.pid, signal.SIGKILL)  # mid-way through some later write, most likely
        process.wait()
    step, tensors = store.newest(0)
    assert torch.all(tensors["encoder.weight"] == step)
    assert len(set(reads)) == 10 and reads == sorted(reads)


def test_lock_step_reads_exactly_the_peers_step_floor_s_over_T_even_when_newer_ones_exist(tmp_path):
    store, period = SnapshotStore(tmp_path), 10
    for step in (0, 10, 20, 30):
        store.publish(1, step, params(step))
    lockstep = PeerReader(store, peers=[1], period=period, mode="lockstep", timeout_s=5)
    asynchronous = PeerReader(store, peers=[1], period=period, mode="async", timeout_s=5)
    held = {}
    for s in range(0, 26):
        for _, source, tensors, counted in lockstep.refresh(s):
            assert torch.all(tensors["encoder.weight"] == source) and counted
            held[s] = source
    assert held == {0: 0, 10: 10, 20: 20}          # read once per exchange period, never step 30
    assert lockstep.steps == [20]
    # The asynchronous reader takes the newest snapshot there is (Anil et al.): step 30 already.
    assert [source for _, source, _, _ in asynchronous.refresh(20)] == [30]
    assert list(asynchronous.refresh(25)) == []     # between exchange points nothing is read


def test_lock_step_waits_for_a_peer_that_is_behind(tmp_path):
    store = SnapshotStore(tmp_path)
    store.publish(1, 0, params(0))
    reader = PeerReader(store, peers=[1], period=10, mode="lockstep", timeout_s=30)
    list(reader.refresh(5))
    late = threading.Timer(0.4, lambda: store.publish(1, 10, params(10)))
    started = time.monotonic()
    late.start()
    [(_, source, tensors, _)] = list(reader.refresh(10))
    assert time.monotonic() - started >= 0.35
    assert source == 10 and torch.all(tensors["encoder.weight"] == 10)


def test_asynchronous_mode_never_waits_after_the_first_snapshot(tmp_path):
    store = SnapshotStore(tmp_path)
    store.publish(1, 0, params(0))
    reader = PeerReader(store, peers=[1], period=10, mode="async", timeout_s=0.2)
    assert [source for _, source, _, _ in reader.refresh(0)] == [0]
    started = time.monotonic()
    assert list(reader.refresh(10)) == []           # the peer has not published step 10: keep step 0
    assert time.monotonic() - started < 0.15
    store.publish(1, 20, params(20))
    assert [source for _, source, _, _ in reader.refresh(30)] == [20]


def test_n_way_every_model_reads_every_peer_and_counts_their_bits(tmp_path):
    store, n, period = SnapshotStore(tmp_path), 3, 4
    for model in range(n):
        for step in (0, 4, 8):
            store.publish(model, step, params(100 * model + step))
    for model in range(n):
        peers = [j for j in range(n) if j != model]
        reader = PeerReader(store, peers=peers, period=period, mode="lockstep", timeout_s=1)
        received = 0
        for s in range(10):
            for slot, source, tensors, _ in reader.refresh(s):
                assert torch.all(tensors["encoder.weight"] == 100 * peers[slot] + source)
                received += snapshot_bits(tensors)
        # 3 exchange points (0, 4, 8), n - 1 peers, 67 float32 parameters each
        assert received == 3 * (n - 1) * 67 * 32


def test_a_resumed_reader_does_not_count_what_the_interrupted_run_already_held(tmp_path):
    store = SnapshotStore(tmp_path)
    for step in (0, 10):
        store.publish(1, step, params(step))
    reader = PeerReader(store, peers=[1], period=10, mode="lockstep", timeout_s=1)
    reader.resume([0])                                # the run was interrupted at update 7
    assert [(source, counted) for _, source, _, counted in reader.refresh(7)] == [(0, False)]
    assert [(source, counted) for _, source, _, counted in reader.refresh(10)] == [(10, True)]


def test_snapshots_are_kept_for_the_peers_last_checkpoints(tmp_path):
    store = SnapshotStore(tmp_path)
    for step in range(0, 60, 10):
        store.publish(0, step, params(step))
    store.mark_checkpointed(1, 37)   # peer 1 would resume at 37 and then read step 30
    store.mark_checkpointed(0, 55)
    store.prune_unneeded(0, n_models=2, period=10)
    assert store.steps(0) == [30, 40, 50]
    assert store.checkpointed(2) == 0                # a model with no checkpoint yet restarts at 0
