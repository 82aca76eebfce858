"""The public API (`from codistill import ...`): importable with torch alone, built from plain
values, exchanges owning their burn-in and state, and the exchange through files."""
import dataclasses
import inspect
import re
import subprocess
import sys
import threading

import pytest
import torch
from conftest import ROOT
from omegaconf import OmegaConf

from benchmarks.benchlib import spawn

FORBIDDEN = "{'hydra', 'fairseq', 'pandas', 'omegaconf'}"


@pytest.mark.slow
@pytest.mark.parametrize("statement", ["import codistill", "from codistill import *"])
def test_the_api_imports_with_torch_alone(statement):
    code = f"{statement}; import sys; found = {FORBIDDEN} & set(sys.modules); assert not found, found"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_importing_the_package_imports_no_torch_until_a_name_is_used():
    code = ("import sys, codistill, codistill.internals, codistill_experiments.runlog; "
            "from codistill import EXCHANGES, AlphaSchedule; from codistill_experiments.config import schema; "
            "from codistill_experiments.schedules import LR_KINDS; assert 'torch' not in sys.modules; "
            "from codistill import Codistiller, Layout, SnapshotStore; "
            "from codistill.internals import FileCheckpointExchange; "
            "assert 'torch' in sys.modules and Codistiller.__module__ == 'codistill.codistiller'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_every_exported_name_resolves():
    import codistill
    import codistill.internals

    assert all(getattr(codistill, name) is not None for name in codistill.__all__)
    assert all(getattr(codistill.internals, name) is not None for name in codistill.internals.__all__)
    with pytest.raises(AttributeError):
        codistill.no_such_name  # noqa: B018
    with pytest.raises(AttributeError):
        codistill.internals.no_such_name  # noqa: B018


def documented_names(heading):
    """The `names` of docs/library.md's paragraph that starts with `heading`."""
    paragraph = (ROOT / "docs" / "library.md").read_text().split(f"\n{heading}", 1)[1].split("\n\n", 1)[0]
    return set(re.findall(r"`(\w+)`", paragraph))


def test_the_public_api_is_the_methods_and_docs_list_it_and_the_internals():
    """At most 25 public names, each listed in docs/library.md's list of them and nothing more; the
    non-public names the clients use are codistill.internals', listed too; the schedules and
    helpers of the experiments are neither's."""
    import codistill
    import codistill.internals

    assert len(codistill.__all__) <= 25
    assert documented_names("**The public names**") == set(codistill.__all__)
    assert documented_names("**Not public: codistill.internals**") == set(codistill.internals.__all__)
    assert not set(codistill.__all__) & set(codistill.internals.__all__)
    for name in ("LRSchedule", "PiecewiseConstant", "Schedules", "epochs_to_steps", "LR_KINDS"):
        assert not hasattr(codistill, name) and not hasattr(codistill.internals, name), name


def test_schedules_build_from_plain_dicts_as_from_omegaconf_nodes():
    from codistill_experiments.run_schedules import build_schedules

    schedule = {"epochs": 45, "lr": {"kind": "step", "base": 0.1, "reference_batch": 256, "warmup_epochs": 2.5,
                                     "milestones": [18, 38, 44], "decay": 0.1},
                "weight_decay": {"values": [1e-4, 1e-5, 0.0], "milestones": [18, 38]}}
    method = {"alpha": 2.0, "alpha_schedule": "step", "alpha_step_factor": 0.5, "burn_in_steps": 7}
    plain = build_schedules(schedule, method, 512, steps_per_epoch=10)
    assert plain == build_schedules(OmegaConf.create(schedule), OmegaConf.create(method), 512, steps_per_epoch=10)
    # the burn-in is the Codistiller's (alpha_at), not the schedule's: alpha(6) is the schedule's value
    assert plain.alpha(6) == 2.0 and plain.alpha(7) == 2.0 and plain.alpha(180) == 1.0


def _codistillers_from_plain_values(rank, world_size):
    from codistill import Codistiller, Layout

    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=1, rank=rank)
    torch.manual_seed(rank)
    model = torch.nn.Linear(3, 2)
    predictions = Codistiller(model, layout, exchange="predictions", period=2, burn_in_steps=3, prediction_bits=32)
    logits = torch.full((4, 2), float(rank))
    used = [bool(predictions.teachers_logits(step, None, logits)) for step in range(7)]
    result = {"predictions_used": used, "predictions_bits": predictions.counter.inter_node_bits}

    def checkpoints():
        return Codistiller(model, layout, exchange="checkpoints", period=2, burn_in_steps=3,
                           make_teacher=lambda peer: torch.nn.Linear(3, 2))

    inputs = torch.ones(1, 3)
    burning_in = checkpoints()
    before = [burning_in.teachers_logits(step, inputs, None) for step in range(3)]
    codistiller = checkpoints()   # its first update is 4 (as a run resumed there without its state)
    [teacher] = codistiller.teachers_logits(4, inputs, None)
    with torch.no_grad():
        model.weight.add_(1.0)  # moves after the exchange: the teacher must not follow
    state = codistiller.state_dict()
    fresh = checkpoints()
    fresh.load_state_dict(state)
    [restored] = fresh.teachers_logits(5, inputs, None)  # no exchange at 5: the restored teacher
    result.update(before=[len(t) for t in before], teacher=teacher.tolist(), restored=restored.tolist(),
                  source_step=fresh.teachers_from_step(), bits=[state["inter_node_bits"], fresh.counter.inter_node_bits],
                  expected=torch.nn.functional.linear(inputs, *[p.detach() for p in _peer(rank)]).tolist())
    return result


def _peer(rank):
    torch.manual_seed(1 - rank)
    peer = torch.nn.Linear(3, 2)
    return peer.weight, peer.bias


def test_codistillers_own_their_burn_in_and_resume_their_exchanges_state():
    for result in spawn(2, _codistillers_from_plain_values):
        # burn-in 3, period 2: teachers at updates 4 and 6 only, one all_gather of 4 x 2 floats each
        assert result["predictions_used"] == [False, False, False, False, True, False, True]
        assert result["predictions_bits"] == 2 * 32 * 4 * 2
        assert result["before"] == [0, 0, 0]
        assert result["teacher"] == result["expected"] == result["restored"]
        assert result["source_step"] == 4
        assert result["bits"] == [32 * 8] * 2   # one exchange of 3 x 2 + 2 parameters; the resume sends nothing


def _codistiller_rejects(rank, world_size):
    from codistill import Codistiller, Layout

    model = torch.nn.Linear(2, 2)
    layout = Layout(n_groups=2, ranks_per_group=1, ranks_per_node=1, rank=rank)
    messages = []
    for settings in ({"exchange": "logits"}, {"period": 0}, {"loss": "l1"}, {"prediction_bits": 4},
                     {"prediction_topk": 0}, {"prediction_topk": 5, "exchange": "checkpoints"}):
        try:
            Codistiller(model, layout, **settings)
        except ValueError as error:
            messages.append(str(error))
    try:
        Codistiller(model, Layout(n_groups=2, ranks_per_group=2, ranks_per_node=2, rank=rank))
    except ValueError as error:
        messages.append(str(error))
    return messages


def test_codistiller_names_what_is_wrong():
    messages = spawn(2, _codistiller_rejects)[0]
    assert len(messages) == 7
    for expected, message in zip(["exchange='logits'", "period=0", "loss='l1'", "prediction_bits=4",
                                  "prediction_topk=0 is not", "prediction_topk=5 applies", "4 ranks"],
                                 messages, strict=True):
        assert expected in message


def test_file_exchange_teachers_are_the_peers_of_the_last_exchange_point_and_resume_uncounted(tmp_path):
    from codistill import Codistiller

    period, steps, inputs = 3, 8, torch.eye(2)
    owns = [{}, {}]
    seen = [{}, {}]
    exchanges = {}

    def train(group):
        torch.manual_seed(group)
        model = torch.nn.Linear(2, 2, bias=False)
        codistiller = Codistiller.through_files(model, tmp_path, group, 2, period, burn_in_steps=2, timeout_s=60,
                                                make_teacher=lambda peer: torch.nn.Linear(2, 2, bias=False))
        exchanges[group] = codistiller
        for step in range(steps):
            owns[group][step] = model.weight.detach().clone()
            teachers = codistiller.teachers_logits(step, inputs, None)
            seen[group][step] = teachers[0].t() if teachers else None  # eye(2) @ W^T = W^T
            with torch.no_grad():
                model.weight.mul_(1.5).add_(0.1)

    threads = [threading.Thread(target=train, args=(group,)) for group in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    for group in range(2):
        assert all(seen[group][step] is None for step in range(2))
        for step in range(2, steps):
            torch.testing.assert_close(seen[group][step], owns[1 - group][step // period * period], rtol=0, atol=0)
    bits = 32 * 4
    assert [exchanges[group].counter.inter_node_bits for group in range(2)] == [3 * bits] * 2  # snapshots of steps 0, 3, 6
    # A resume at update 8 (the state's next update) reads the held snapshot of 6 again without counting it.
    resumed = Codistiller.through_files(torch.nn.Linear(2, 2, bias=False), tmp_path, 0, 2, period, publish=False)
    resumed.load_state_dict(exchanges[0].state_dict())
    [teacher] = resumed.teachers_logits(8, inputs, None)
    torch.testing.assert_close(teacher.t(), owns[1][6], rtol=0, atol=0)
    assert resumed.counter.inter_node_bits == 3 * bits


def _one_reader_per_model(rank, world_size, root):
    import torch.distributed as dist

    from codistill.file_exchange import FileCheckpointExchange
    from codistill.snapshots import SnapshotStore

    reads = []

    class CountedStore(SnapshotStore):
        def load(self, model, step):
            reads.append((model, step))
            return super().load(model, step)

    teacher = torch.nn.Linear(3, 2)
    exchange = FileCheckpointExchange(CountedStore(root), 0, 2, 1, [teacher], model_group=dist.group.WORLD)
    exchange.refresh(0, None)
    return {"reads": reads, "teacher": [p.tolist() for p in teacher.parameters()], "held": exchange.held_steps(),
            "bits": exchange.counter.inter_node_bits + exchange.counter.intra_node_bits}


def test_a_models_first_rank_alone_reads_a_peers_snapshot_and_its_other_ranks_receive_it(tmp_path):
    from codistill.snapshots import SnapshotStore

    torch.manual_seed(5)
    peer = torch.nn.Linear(3, 2)
    SnapshotStore(tmp_path).publish(1, 0, dict(peer.named_parameters()))   # model 1's snapshot of update 0
    first, second = spawn(2, _one_reader_per_model, str(tmp_path))          # model 0's two ranks
    assert first["reads"] == [[1, 0]] and second["reads"] == []
    expected = [p.tolist() for p in peer.parameters()]
    assert first["teacher"] == second["teacher"] == expected
    assert first["held"] == second["held"] == [0]
    assert first["bits"] == second["bits"] == 32 * (3 * 2 + 2)                # read, or received by broadcast


@pytest.mark.parametrize("arguments, named", [
    ({"n_groups": 2, "ranks_per_group": 1, "ranks_per_node": 1, "rank": 2}, "rank=2"),
    ({"n_groups": 2, "ranks_per_group": 2, "ranks_per_node": 2, "rank": -1}, "rank=-1"),
    ({"n_groups": 0, "ranks_per_group": 1, "ranks_per_node": 1, "rank": 0}, "n_groups=0"),
    ({"n_groups": 2, "ranks_per_group": 1.5, "ranks_per_node": 1, "rank": 0}, "ranks_per_group=1.5")])
def test_a_layout_refuses_a_rank_outside_its_world_and_sizes_that_are_not_whole(arguments, named):
    from codistill import Layout

    with pytest.raises(ValueError, match=re.escape(named)):
        Layout(**arguments)
    with pytest.raises(TypeError, match="rank"):
        Layout(2, 1, 1)        # every rank passes its own: a default of 0 put every process at rank 0


@pytest.mark.parametrize("alpha", [-1, "0.5", float("nan"), True, None])
def test_alpha_must_be_a_number_at_least_zero_or_a_schedule(alpha):
    from codistill import Codistiller

    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="alpha="):
        Codistiller.from_teachers(model, [torch.nn.Linear(2, 2)], alpha=alpha)
    assert Codistiller.from_teachers(model, [torch.nn.Linear(2, 2)], alpha=0).alpha(7) == 0


def test_the_package_says_its_version_as_installed():
    done = subprocess.run([sys.executable, "-c", "import codistill, sys; from importlib.metadata import version; "
                           "print(codistill.__version__, version('codistill')); print('torch' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    release, installed, torch_imported = done.stdout.split()
    assert re.fullmatch(r"\d+\.\d+\.\d+", release) and installed == release and torch_imported == "False"


def _public_members(cls):
    """(name, function) of every public method and property `cls` defines or inherits from the
    library (not from object, Exception or a dataclass's generated methods); __call__ counts."""
    for name, value in inspect.getmembers(cls):
        if name.startswith("_") and name != "__call__":
            continue
        function = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if callable(function) and getattr(function, "__module__", "").startswith("codistill"):
            yield name, function


def test_every_public_name_and_method_says_what_it_holds_or_does():
    import codistill

    undocumented = []
    for name in codistill.__all__:
        value = getattr(codistill, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):   # the constants DISTILL_LOSSES, EXCHANGES
            assert f"`{name}`" in (ROOT / "docs" / "library.md").read_text(), name
            continue
        doc = (value.__doc__ or "").strip()       # a class's own docstring, not one inherited
        if not doc or dataclasses.is_dataclass(value) and doc.startswith(f"{name}("):   # a dataclass's made-up one
            undocumented.append(name)
        if inspect.isclass(value):
            undocumented += [f"{name}.{member}" for member, function in _public_members(value)
                             if not (function.__doc__ or "").strip()]
    assert not undocumented, f"no docstring: {undocumented}"


def copied_param_hash(module):
    """param_hash as the committed traces were written: every parameter copied into one vector,
    then into a bytearray."""
    import hashlib

    vector = torch.cat([p.detach().reshape(-1) for p in module.parameters()]).cpu()
    raw = bytearray(vector.numel() * vector.element_size())
    if raw:
        torch.frombuffer(raw, dtype=vector.dtype).copy_(vector)
    return hashlib.sha1(raw).hexdigest()[:16]


def modules_of_every_layout():
    """Modules whose parameters are contiguous, channels-last, transposed, strided slices (an
    offset into a larger storage), 0-dimensional or empty, of one dtype or of mixed ones."""
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape, dtype=torch.float32):
        values = torch.randn(*shape, generator=generator, dtype=torch.float64)
        return (values * 100).to(dtype) if not dtype.is_floating_point else values.to(dtype)

    def module(*tensors):
        holder = torch.nn.Module()
        for index, value in enumerate(tensors):
            holder.register_parameter(f"p{index}", torch.nn.Parameter(value, requires_grad=value.is_floating_point()))
        return holder

    yield torch.nn.Linear(7, 3)
    yield torch.nn.Conv2d(3, 8, 3).to(memory_format=torch.channels_last)
    yield torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(5, 2))
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8):
        base = tensor(9, 12, dtype=dtype)
        yield module(base[:, 2:7].t(), base[3:6], base[::2, ::3], base[1, 1], tensor(0, 4, dtype=dtype),
                     tensor(2, 3, 4, 5, dtype=dtype).permute(0, 2, 3, 1), tensor(5, dtype=dtype))
    yield module(tensor(4, 5), tensor(3, dtype=torch.float16))                       # promoted to float32
    yield module(tensor(4, 5, dtype=torch.bfloat16), tensor(3, dtype=torch.float16))  # promoted to float32
    yield module(tensor(6, dtype=torch.int32), tensor(2, 2, dtype=torch.float64))     # promoted to float64
    yield module(torch.complex(tensor(3), tensor(3)).conj())                           # a conjugate view


@pytest.mark.parametrize("index, module", list(enumerate(modules_of_every_layout())))
def test_param_hash_hashes_the_same_bytes_as_a_copy_of_every_parameter(index, module):
    """Hashing each parameter where it lies gives the hash of the copied vector, which the
    committed traces hold, whatever the parameters' strides and dtypes."""
    from codistill.internals import param_hash

    before = param_hash(module)
    assert before == copied_param_hash(module)
    with torch.no_grad():   # the first parameter with elements changes, in place, whatever its strides
        next(p for p in module.parameters() if p.numel()).add_(1)
    assert param_hash(module) == copied_param_hash(module) != before


def test_param_hash_tells_parameters_apart_and_refuses_a_module_without_any():
    from codistill.internals import param_hash

    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    assert param_hash(a) != param_hash(b)
    with torch.no_grad():
        b.weight.copy_(a.weight)
        b.bias.copy_(a.bias)
    assert param_hash(a) == param_hash(b)
    with torch.no_grad():
        b.bias[2] = torch.nextafter(b.bias[2], torch.tensor(1.0))   # one bit of one parameter
    assert param_hash(a) != param_hash(b)
    for hashed in (param_hash, copied_param_hash):
        with pytest.raises(ValueError, match="non-empty list of Tensors"):
            hashed(torch.nn.ReLU())
