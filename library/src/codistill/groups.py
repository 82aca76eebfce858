"""Where every rank sits: n model groups of k ranks each, laid out on nodes (servers).

Rank r belongs to model group r // k at position r % k. Ranks at the same position in every
group are "peers": they see the same mini-batch under coordinated sampling and exchange
predictions or checkpoints with each other. A node holds `ranks_per_node` consecutive ranks
(the paper: one 8-GPU server per model), and only traffic that crosses nodes is what the paper's
Figure 1 counts.
"""
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Layout:
    """Where this rank sits: n_groups models of ranks_per_group ranks each, ranks_per_node
    consecutive ranks per node, and this process's global rank (torch.distributed.get_rank()):
    rank r is in model group r // ranks_per_group (`group_index`) at position r % ranks_per_group
    (`rank_in_group`). Every rank builds its own Layout with its own rank."""
    n_groups: int
    ranks_per_group: int
    ranks_per_node: int
    rank: int

    def __post_init__(self):
        for name in ("n_groups", "ranks_per_group", "ranks_per_node"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Layout({name}={value!r}): must be a whole number >= 1")
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or not 0 <= self.rank < self.world_size:
            raise ValueError(f"Layout(rank={self.rank!r}): must be this process's rank in 0 .. {self.world_size - 1} "
                             f"({self.n_groups} groups x {self.ranks_per_group} ranks); pass "
                             "rank=torch.distributed.get_rank()")

    @property
    def world_size(self):
        """The number of ranks the layout spans: n_groups x ranks_per_group."""
        return self.n_groups * self.ranks_per_group

    @property
    def group_index(self):
        """This rank's model group (which model it trains): rank // ranks_per_group."""
        return self.rank // self.ranks_per_group

    @property
    def rank_in_group(self):
        """This rank's position in its model group: rank % ranks_per_group. Its peers, the ranks
        it exchanges predictions with, hold the same position in the other groups."""
        return self.rank % self.ranks_per_group

    def shared_batch_sampler(self, dataset, shuffle=True, seed=0, drop_last=False):
        """A DistributedSampler for this rank that the prediction exchange can pair: split over
        the ranks of one model group (each rank of a model its own shard, as DDP expects), the
        same for every model group (peers, the ranks at one position in each group, draw the same
        samples in the same order). Call its set_epoch(epoch) every epoch, as any DistributedSampler's."""
        from torch.utils.data import DistributedSampler

        return DistributedSampler(dataset, num_replicas=self.ranks_per_group, rank=self.rank_in_group,
                                  shuffle=shuffle, seed=seed, drop_last=drop_last)

    def group_ranks(self, group):
        """The global ranks of model group `group` (the ranks of one model's DDP)."""
        k = self.ranks_per_group
        return list(range(group * k, (group + 1) * k))

    def peer_ranks(self, position):
        """The global ranks at `position` in every model group, in group order: the peers that
        exchange with each other."""
        return [group * self.ranks_per_group + position for group in range(self.n_groups)]

    def spans_nodes(self, ranks):
        """Whether `ranks` lie on more than one node (ranks_per_node consecutive ranks a node):
        traffic among them is then counted as inter-node."""
        return len({rank // self.ranks_per_node for rank in ranks}) > 1

    def device_mesh(self, device_type=None, groups=None):
        """The layout as a 2-D torch DeviceMesh of n_groups x ranks_per_group, dimensions named
        ("model", "rank"): rank r at coordinate (group_index, rank_in_group). mesh["rank"] spans
        one model's ranks (its data-parallel group: what DDP or FSDP2's fully_shard takes),
        mesh["model"] the peers at this rank's position, one rank of every model.
        device_type: "cpu", "cuda", ...; None: the default process group's ("cuda" for NCCL,
        else "cpu"). groups: None builds the mesh's own process groups (init_device_mesh: a
        collective, every rank calls it); the Codistiller's `groups` (or make_process_groups's)
        builds it on those, without new groups (mesh["rank"].get_group() is its model_group).
        The default process group must span the layout's ranks."""
        from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

        if not dist.is_initialized():
            raise ValueError("Layout.device_mesh: torch.distributed is not initialized: call init_process_group first")
        if dist.get_world_size() != self.world_size:
            raise ValueError(f"Layout.device_mesh: the layout has {self.world_size} ranks ({self.n_groups} groups x "
                             f"{self.ranks_per_group}), the process group {dist.get_world_size()}")
        if device_type is None:
            device_type = "cuda" if "nccl" in str(dist.get_backend()) else "cpu"
        shape, names = (self.n_groups, self.ranks_per_group), ("model", "rank")
        if groups is None:
            return init_device_mesh(device_type, shape, mesh_dim_names=names)
        return DeviceMesh.from_group([groups.peers, groups.group], device_type,
                                     mesh=torch.arange(self.world_size).view(shape), mesh_dim_names=names)


@dataclass
class ProcessGroups:
    """This rank's process groups: its model group (for DDP) and its peer group (for exchange)."""
    group: object
    peers: object
    group_spans_nodes: bool
    peers_span_nodes: bool


def make_process_groups(layout, timeout=None):
    """Every rank must create every group, in the same order (torch.distributed's rule).
    timeout (a datetime.timedelta): how long a collective of these groups may wait; give the one
    the world was initialised with. None leaves torch's default for a new group, which is not the
    world's (10 minutes on NCCL, 30 on gloo), and on NCCL a collective that outlives it aborts the
    process."""
    own_group = own_peers = None
    for group in range(layout.n_groups):
        ranks = layout.group_ranks(group)
        handle = dist.new_group(ranks, timeout=timeout) if layout.n_groups > 1 else dist.group.WORLD
        if group == layout.group_index:
            own_group = handle
    for position in range(layout.ranks_per_group):
        ranks = layout.peer_ranks(position)
        handle = dist.new_group(ranks, timeout=timeout) if layout.ranks_per_group > 1 else dist.group.WORLD
        if position == layout.rank_in_group:
            own_peers = handle
    return ProcessGroups(
        group=own_group,
        peers=own_peers,
        group_spans_nodes=layout.spans_nodes(layout.group_ranks(layout.group_index)),
        peers_span_nodes=layout.spans_nodes(layout.peer_ranks(layout.rank_in_group)),
    )
