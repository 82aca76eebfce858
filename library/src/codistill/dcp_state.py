"""A codistillation run's state through torch.distributed.checkpoint (DCP): Codistiller.dcp_state().

DCP writes a key once however many ranks hold it (dedup_save_plans keeps one rank's copy): right
for one model's replicas under DDP, wrong for codistillation, where the ranks of different model
groups hold different models under the same keys. `dcp.save({"model": model.state_dict()})` from
2 models saves one of them, and `dcp.load` gives every rank that one. So each entry here is a
Stateful whose state sits under a key of its own: the model's and the optimizer's under the model
group ("model<j>": a model's replicas are still written once, and FSDP2's shards as DTensors),
the Codistiller's under the rank ("rank<r>": its counts and teachers are this rank's).

The model and the optimizer go through torch's own torch.distributed.checkpoint.state_dict
functions (parameter names without DDP's "module.", an optimizer's state keyed by them and
created before a load). The Codistiller's state travels as one object per rank: its parts that
may be None or a tensor (the teachers' update, a sparse exchange's reconstructed vectors) would
not fit a DCP template built from a fresh Codistiller.
"""
import contextlib
import io

import torch
import torch.distributed as dist


class KeyedState:
    """A DCP Stateful holding `get()`'s state under `key`, restored by `put(state)`; `pause` a
    context around both (the Codistiller's count, which torch's optimizer state functions would
    advance by the zero-gradient step they take to create a fresh optimizer's state)."""

    def __init__(self, key, get, put, pause=contextlib.nullcontext):
        self.key, self.get, self.put, self.pause = key, get, put, pause

    def state_dict(self):
        """{key: the state}: what dcp.save writes, and the template dcp.load fills."""
        with self.pause():
            return {self.key: self.get()}

    def load_state_dict(self, state):
        """Restores the state that dcp.load read under the key."""
        with self.pause():
            self.put(state[self.key])


def _to_bytes(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _from_bytes(data):
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def dcp_state(codistiller, group_index, model, optimizer, pause):
    """The entries of Codistiller.dcp_state (there, what each holds)."""
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    rank = dist.get_rank() if dist.is_initialized() else 0
    model_key = f"model{group_index}"
    state = {"codistiller": KeyedState(f"rank{rank}", lambda: _to_bytes(codistiller.state_dict()),
                                       lambda data: codistiller.load_state_dict(_from_bytes(data))),
             "model": KeyedState(model_key, lambda: get_model_state_dict(model),
                                 lambda values: set_model_state_dict(model, values))}
    if optimizer is not None:
        state["optimizer"] = KeyedState(model_key, lambda: get_optimizer_state_dict(model, optimizer),
                                        lambda values: set_optimizer_state_dict(model, optimizer, values), pause)
    return state
