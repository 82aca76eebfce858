"""Atomic writes with many writers at once: every rank of a translation model repairs, marks or
copies the same file of the model's folder, each in its own process. Every writer succeeds, the
file ends as one writer's complete bytes, and a reader meanwhile only ever sees complete files."""
import multiprocessing
import time
import traceback

import torch

from codistill.internals import atomic_write_bytes
from codistill_experiments.translation.launcher import mark_trained, repair_torn_checkpoint

WRITERS = 8
SIZE = 1 << 20   # 1 MiB each, written in chunks with pauses: the writes of all writers overlap
CHUNK = 1 << 16
FORK = multiprocessing.get_context("fork")


def payload(writer):
    return bytes([writer + 1]) * SIZE


def slow_write(data):
    def write(handle):
        for start in range(0, len(data), CHUNK):
            handle.write(data[start:start + CHUNK])
            handle.flush()
            time.sleep(0.002)
    return write


def in_processes(work, count, errors):
    """work(i) in `count` forked processes released together; each one's exception text goes to errors."""
    start = FORK.Barrier(count)

    def body(index):
        try:
            start.wait(timeout=60)
            work(index)
        except BaseException:   # noqa: BLE001 (reported to the test, which fails naming it)
            errors.put(traceback.format_exc())
            raise

    processes = [FORK.Process(target=body, args=(index,)) for index in range(count)]
    for process in processes:
        process.start()
    return processes


def joined(processes, errors):
    for process in processes:
        process.join(timeout=120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    return [process.exitcode for process in processes], found


def test_concurrent_writers_of_one_file_all_succeed_and_leave_one_writers_complete_bytes(tmp_path):
    target = tmp_path / "checkpoint_last.pt"
    errors = FORK.Queue()
    writers = in_processes(lambda index: [atomic_write_bytes(target, slow_write(payload(index))) for _ in range(3)],
                           WRITERS, errors)
    codes, found = joined(writers, errors)
    assert codes == [0] * WRITERS, found[:1]
    data = target.read_bytes()
    assert data in {payload(index) for index in range(WRITERS)}
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint_last.pt"]   # no temporary file left


def test_a_reader_racing_concurrent_writers_only_ever_sees_complete_files(tmp_path):
    target = tmp_path / "file"
    atomic_write_bytes(target, slow_write(payload(0)))
    errors = FORK.Queue()
    complete = {payload(index) for index in range(WRITERS)}
    writers = in_processes(lambda index: [atomic_write_bytes(target, slow_write(payload(index))) for _ in range(3)],
                           WRITERS, errors)
    reads, partial = 0, 0
    while any(writer.is_alive() for writer in writers):
        data = target.read_bytes()
        reads += 1
        partial += data not in complete
    codes, found = joined(writers, errors)
    assert reads > 10 and partial == 0, (reads, partial)
    assert codes == [0] * WRITERS, found[:1]


def test_every_rank_repairing_a_torn_checkpoint_at_once_restores_the_complete_one(tmp_path):
    """What every rank of a model does at its start after a kill during fairseq's copy (has_trained
    and _train_rank call repair_torn_checkpoint), then rank 0's marking of the model as trained."""
    folder = tmp_path / "model0"
    folder.mkdir()
    torch.save({"model": {"w": torch.arange(300_000.0)}, "step": 7}, folder / "checkpoint_best.pt")
    complete = (folder / "checkpoint_best.pt").read_bytes()
    (folder / "checkpoint_last.pt").write_bytes(complete[: len(complete) // 2])
    errors = FORK.Queue()

    def rank(index):
        repair_torn_checkpoint(folder)
        assert (folder / "checkpoint_last.pt").read_bytes() == complete   # never a half-copied one
        mark_trained(tmp_path, 0)

    ranks = in_processes(rank, WRITERS, errors)
    codes, found = joined(ranks, errors)
    assert codes == [0] * WRITERS, found[:1]
    assert (folder / "checkpoint_last.pt").read_bytes() == complete
    assert (folder / "trained.json").read_text() == '{"trained": true}\n'
    assert sorted(path.name for path in folder.iterdir()) == ["checkpoint_best.pt", "checkpoint_last.pt",
                                                              "trained.json"]
