"""Compressed checkpoint exchanges (Codistiller's checkpoint_bits, checkpoint_delta_fraction) on
real gloo processes: every rank's teachers against a reconstruction made here in one process from
the peers' parameters, the bits charged against the formula and against the bytes of the tensors
actually handed to the collectives, the degenerate settings (32 bits, fraction 1) against the
uncompressed exchange bit for bit, a resume from the state_dict bit for bit, and the options'
errors."""
import io
import re

import pytest
import torch

from benchmarks.benchlib import spawn
from codistill import Codistiller, Layout
from codistill.internals import quantize_blocks, top_k_chunks

BLOCK, CHUNK = 64, 300     # CHUNK: the test's delta chunk (int16 indices, several chunks a shard)
EXCHANGES = 3
SETTINGS = {"bits8": {"checkpoint_bits": 8}, "bits4": {"checkpoint_bits": 4}, "bits2": {"checkpoint_bits": 2},
            "delta0.1": {"checkpoint_delta_fraction": 0.1}, "delta1": {"checkpoint_delta_fraction": 1.0},
            "bits32": {"checkpoint_bits": 32}, "plain": {}}


def make_model(group):
    """Group `group`'s architecture (they differ), a channels_last conv weight, group-specific values."""
    torch.manual_seed(100 + group)
    channels = 4 + 2 * group
    model = torch.nn.Sequential(torch.nn.Conv2d(3, channels, 3), torch.nn.Flatten(), torch.nn.Linear(channels, 200))
    return model.to(memory_format=torch.channels_last)


def move(model, group, exchange_index):
    """What training would do between exchanges: most values move a little, a few a lot."""
    generator = torch.Generator().manual_seed(1000 * group + exchange_index)
    with torch.no_grad():
        for p in model.parameters():
            jumps = (torch.arange(p.numel()) % 37 == exchange_index).view(p.shape)
            p.add_(torch.randn(p.shape, generator=generator) * 0.01 + torch.randn(p.shape, generator=generator) * jumps)


def vector(group, exchange_index):
    """Group `group`'s flat parameters at exchange `exchange_index` (made here, no collective)."""
    model = make_model(group)
    for index in range(exchange_index + 1):
        move(model, group, index)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _ranks(rank, world_size, kind, n, k):
    from codistill import checkpoints
    from codistill.groups import make_process_groups

    checkpoints.CHECKPOINT_DELTA_CHUNK = CHUNK
    handed = []       # (group size, bytes) of every tensor handed to an all_gather
    gather = torch.distributed.all_gather_single

    def recorded(output, tensor, group=None, async_op=False):
        assert tensor.device == output.device == torch.device("cpu")
        handed.append([torch.distributed.get_world_size(group), tensor.numel() * tensor.element_size(),
                       group is groups.peers])
        return gather(output, tensor, group=group, async_op=async_op)

    torch.distributed.all_gather_single = recorded
    layout = Layout(n_groups=n, ranks_per_group=k, ranks_per_node=k, rank=rank)   # a model group per node
    groups, group = make_process_groups(layout), layout.group_index
    model = make_model(group)

    def build(settings):
        return Codistiller(model, layout, exchange=kind, period=1, make_teacher=make_model, groups=groups,
                           peer_check_every=None, collapse_guard=False, **settings)

    codistillers = {name: build(settings) for name, settings in SETTINGS.items()}
    out = {"teachers": {}, "bits": {}, "handed": {}, "resumed": {}}
    for exchange_index in range(EXCHANGES):
        move(model, group, exchange_index)
        for name, codistiller in codistillers.items():
            before = len(handed)
            codistiller.refresh(exchange_index)
            out["handed"].setdefault(name, []).extend(handed[before:])
            out["teachers"].setdefault(name, []).append(
                [torch.cat([p.detach().reshape(-1) for p in t.parameters()]).tolist() for t in codistiller.teachers])
    for name, codistiller in codistillers.items():
        out["bits"][name] = [codistiller.counter.inter_node_bits, codistiller.counter.intra_node_bits]
    # Resume: a fresh Codistiller loaded from a saved state_dict exchanges on as the uninterrupted one.
    move(model, group, EXCHANGES)
    for name in ("delta0.1", "bits4"):
        buffer = io.BytesIO()
        torch.save(codistillers[name].state_dict(), buffer)
        buffer.seek(0)
        fresh = build(SETTINGS[name])
        fresh.load_state_dict(torch.load(buffer, map_location="cpu"))
        same_loaded = all(torch.equal(a, b) for x, y in zip(fresh.teachers, codistillers[name].teachers)
                          for a, b in zip(x.parameters(), y.parameters()))
        counts = []
        for codistiller in (codistillers[name], fresh):
            before = codistiller.counter.inter_node_bits + codistiller.counter.intra_node_bits
            codistiller.refresh(EXCHANGES)
            counts.append(codistiller.counter.inter_node_bits + codistiller.counter.intra_node_bits - before)
        same_after = all(torch.equal(a, b) for x, y in zip(fresh.teachers, codistillers[name].teachers)
                         for a, b in zip(x.parameters(), y.parameters()))
        out["resumed"][name] = [same_loaded, same_after, counts[0] == counts[1] > 0]
    torch.distributed.all_gather_single = gather
    return out


def expected_teachers(name, n, shards):
    """Per exchange, per group: the vector every rank holds of it, worked out here."""
    sizes = [vector(j, 0).numel() for j in range(n)]
    shard = -(-max(sizes) // shards)
    settings = SETTINGS[name]
    held, out = None, []
    for exchange_index in range(EXCHANGES):
        padded = [torch.nn.functional.pad(vector(j, exchange_index), (0, shard * shards - sizes[j])) for j in range(n)]
        pieces = [[v[s * shard:(s + 1) * shard] for s in range(shards)] for v in padded]
        if "checkpoint_bits" in settings:
            held = [[quantize_blocks(p, settings["checkpoint_bits"], BLOCK).dequantize() for p in row] for row in pieces]
        elif "checkpoint_delta_fraction" in settings and held is not None:
            for row, held_row in zip(pieces, held):
                for piece, reconstruction in zip(row, held_row):
                    positions = top_k_chunks(piece - reconstruction, settings["checkpoint_delta_fraction"],
                                             CHUNK).positions()
                    reconstruction[positions] = piece[positions]
        else:          # plain, or the first exchange of sparse deltas: the vectors whole
            held = [[p.clone() for p in row] for row in pieces]
        out.append([torch.cat(row)[:sizes[j]] for j, row in enumerate(held)])
    return out, shard


def expected_bits(name, n, k, shards, shard):
    """(inter-node, intra-node) bits per device after EXCHANGES exchanges: a model group per node,
    so the peers' all_gathers cross nodes and the model group's (sharded) stay in it."""
    settings = SETTINGS[name]
    if settings.get("checkpoint_bits", 32) != 32:
        one = 8 * -(-shard * settings["checkpoint_bits"] // 8) + 32 * -(-shard // BLOCK)
        per_exchange = [one] * EXCHANGES
    elif "checkpoint_delta_fraction" in settings:
        chunks = [CHUNK] * (shard // CHUNK) + ([shard % CHUNK] if shard % CHUNK else [])
        kept = sum(max(1, round(settings["checkpoint_delta_fraction"] * c)) for c in chunks)
        per_exchange = [32 * shard] + [kept * (16 + 32)] * (EXCHANGES - 1)
    else:
        per_exchange = [32 * shard] * EXCHANGES
    total = sum(per_exchange)
    return [(n - 1) * total, (shards - 1) * n * total]


@pytest.mark.slow
@pytest.mark.parametrize("kind, n, k", [("checkpoints", 3, 1), ("checkpoints", 2, 2),
                                        ("sharded_checkpoints", 2, 2), ("sharded_checkpoints", 3, 2)])
def test_compressed_teachers_bits_and_resume_against_a_reconstruction_made_here(kind, n, k):
    results = spawn(n * k, _ranks, kind, n, k)
    shards = k if kind == "sharded_checkpoints" else 1
    for rank, result in enumerate(results):
        group = rank // k
        others = [j for j in range(n) if j != group]
        for name in SETTINGS:
            expected, shard = expected_teachers(name, n, shards)
            for exchange_index in range(EXCHANGES):
                got = result["teachers"][name][exchange_index]
                for j, teacher in zip(others, got, strict=True):
                    assert torch.equal(torch.tensor(teacher), expected[exchange_index][j]), (name, exchange_index, j)
            bits = expected_bits(name, n, k, shards, shard)
            assert result["bits"][name] == bits, name
            # the counter against the bytes of the tensors actually handed to the all_gathers
            handed = result["handed"][name]
            assert sum((size - 1) * 8 * nbytes for size, nbytes, peers in handed if peers) == bits[0]
            assert sum((size - 1) * 8 * nbytes for size, nbytes, peers in handed if not peers) == bits[1]
        # degenerate settings: the uncompressed teachers bit for bit
        assert result["teachers"]["delta1"] == result["teachers"]["plain"] == result["teachers"]["bits32"]
        assert result["bits"]["bits32"] == result["bits"]["plain"]
        # 8 bits stay within half a step of the peers' parameters; 4 bits and sparse deltas differ from them
        for exchange_index in range(EXCHANGES):
            for j, teacher in zip(others, result["teachers"]["bits8"][exchange_index]):
                truth = vector(j, exchange_index)
                assert (torch.tensor(teacher) - truth).abs().max() <= truth.abs().max() / 127 / 2 * 1.0001
        assert result["teachers"]["bits4"] != result["teachers"]["plain"]
        assert result["teachers"]["delta0.1"][0] == result["teachers"]["plain"][0]      # the first: whole
        assert result["teachers"]["delta0.1"][1] != result["teachers"]["plain"][1]
        assert result["resumed"] == {"delta0.1": [True, True, True], "bits4": [True, True, True]}


@pytest.mark.parametrize("settings, message", [
    ({"checkpoint_bits": 16}, r"checkpoint_bits=16 is not one of \(32, 8, 4, 2\)"),
    ({"checkpoint_bits": True}, r"checkpoint_bits=True is not one of"),
    ({"checkpoint_delta_fraction": 0}, r"checkpoint_delta_fraction=0 is not None or a number in \(0, 1\]"),
    ({"checkpoint_delta_fraction": 1.5}, r"checkpoint_delta_fraction=1.5 is not None"),
    ({"checkpoint_bits": 8, "checkpoint_delta_fraction": 0.1}, r"checkpoint_bits=8 and checkpoint_delta_fraction=0.1 do "
                                                               "not combine"),
    ({"exchange": "predictions", "checkpoint_bits": 8}, r"apply to checkpoint exchanges only"),
])
def test_the_options_name_what_is_wrong(settings, message):
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=1, rank=0)
    settings = {"exchange": "checkpoints", **settings}
    with pytest.raises(ValueError, match=message):
        Codistiller(torch.nn.Linear(2, 2), layout, **settings)


# ----- the experiments' method=codistill keys: checkpoint_bits, checkpoint_delta_fraction

def test_the_new_keys_at_their_defaults_leave_run_ids_as_they_were_and_change_them_when_set(tmp_path):
    from conftest import compose_job

    from codistill_experiments.runlog import identity, run_id

    job = compose_job(["method=codistill", "method.exchange=checkpoints"], tmp_path)
    assert (job["method"]["checkpoint_bits"], job["method"]["checkpoint_delta_fraction"]) == (32, None)
    assert "checkpoint_bits" not in identity(job)["method"] and "checkpoint_delta_fraction" not in identity(job)["method"]
    ids = {run_id(job)}
    for override in ("method.checkpoint_bits=4", "method.checkpoint_delta_fraction=0.01"):
        ids.add(run_id(compose_job(["method=codistill", "method.exchange=checkpoints", override], tmp_path)))
    assert len(ids) == 3


@pytest.mark.parametrize("overrides, message", [
    (["method.checkpoint_bits=16"], "method.checkpoint_bits=16: allowed: 32, 8, 4, 2"),
    (["method.checkpoint_delta_fraction=0"], "method.checkpoint_delta_fraction=0: must be in (0, 1]"),
    (["method.checkpoint_delta_fraction=2"], "method.checkpoint_delta_fraction=2: must be in (0, 1]"),
    (["method.exchange=predictions", "method.checkpoint_bits=8"],
     "method.checkpoint_bits=8: compresses checkpoints exchanged through collectives only"),
    (["method.transport=files", "method.checkpoint_delta_fraction=0.1", "method.coordinated_sampling=false"],
     "method.checkpoint_delta_fraction=0.1: compresses checkpoints exchanged through collectives only"),
    (["method.checkpoint_bits=8", "method.checkpoint_delta_fraction=0.1"],
     "method.checkpoint_bits=8 and method.checkpoint_delta_fraction=0.1: one or the other"),
    (["workload=translation_mini", "method.checkpoint_bits=8"], "method.checkpoint_bits=8: the fairseq models"),
])
def test_the_keys_are_validated_naming_the_key(tmp_path, overrides, message):
    from conftest import compose_job

    from codistill_experiments.config import ConfigError

    overrides = ["method=codistill", "method.exchange=checkpoints", *overrides]
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose_job(overrides, tmp_path)


ONE_EPOCH = ["schedule.epochs=1", "schedule.lr.warmup_epochs=0", "schedule.lr.milestones=[]",
             "schedule.weight_decay.values=[1e-4]", "schedule.weight_decay.milestones=[]"]


@pytest.mark.parametrize("exchange, k, key, value", [("sharded_checkpoints", 2, "checkpoint_bits", 4),
                                                     ("checkpoints", 1, "checkpoint_delta_fraction", 0.01)])
def test_a_run_through_the_engine_charges_the_compressed_bits(run_job, exchange, k, key, value):
    import json

    from omegaconf import OmegaConf

    from codistill_experiments.workloads import build_workload

    period, n = 10, 2
    overrides = ["method=codistill", f"method.exchange={exchange}", f"method.period={period}", f"method.{key}={value}",
                 f"scale.ranks_per_model={k}", f"scale.ranks_per_node={k}", *ONE_EPOCH]
    directory, container = run_job(overrides)
    records = [json.loads(line) for line in open(directory / "metrics.jsonl")]
    record = [r for r in records if r["kind"] == "eval"][-1]
    assert container["method"][key] == value
    workload = build_workload(OmegaConf.create(container["workload"]))
    params = sum(p.numel() for p in workload.make_model(0).parameters())
    steps = record["step"]
    exchanges = -(-steps // period)
    shard = -(-params // k)
    if key == "checkpoint_bits":
        per_exchange = [8 * -(-shard * value // 8) + 32 * -(-shard // 64)] * exchanges
    else:
        chunks = [4096] * (shard // 4096) + ([shard % 4096] if shard % 4096 else [])
        kept = sum(max(1, round(value * c)) for c in chunks)
        per_exchange = [32 * shard] + [kept * (16 + 32)] * (exchanges - 1)
    assert record["comm_bits_inter_node"] == (n - 1) * sum(per_exchange)
    # DDP's all_reduce (2 b_model per update) and, sharded, the model group's assembly stay in the node
    ddp = steps * 2 * 32 * params if k > 1 else 0
    assert record["comm_bits_intra_node"] == ddp + (k - 1) * n * sum(per_exchange)
    assert record["val_top1"] > 30   # it trains (top-1 in percent; 10 classes)


@pytest.mark.slow
@pytest.mark.parametrize("exchange, key, value", [("checkpoints", "checkpoint_bits", 4),
                                                  ("sharded_checkpoints", "checkpoint_delta_fraction", 0.01)])
def test_every_tensor_a_compressed_exchange_hands_to_a_collective_is_on_the_runs_device(
        tmp_path, run_job, monkeypatch, exchange, key, value):
    """On GPUs NCCL refuses a CPU tensor: the probe (tests/device_probe.py) raises its error for any
    tensor handed to a collective that a GPU run would hold on the CPU (codes, scales, indices, values)."""
    from device_probe import DevicelessTensors, watch_collectives

    record = tmp_path / "collectives.txt"
    probe = DevicelessTensors()
    watch_collectives(monkeypatch, probe, record)
    with probe:
        run_job(["method=codistill", f"method.exchange={exchange}", "method.period=10", f"method.{key}={value}",
                 "scale.ranks_per_model=2", "scale.ranks_per_node=2", *ONE_EPOCH])
    assert "all_gather_single" in record.read_text().split()
