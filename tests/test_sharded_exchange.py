"""The sharded checkpoint exchange (method.exchange=sharded_checkpoints) against the unsharded one
and against each peer's own parameters, on real gloo processes, and its bits per link."""
import json

import pytest
import torch

from benchmarks.benchlib import spawn


def make_model(group):
    """Group `group`'s architecture (they differ: Figs. 14-15), its conv weight channels_last (a
    parameter not contiguous in memory), with group-specific values."""
    torch.manual_seed(100 + group)
    channels = 4 + 2 * group
    model = torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3), torch.nn.Flatten(), torch.nn.Linear(channels, 3))
    return model.to(memory_format=torch.channels_last)


def move(model, group, exchange_index):
    """What training would do between exchanges, the same on every rank of the group."""
    generator = torch.Generator().manual_seed(1000 * group + exchange_index)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator))


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def _exchange_both_ways(rank, world_size, n, k, chunk_elements):
    from codistill import CommCounter, checkpoint_wire
    from codistill.groups import Layout, make_process_groups
    from codistill.internals import CheckpointExchange, ShardedCheckpointExchange

    checkpoint_wire.CHUNK_ELEMENTS = chunk_elements  # several chunks on a small model
    layout = Layout(n_groups=n, ranks_per_group=k, ranks_per_node=k, rank=rank)  # a model group per node
    groups, group = make_process_groups(layout), layout.group_index
    model = make_model(group)
    others = [j for j in range(n) if j != group]
    counters = {"plain": CommCounter(), "sharded": CommCounter()}
    exchanges = {"plain": CheckpointExchange(groups, counters["plain"], 1, group, model,
                                             [make_model(j) for j in others]),
                 "sharded": ShardedCheckpointExchange(groups, counters["sharded"], 1, group, model,
                                                      [make_model(j) for j in others])}
    equal = []
    for exchange_index in range(2):  # the second exchange reuses the kept buffers
        move(model, group, exchange_index)
        for exchange in exchanges.values():
            exchange.refresh(exchange_index, model)   # period 1: every update is an exchange point
        for j, plain, sharded in zip(others, exchanges["plain"].teachers, exchanges["sharded"].teachers):
            peer = make_model(j)  # the peer's parameters, built here without any collective
            for index in range(exchange_index + 1):
                move(peer, j, index)
            equal.append([same(plain, sharded), same(sharded, peer),
                          sharded[0].weight.is_contiguous(memory_format=torch.channels_last)])
    # Resume: a fresh exchange loaded from the state_dict holds the same teachers, and exchanges on.
    resumed = ShardedCheckpointExchange(groups, CommCounter(), 1, group, model, [make_model(j) for j in others])
    resumed.load_state_dict(exchanges["sharded"].state_dict())
    restored = [same(a, b) for a, b in zip(resumed.teachers, exchanges["sharded"].teachers)]
    move(model, group, 2)
    resumed.refresh(2, model)
    exchanges["plain"].refresh(2, model)
    restored += [same(a, b) for a, b in zip(resumed.teachers, exchanges["plain"].teachers)]
    return {"equal": equal, "restored": restored,
            "bits": {name: [c.inter_node_bits, c.intra_node_bits] for name, c in counters.items()}}


@pytest.mark.parametrize("n, k", [(2, 2), (3, 2)])
def test_sharded_teachers_equal_the_unsharded_exchanges_bit_for_bit(n, k):
    sizes = [sum(p.numel() for p in make_model(group).parameters()) for group in range(n)]
    padded = max(sizes)
    shard = -(-padded // k)
    assert padded % k  # odd: the shards are padded
    results = spawn(n * k, _exchange_both_ways, n, k, 40)
    exchanges = 2
    for result in results:
        plain_bits = result["bits"]["plain"]
        assert result["equal"] == [[True, True, True]] * (exchanges * (n - 1))
        assert result["restored"] == [True] * (2 * (n - 1))
        # Peers cross nodes, a model group stays in its node. Per device and exchange: all_gather
        # over m ranks costs (m-1)|x|.
        assert plain_bits == [(exchanges + 1) * (n - 1) * 32 * padded, 0]  # + one exchange after the resume
        assert result["bits"]["sharded"] == [exchanges * (n - 1) * 32 * shard, exchanges * (k - 1) * n * 32 * shard]


# One epoch (37 updates of digits), constant learning rate: enough updates for several exchanges.
ONE_EPOCH = ["schedule.epochs=1", "schedule.lr.warmup_epochs=0", "schedule.lr.milestones=[]",
             "schedule.weight_decay.values=[1e-4]", "schedule.weight_decay.milestones=[]"]


def _runs(run_job, exchange, period):
    """2 models x 2 ranks, each model group on its own node."""
    overrides = ["method=codistill", f"method.exchange={exchange}", f"method.period={period}", "trace=true",
                 "scale.ranks_per_model=2", "scale.ranks_per_node=2", *ONE_EPOCH]
    directory, container = run_job(overrides)
    traces = [[json.loads(line) for line in open(directory / f"trace-model{m}.jsonl")] for m in range(2)]
    records = [json.loads(line) for line in open(directory / "metrics.jsonl")]
    return traces, [r for r in records if r["kind"] == "eval"][-1], container


@pytest.mark.slow
def test_a_sharded_run_trains_as_the_unsharded_one_and_sends_k_times_fewer_bits_between_nodes(run_job):
    from omegaconf import OmegaConf

    from codistill_experiments.workloads import build_workload

    period, k, n = 10, 2, 2
    plain, plain_record, container = _runs(run_job, "checkpoints", period)
    sharded, sharded_record, _ = _runs(run_job, "sharded_checkpoints", period)
    assert sharded == plain  # every update's own and teachers' parameter hashes
    assert any("teachers" in entry for entry in plain[0])

    workload = build_workload(OmegaConf.create(container["workload"]))
    params = sum(p.numel() for p in workload.make_model(0).parameters())
    steps = sharded_record["step"]
    exchanges = -(-steps // period)
    shard = -(-params // k)
    # DDP's all_reduce (2 b_model per update) stays in the node with the model group's shards.
    assert plain_record["comm_bits_inter_node"] == exchanges * (n - 1) * 32 * params
    assert plain_record["comm_bits_intra_node"] == steps * 2 * 32 * params
    assert sharded_record["comm_bits_inter_node"] == exchanges * (n - 1) * 32 * shard
    assert sharded_record["comm_bits_intra_node"] == steps * 2 * 32 * params + exchanges * (k - 1) * n * 32 * shard


@pytest.mark.slow
def test_validation_accepts_sharded_checkpoints_where_checkpoints_are_and_names_the_key(tmp_path):
    from conftest import compose_job

    from codistill_experiments.config import ConfigError

    job = compose_job(["method=codistill", "method.exchange=sharded_checkpoints", "scale.ranks_per_model=2",
                       "method.coordinated_sampling=false"], tmp_path)
    assert job["method"]["exchange"] == "sharded_checkpoints"
    for overrides, key in ((["method.prediction_bits=16"], "method.prediction_bits=16"),
                           (["workload=translation_mini"], "method.exchange='sharded_checkpoints'")):
        with pytest.raises(ConfigError, match=key):
            compose_job(["method=codistill", "method.exchange=sharded_checkpoints", *overrides], tmp_path)
