"""Jobs started at once on one machine each form their own world (jobs.local_rendezvous): no job's
rank joins another job's world, whatever the timing."""
import multiprocessing
import os

import torch
import torch.distributed as dist

from codistill_experiments.jobs import local_rendezvous
from codistill_experiments.launch import start_ranks

JOBS, RANKS = 8, 2


def _rank(index, job, init_method, out):
    dist.init_process_group("gloo", init_method=init_method, rank=index, world_size=RANKS)
    try:
        members = [None] * RANKS
        dist.all_gather_object(members, (job, os.getpid()))
        total = torch.tensor([float(job + 1)])
        dist.all_reduce(total)
        out.put((job, index, members, total.item()))
    finally:
        dist.destroy_process_group()


def _job(job, start, out):
    """One job as the local launcher runs it: a rendezvous, its ranks forked from this process."""
    start.wait()
    with local_rendezvous() as init_method:
        ranks = start_ranks(_rank, (job, init_method("run"), out), RANKS, "fork")
        while not ranks.join():
            pass


def test_eight_jobs_of_two_ranks_started_at_once_each_form_their_own_world():
    context = multiprocessing.get_context("fork")
    start, out = context.Barrier(JOBS), context.Queue()
    jobs = [context.Process(target=_job, args=(job, start, out)) for job in range(JOBS)]
    for process in jobs:
        process.start()
    records = [out.get(timeout=120) for _ in range(JOBS * RANKS)]
    for process in jobs:
        process.join(timeout=60)
        assert process.exitcode == 0
    by_job = {}
    for job, index, members, total in records:
        # a world of this job's two ranks: both members are this job, and the sum is 2 x (job + 1)
        assert [member_job for member_job, _ in members] == [job] * RANKS
        assert total == RANKS * (job + 1)
        by_job.setdefault(job, set()).add((index, frozenset(pid for _, pid in members)))
    assert sorted(by_job) == list(range(JOBS))
    for ranks in by_job.values():
        assert {index for index, _ in ranks} == set(range(RANKS))
        assert len({pids for _, pids in ranks}) == 1   # both ranks saw the same two processes
    worlds = [next(iter(ranks))[1] for ranks in by_job.values()]
    assert len(set().union(*worlds)) == JOBS * RANKS   # 16 distinct processes in 8 disjoint worlds


def test_the_rendezvous_files_of_two_worlds_differ_and_go_when_the_block_ends():
    with local_rendezvous() as first, local_rendezvous() as second:
        paths = {first("run"), first("model0"), second("run")}
        folders = {os.path.dirname(path.removeprefix("file://")) for path in paths}
        assert len(paths) == 3 and len(folders) == 2 and all(os.path.isdir(folder) for folder in folders)
    assert not any(os.path.exists(folder) for folder in folders)
