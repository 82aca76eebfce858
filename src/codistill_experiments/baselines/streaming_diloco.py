"""Streaming DiLoCo (Douillard et al. 2025) through torchft's DiLoCo (`torchft.local_sgd.DiLoCo`),
in the engine's layout: each model group is one torchft replica group, and rank j of every group
all_reduces its share with rank j of the others (the engine's peers).

torchft splits the model into `fragments` and, every H / fragments inner updates, syncs one of
them in turn: the fragment's outer gradient (its global copy - this group's parameters) is
all_reduced over the replica groups (averaged), the outer optimizer (here torch's SGD, Nesterov
when outer_momentum > 0, one per fragment) steps the global copy, and the fragment takes it,
mixed with its local values by fragment_update_alpha (0: the global values). With
fragment_sync_delay tau > 0 the all_reduce starts tau updates before the outer step and runs
while those updates train (the overlap). With one fragment and tau = 0 this is DiLoCo
(methods.DiLoCo; tests/test_torchft_diloco.py compares them).

What torchft needs beside the model, kept in this module: a lighthouse (torchft's in-process
`LighthouseServer`, on the run's rank 0, on a free port), one TCPStore per model group (on the
group's first rank, a free port) for its Manager and its reconfigurable gloo process group, and a
Manager per rank with synchronous quorums (DiLoCo's requirement). Every group starts from model
group 0's initialisation (methods.sampling_layout), so the Manager does not sync weights at
step 0 (init_sync=False).

Bits: what each rank hands to the Manager's all_reduce (one fragment's outer gradients, float32),
2|x| per device as the library's counting convention (counting.py), charged to the inter-node counter when the peers span
nodes. The Manager's quorum and commit messages to the lighthouse are control traffic of a few
hundred bytes per sync and are not counted, as no method's rendezvous is.
"""
import logging
import os
import socket
from datetime import timedelta

# torchft logs every quorum, commit and fragment sync at INFO, from Rust and from Python (which
# Hydra's job logging shows); what a run prints is its progress lines (progress.py). Warnings and
# errors stay; RUST_LOG set by the user is kept.
os.environ.setdefault("RUST_LOG", "warn")
for name in ("torchft", "torchft_quorums", "torchft_commits"):
    logging.getLogger(name).setLevel(logging.WARNING)

import torch
import torch.distributed as dist
from torchft._torchft import LighthouseServer
from torchft.local_sgd import DiLoCo
from torchft.manager import Manager
from torchft.process_group import ProcessGroupGloo, ProcessGroupNCCL

from codistill.internals import tensor_bits, wrap_data_parallel

# How long a rank waits for the others at a quorum or a collective: a group that falls this far
# behind the others (or died) fails the run instead of hanging it.
TIMEOUT = timedelta(minutes=10)


class CountedManager(Manager):
    """torchft's Manager, charging `counter` each all_reduce it is handed (2|x| per device)."""

    def __init__(self, counter, crosses_nodes, **options):
        super().__init__(**options)
        self.counter, self.crosses_nodes = counter, crosses_nodes

    def allreduce(self, tensor, *args, **kwargs):
        self.counter.charge_all_reduce(tensor_bits(tensor), self.crosses_nodes)
        return super().allreduce(tensor, *args, **kwargs)


def fragment_modules(model, fragments):
    """`fragments` modules holding the model's parameters in order, cut where the running count of
    elements passes each 1/fragments of the total (consecutive layers, as the paper's sequential
    pattern)."""
    parameters = list(model.parameters())
    if fragments > len(parameters):
        raise ValueError(f"method.fragments={fragments}: the model has only {len(parameters)} parameter tensors")
    total, cuts, running = sum(p.numel() for p in parameters), [], 0
    for index, parameter in enumerate(parameters):
        running += parameter.numel()
        left = len(parameters) - index - 1
        # a cut after this tensor when its share is reached, or when every later fragment needs the rest
        if len(cuts) < fragments - 1 and (running >= total * (len(cuts) + 1) / fragments
                                          or left == fragments - 1 - len(cuts)):
            cuts.append(index + 1)
    bounds = [0, *cuts, len(parameters)]
    return [torch.nn.ParameterList(parameters[start:end]) for start, end in zip(bounds, bounds[1:])]


def replica_group(device):
    """torchft's process group between the models' replicas for parameters on `device`: NCCL for
    CUDA tensors (gloo would stage every outer all_reduce through host memory), gloo on the CPU."""
    kind = ProcessGroupNCCL if device.type == "cuda" else ProcessGroupGloo
    return kind(timeout=TIMEOUT)


def _shared(value, source, group):
    """`value` of rank `source` (a global rank), on every rank of `group`."""
    box = [value]
    dist.broadcast_object_list(box, src=source, group=group)
    return box[0]


class StreamingDiLoCo:
    """method=streaming_diloco: torchft's DiLoCo on the inner optimizer the engine hands to `attach`."""

    def __init__(self, method_cfg, layout, groups, counter):
        self.layout, self.groups, self.counter = layout, groups, counter
        self.period, self.n_groups = method_cfg["period"], method_cfg["n"]
        self.fragments, self.delay = method_cfg["fragments"], method_cfg["fragment_sync_delay"]
        self.alpha = float(method_cfg["fragment_update_alpha"])
        self.outer_lr, self.outer_momentum = float(method_cfg["outer_lr"]), float(method_cfg["outer_momentum"])
        self.model = self.manager = self.diloco = self.lighthouse = self.store = None

    def wrap(self, model):
        self.model = model
        self.manager = self._manager()
        return wrap_data_parallel(model, self.groups, self.counter)

    def _manager(self):
        layout = self.layout
        if layout.rank == 0:
            self.lighthouse = LighthouseServer(bind="[::]:0", min_replicas=self.n_groups)
        lighthouse = _shared(self.lighthouse.address() if self.lighthouse else None, 0, None)
        first = layout.group_ranks(layout.group_index)[0]
        if layout.rank == first:
            self.store = dist.TCPStore(socket.gethostname(), 0, is_master=True, wait_for_workers=False,
                                       timeout=TIMEOUT)
        store = (self.store.host, self.store.port) if self.store else None
        if layout.ranks_per_group > 1:
            store = _shared(store, first, self.groups.group)
        return CountedManager(
            self.counter, self.groups.peers_span_nodes,
            pg=replica_group(next(self.model.parameters()).device), load_state_dict=None, state_dict=None,
            min_replica_size=self.n_groups, use_async_quorum=False, timeout=TIMEOUT, quorum_timeout=TIMEOUT,
            rank=layout.rank_in_group, world_size=layout.ranks_per_group, store_addr=store[0], store_port=store[1],
            lighthouse_addr=lighthouse, replica_id=f"model{layout.group_index}", port=0, init_sync=False)

    def attach(self, optimizer):
        """torchft's DiLoCo on the inner optimizer: its hooks run after each optimizer.step()."""
        fragments = fragment_modules(self.model, self.fragments)
        outer = [torch.optim.SGD(fragment.parameters(), lr=self.outer_lr, momentum=self.outer_momentum,
                                 nesterov=self.outer_momentum > 0) for fragment in fragments]
        self.diloco = DiLoCo(self.manager, fragments, optimizer, outer, sync_every=self.period,
                             fragment_sync_delay=self.delay, fragment_update_alpha=self.alpha)
        self.diloco.__enter__()

    def after_update(self, step):
        pass   # torchft's optimizer hook has acted

    def state_dict(self):
        """What torchft hands a recovering replica (the Manager's `_manager_state_dict`: each
        fragment's global copy and outer optimizer, the Manager's step, which says which fragment
        syncs next) and DiLoCo's count of updates since the last sync. An all_reduce in flight
        (inside a fragment_sync_delay window) is not kept: a run resumed from such a state is refused."""
        return {"torchft": self.manager._manager_state_dict(), "local_step": self.diloco._local_step,
                "in_flight": any(fragment._allreduce_work for fragment in self.diloco._fragments)}

    def load_state_dict(self, saved):
        """As torchft's Manager loads a recovering replica's state (its `_apply_pending_state_dict`)."""
        if saved["in_flight"]:
            raise RuntimeError("method=streaming_diloco: the saved state was taken while a fragment's all_reduce "
                               "was in flight (fragment_sync_delay > 0), which torchft cannot resume; choose "
                               "eval_every_epochs so that evaluations fall outside the delay windows")
        for key, load in self.manager._load_state_dict_fns.items():
            load(saved["torchft"]["user"][key])
        self.manager.load_state_dict(saved["torchft"]["torchft"])
        self.diloco._local_step = saved["local_step"]
