"""One policy for how a teacher runs forward, whichever client builds it: as in evaluation (dropout
off), except batch norms the model trains with, which normalise with the batch's statistics (their
running statistics do not travel with the parameters); parts the model keeps in eval stay so."""
import copy

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import SHORT, compose_job
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from translation_helpers import fairseq_task, mini_data  # noqa: F401  (fixtures)

from codistill.internals import teacher_mode
from codistill_experiments.config import typed_job


def policy_modes(model):
    """The policy written out independently: every module in eval mode except the batch norms that
    are in training mode while the model trains."""
    reference = copy.deepcopy(model).train()
    return {name: isinstance(module, _BatchNorm) and module.training for name, module in reference.named_modules()}


def modes(module):
    return {name: part.training for name, part in module.named_modules()}


class FrozenPrefix(nn.Module):
    """A model that keeps its prefix (with a batch norm) in eval mode while it trains."""

    def __init__(self):
        super().__init__()
        self.prefix = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))
        self.body = nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6), nn.Dropout(0.5), nn.Linear(6, 3))

    def train(self, mode=True):
        super().train(mode)
        self.prefix.eval()
        return self

    def forward(self, x):
        return self.body(self.prefix(x))


def test_a_teacher_drops_no_units_normalises_with_the_batch_and_keeps_a_frozen_prefix_frozen():
    torch.manual_seed(0)
    model = FrozenPrefix()
    model.prefix[1].running_mean.fill_(3.0)   # running statistics a teacher must not use in the body...
    model.body[1].running_mean.fill_(3.0)
    teacher = teacher_mode(copy.deepcopy(model))
    assert modes(teacher) == policy_modes(model)
    x = torch.randn(16, 4)
    first, second = teacher(x), teacher(x)
    assert torch.equal(first, second)   # dropout off: the same function twice
    with torch.no_grad():  # by hand: the prefix on its running statistics, the body's norm on the batch's
        prefix = model.prefix[1]
        h = (model.prefix[0](x) - prefix.running_mean) / torch.sqrt(prefix.running_var + prefix.eps)
        h = h * prefix.weight + prefix.bias
        z = model.body[0](h)
        norm = model.body[1]
        z = (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + norm.eps) * norm.weight + norm.bias
        expected = model.body[3](z)
    torch.testing.assert_close(first, expected)


def _vision_rank(rank, init_file, container, results):
    from codistill.groups import Layout
    from codistill_experiments.run_schedules import run_schedules
    from codistill_experiments.training import engine
    from codistill_experiments.workloads import build_workload

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        cfg = typed_job(container)
        workload = build_workload(cfg.workload)
        state = engine.build_rank_state(cfg, Layout(2, 1, 1, rank), workload, torch.device("cpu"),
                                        run_schedules(cfg, int(cfg.scale.batch_per_rank), 10))
        [teacher] = state.codistiller.teachers
        peer = workload.make_model(0, engine.model_spec(cfg, 1 - rank))
        results[rank] = (modes(teacher), policy_modes(peer), type(teacher).__name__, len(list(teacher.modules())),
                         len(list(peer.modules())))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_vision_teachers_run_under_the_policy(tmp_path):
    container = compose_job(["workload=clusters_resnet", "workload.train_size=600", "workload.val_size=100",
                             "method=codistill", "method.exchange=checkpoints",
                             "workload.models=[{arch:resnet18},{arch:resnet50}]", *SHORT], tmp_path)
    results = mp.Manager().dict()
    mp.spawn(_vision_rank, args=(str(tmp_path / "init"), container, results), nprocs=2)
    for rank in range(2):
        teacher_modes, expected, _, n_modules, n_peer_modules = results[rank]
        assert n_modules == n_peer_modules   # the peer's own architecture (resnet18 vs resnet50)
        assert teacher_modes == expected
        assert any(teacher_modes.values()) and not all(teacher_modes.values())   # batch norms on the batch


def test_translation_teachers_run_under_the_same_policy(fairseq_task, tmp_path):
    task, model, criterion, sample = fairseq_task(["--criterion", "codistill", "--codistill-dir", str(tmp_path),
                                                   "--n-models", "2", "--exchange-period", "1", "--dropout", "0.3"])
    codistiller = task._build_codistiller(model, criterion)
    [teacher] = codistiller.teachers
    assert modes(teacher) == policy_modes(model)
    assert not any(modes(teacher).values())   # a transformer has no batch norm: all in eval mode
    net_input = sample["net_input"]
    torch.testing.assert_close(teacher(**net_input)[0], teacher(**net_input)[0], rtol=0, atol=0)   # no dropout
