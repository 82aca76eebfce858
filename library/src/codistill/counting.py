"""How many bits the collectives send (paper Section 3): the bit counter (CommCounter), the
collectives that charge it, and DDP over a model group with every gradient bucket counted.

Counting convention: each collective is charged, per device, the traffic of a bandwidth-optimal
algorithm on the tensor actually handed to it, which is the paper's Section 3 model:
all_reduce of x costs 2|x|; all_gather of x over m ranks costs (m-1)|x|. Charges go to the
inter-node counter when the process group crosses nodes, else to the intra-node one: each
collective to the link it crosses. The exchanges (predictions.py, checkpoints.py) and the
snapshots through files (snapshots.py) charge through it.
"""
import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks


class CommCounter:
    """The bits this rank sent, per link: between nodes and inside a node."""

    def __init__(self):
        self.inter_node_bits = 0
        self.intra_node_bits = 0

    def charge(self, bits, crosses_nodes):
        """Adds `bits` sent to the inter-node count when `crosses_nodes`, else to the intra-node one."""
        if crosses_nodes:
            self.inter_node_bits += bits
        else:
            self.intra_node_bits += bits

    def charge_all_reduce(self, bits, crosses_nodes):
        """An all_reduce of `bits`: 2 x bits per device (Section 3's bandwidth-optimal algorithm)."""
        self.charge(2 * bits, crosses_nodes)

    def charge_gradient_all_reduce(self, module, crosses_nodes):
        """One all_reduce of `module`'s gradients (its parameters that require grad, in their
        dtype), as a data-parallel wrapper outside the library runs at every update (fairseq's):
        charge_all_reduce of their bits. wrap_data_parallel's DDP charges its buckets itself."""
        self.charge_all_reduce(sum(tensor_bits(p) for p in module.parameters() if p.requires_grad), crosses_nodes)

    def world_total(self, group=None, device="cpu"):
        """A CommCounter holding the sum over the ranks of `group` (None: the world) of their
        counts: a collective (every rank of the group calls it). device: where the two numbers
        travel (NCCL: this rank's CUDA device)."""
        counts = torch.tensor([self.inter_node_bits, self.intra_node_bits], dtype=torch.int64, device=device)
        dist.all_reduce(counts, group=group)
        total = CommCounter()
        total.inter_node_bits, total.intra_node_bits = (int(value) for value in counts.tolist())
        return total


def tensor_bits(tensor):
    """The bits `tensor` holds (elements x element size), as it travels: what a collective of it
    is charged for (all_reduce 2 x that, all_gather over m ranks (m - 1) x that)."""
    return tensor.numel() * tensor.element_size() * 8


def counted_all_gather(tensor, group, counter, crosses_nodes):
    """all_gather `tensor` over `group`; returns the list of every member's tensor."""
    size = dist.get_world_size(group)
    gathered = [torch.empty_like(tensor) for _ in range(size)]
    dist.all_gather(gathered, tensor.contiguous(), group=group)
    counter.charge((size - 1) * tensor_bits(tensor), crosses_nodes)
    return gathered


def counted_all_gather_into(output, tensor, group, counter, crosses_nodes):
    """Starts the all_gather of `tensor` over `group` into the kept `output` (members' tensors
    one after another; `tensor` may be a view of it); returns the work to wait on."""
    counter.charge((dist.get_world_size(group) - 1) * tensor_bits(tensor), crosses_nodes)
    # torch 2.14 deprecates all_gather_into_tensor for all_gather_single, which torch 2.11 does not
    # have yet (the library's range starts at torch 2.4): whichever this torch calls it
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    return gather(output, tensor, group=group, async_op=True)


def _counting_allreduce_hook(state, bucket):
    process_group, counter, crosses_nodes = state
    counter.charge_all_reduce(tensor_bits(bucket.buffer()), crosses_nodes)
    return default_hooks.allreduce_hook(process_group, bucket)


def count_all_reduce(ddp, groups, counter):
    """Registers on `ddp` (a DistributedDataParallel over groups.group) the comm hook that charges
    every gradient bucket's all_reduce to `counter` (DDP takes one comm hook: this one all_reduces
    as DDP's default does)."""
    ddp.register_comm_hook((groups.group, counter, groups.group_spans_nodes), _counting_allreduce_hook)
    return ddp


def wrap_data_parallel(model, groups, counter, **ddp_options):
    """DDP over this rank's model group, every gradient bucket counted (ddp_options: DDP's other
    arguments, e.g. device_ids); a single-rank group trains the bare model (nothing to
    all_reduce, nothing sent)."""
    if dist.get_world_size(groups.group) == 1:
        return model
    ddp = torch.nn.parallel.DistributedDataParallel(model, process_group=groups.group, **ddp_options)
    return count_all_reduce(ddp, groups, counter)
