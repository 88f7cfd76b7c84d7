"""Rebuilding a swarm around one manager, from what a replica or a backup holds:
- `swarm init --force-new-cluster`: a surviving manager of a swarm that lost its managers'
  quorum becomes a one-manager swarm with all the state its replica holds;
- `swarm restore FILE`: a node outside any swarm becomes the one manager of the swarm in a
  backup (covey/backupfile.py), with a new node ID and address.
Either way the other managers are removed and denied; the workers stay, as nodes.
"""
import logging
import time
from dataclasses import dataclass, field

from coveyd.nodestate import Membership
from manager.manager import manager_node
from manager.state.actions import create, write_chunks
from manager.state.formats import StoreObject
from manager.state.store import Store
from proto import backup_pb2, store_pb2
from proto import objects_pb2 as pb

log = logging.getLogger(__name__)

NOT_REJOINED = "restored from a backup: not back yet (covey swarm join to this swarm's new address)"


@dataclass
class SwarmState:
    """Copies of every object of a replica or a backup."""
    cluster: pb.Cluster
    nodes: list[pb.Node]
    services: list[pb.Service]
    tasks: list[pb.Task]
    # Objects kept as they are: networks, stacks, secrets, configs.
    others: list[StoreObject] = field(default_factory=list)

    @property
    def networks(self) -> list[pb.Network]:
        return [o for o in self.others if isinstance(o, pb.Network)]


def read_state(store: Store) -> SwarmState:
    """A replica's objects, read before its Raft log is set aside."""
    others: list[StoreObject] = [*store.networks.list(), *store.stacks.list(), *store.secrets.list(),
                                 *store.configs.list()]
    return SwarmState(store.clusters.list()[0], store.nodes.list(), store.services.list(), store.tasks.list(),
                      others)


def state_of(snapshot: store_pb2.StoreSnapshot) -> SwarmState:
    """A backup's objects (covey/backupfile.py has checked it holds exactly one cluster)."""
    copies = store_pb2.StoreSnapshot()
    copies.CopyFrom(snapshot)
    others: list[StoreObject] = [*copies.networks, *copies.stacks, *copies.secrets, *copies.configs]
    return SwarmState(copies.clusters[0], list(copies.nodes), list(copies.services), list(copies.tasks), others)


def alone(state: SwarmState, me: Membership) -> tuple[pb.Cluster, list[store_pb2.StoreAction]]:
    """The writes that rebuild `state` with this manager (one of `state.nodes`) the only one:
    the other managers are left out and denied from now on; their tasks stay, for the
    orchestrator to replace. The cluster comes last: the leader loops start once it is
    written (manager/manager.py), so they never see part of the state."""
    cluster = pb.Cluster()
    cluster.CopyFrom(state.cluster)
    lost = [n.id for n in state.nodes if n.role == pb.MANAGER and n.id != me.node_id]
    cluster.removed_nodes.extend(lost)
    nodes = [n for n in state.nodes if n.id not in lost]
    for node in nodes:
        if node.id == me.node_id:
            node.manager_status.CopyFrom(pb.ManagerStatus(raft_addr=me.raft_addr, api_addr=me.advertise_addr))
    objects: list[StoreObject] = [*nodes, *state.others, *state.services, *state.tasks, cluster]
    return cluster, [create(obj) for obj in objects]


def restore_plan(backup: backup_pb2.Backup, me: Membership, hostname: str,
                 now_ns: int) -> tuple[pb.Cluster, list[store_pb2.StoreAction]]:
    """The writes that make an empty Raft the swarm of `backup`, with this node (new to that
    swarm: `me` has a node ID of its own) its only manager. The old nodes are Down (the
    scheduler places nothing there) until they join again. Pure: the clock is passed in."""
    state = state_of(backup.store)
    for node in state.nodes:  # none of them knows this manager's address until it rejoins
        node.status.state, node.status.message = pb.NodeStatus.DOWN, NOT_REJOINED
    state.nodes.append(manager_node(me.node_id, hostname, me.raft_addr, me.advertise_addr, now_ns))
    return alone(state, me)


async def restore_alone(store: Store, state: SwarmState, me: Membership) -> pb.Cluster:
    """Write the old state into a fresh one-member Raft."""
    cluster, actions = alone(state, me)
    await write_chunks(store, actions)
    log.warning("force-new-cluster: kept %d services, %d tasks and %d networks; removed the lost managers %s",
                len(state.services), len(state.tasks), len(state.networks), _names(cluster))
    return cluster


async def restore_backup(store: Store, backup: backup_pb2.Backup, me: Membership, hostname: str) -> pb.Cluster:
    """Write a backup's state into a fresh one-member Raft, this node its manager."""
    cluster, actions = restore_plan(backup, me, hostname, time.time_ns())
    await write_chunks(store, actions)
    log.warning("restore: wrote the backup of cluster %s at Raft index %d (%d objects); removed the old "
                "managers %s", cluster.id, backup.raft_index, len(actions), _names(cluster))
    return cluster


def _names(cluster: pb.Cluster) -> str:
    return ", ".join(cluster.removed_nodes) or "(none)"
