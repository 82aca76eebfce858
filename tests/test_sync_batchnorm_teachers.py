"""A model whose batch norms are synchronised over its ranks (workload.sync_batchnorm, on GPUs) has
teachers whose batch norms are synchronised over the same ranks: a teacher normalises as the peer
it stands for trained, with the statistics of the model's whole batch, not one GPU's share.

torch runs SyncBatchNorm on GPUs only, so here the teachers' modules and process group are checked
(real gloo ranks: 2 models x 2 ranks), not their outputs; the outputs are unverified on GPUs."""
import torch
import torch.distributed as dist
from conftest import SHORT, compose_job
from torch.nn.modules.batchnorm import _BatchNorm

from benchmarks.benchlib import spawn
from codistill_experiments.config import typed_job


def _teachers_norms(rank, world_size, container, synchronised):
    from codistill import CommCounter, Layout, make_process_groups
    from codistill_experiments.run_schedules import run_schedules
    from codistill_experiments.training import engine
    from codistill_experiments.workloads import build_workload

    cfg = typed_job(container)
    layout = Layout(2, 2, 2, rank)
    groups = make_process_groups(layout)
    workload = build_workload(cfg.workload)
    model = workload.make_model(0, engine.model_spec(cfg, layout.group_index))
    codistiller = engine.build_codistiller(cfg, layout, groups, CommCounter(), model, workload,
                                           torch.preserve_format,
                                           run_schedules(cfg, int(cfg.scale.batch_per_rank), 10).alpha, None,
                                           groups.group if synchronised else None)
    [teacher] = codistiller.teachers
    norms = [module for module in teacher.modules() if isinstance(module, _BatchNorm)]
    model_ranks = sorted(dist.get_global_rank(groups.group, r) for r in range(dist.get_world_size(groups.group)))
    return {"norms": len(norms), "synced": sum(isinstance(m, torch.nn.SyncBatchNorm) for m in norms),
            "over_the_model_group": all(m.process_group is groups.group for m in norms
                                        if isinstance(m, torch.nn.SyncBatchNorm)),
            "training": all(m.training for m in norms), "model_ranks": model_ranks}


def test_the_teachers_of_a_model_with_synchronised_batch_norms_synchronise_over_its_ranks(tmp_path):
    container = compose_job(["workload=clusters_resnet", "workload.train_size=200", "workload.val_size=50",
                             "scale.batch_per_rank=8", "method=codistill", "method.exchange=checkpoints",
                             "scale.ranks_per_model=2",
                             "scale.ranks_per_node=4", *SHORT], tmp_path)
    synced = spawn(4, _teachers_norms, container, True)
    for rank, result in enumerate(synced):
        assert result["norms"] > 0 and result["synced"] == result["norms"] and result["over_the_model_group"]
        assert result["training"]                           # normalising with the batch (teacher_mode)
        assert result["model_ranks"] == ([0, 1] if rank < 2 else [2, 3])
    plain = spawn(4, _teachers_norms, container, False)   # a CPU run, or no sync_batchnorm: each rank's own
    assert all(result["norms"] > 0 and result["synced"] == 0 for result in plain)
