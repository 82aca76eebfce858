"""A CPU stand-in for a GPU run's device placement: which tensors handed to a collective would have
been on the CPU, had the run's device been a GPU.

On a GPU a tensor is on the CPU when it was made without a device (torch.zeros(n), torch.tensor(x),
torch.randperm(n): the default device is the CPU) and never moved, or computed from such tensors
alone. NCCL has no CPU backend: it refuses those ("No backend type associated with device type
cpu", as a group built with init_process_group("cuda:gloo") does on this machine). On a CPU run
they are indistinguishable from the rest, so `DevicelessTensors` (a TorchFunctionMode) follows them:
a factory call without `device=` marks its tensor, an out-of-place result all of whose tensor inputs
are marked is marked, `.to(<device>)` and `.cuda()` give an unmarked new tensor (on a CPU run `.to`
returns the tensor itself; here, as on a GPU, it is a copy, and the original keeps its mark),
`.cpu()` marks. `watch_collectives`
wraps torch.distributed's collectives so that a marked tensor handed to one raises NCCL's error,
and records each collective it checked in a file (ranks are processes: the test reads the file).

Ranks forked from a process that has entered the mode and wrapped the collectives inherit both.
"""
import weakref

import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.tensor, torch.arange, torch.rand, torch.randn,
             torch.randint, torch.randperm, torch.eye, torch.linspace, torch.empty_strided}
MOVES = {torch.Tensor.to, torch.Tensor.cuda}
COLLECTIVES = ("all_reduce", "all_gather", "all_gather_into_tensor", "all_gather_single", "broadcast", "reduce",
               "reduce_scatter", "reduce_scatter_tensor", "all_to_all", "all_to_all_single", "gather", "scatter",
               "send", "recv", "isend", "irecv")
NCCL_REFUSAL = "No backend type associated with device type cpu"


def tensors_in(values):
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from tensors_in(value)
        elif isinstance(value, dict):
            yield from tensors_in(value.values())


def names_a_device(args, kwargs):
    """Whether a .to() call moves to a device (a device, a device's name, another tensor's)."""
    return kwargs.get("device") is not None or any(isinstance(arg, (torch.device, str, torch.Tensor))
                                                   for arg in args[1:])


class DevicelessTensors(TorchFunctionMode):
    """Marks the tensors that a GPU run would hold on the CPU (the module's rules)."""

    def __init__(self):
        super().__init__()
        self.refs = {}   # id -> weak reference of each marked tensor (tensors compare by value, not identity)

    def __contains__(self, tensor):
        ref = self.refs.get(id(tensor))
        return ref is not None and ref() is tensor

    def mark(self, tensor):
        key = id(tensor)
        self.refs[key] = weakref.ref(tensor, lambda _, key=key: self.refs.pop(key, None))

    def unmark(self, tensor):
        if tensor in self:
            del self.refs[id(tensor)]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func in FACTORIES:
            if kwargs.get("device") is None:
                self.mark(result)
            return result
        if func in MOVES and (func is torch.Tensor.cuda or names_a_device(args, kwargs)):
            # a move to the CPU run's device returns the tensor itself; a move to a GPU a new one,
            # and the tensor moved stays where it was: so here
            return result.clone() if result is args[0] else result
        if func is torch.Tensor.cpu:
            self.mark(result)
            return result
        inputs = list(tensors_in([args, kwargs]))
        if not inputs or not all(tensor in self for tensor in inputs):
            return result
        for output in tensors_in([result]):
            if not any(output is tensor for tensor in inputs):   # an in-place op keeps its tensor's device
                self.mark(output)
        return result


def watch_collectives(monkeypatch, probe, record_path):
    """Wraps each collective of torch.distributed: a tensor the probe marked raises NCCL's
    refusal, naming the collective; each call checked appends its name to record_path."""
    def watched(name, collective):
        def call(*args, **kwargs):
            with open(record_path, "a") as record:
                record.write(name + "\n")
            if any(tensor in probe for tensor in tensors_in([args, kwargs])):
                raise RuntimeError(f"{NCCL_REFUSAL}: dist.{name} was handed a tensor made without the run's "
                                   "device (NCCL refuses CPU tensors)")
            return collective(*args, **kwargs)
        return call

    for name in COLLECTIVES:
        if hasattr(dist, name):
            monkeypatch.setattr(dist, name, watched(name, getattr(dist, name)))
