"""Recovery of a swarm that lost its managers' quorum (`swarm init --force-new-cluster`):
a surviving manager becomes a one-manager swarm with all the state its replica holds."""
import logging
from dataclasses import dataclass

from coveyd.nodestate import Membership
from manager.state.actions import create, write_chunks
from manager.state.formats import StoreObject
from manager.state.store import Store
from proto import objects_pb2 as pb
from proto import store_pb2

log = logging.getLogger(__name__)


@dataclass
class SwarmState:
    """Copies of every object of a replica, read before its Raft log is set aside."""
    cluster: pb.Cluster
    nodes: list[pb.Node]
    services: list[pb.Service]
    tasks: list[pb.Task]


def read_state(store: Store) -> SwarmState:
    return SwarmState(store.clusters.list()[0], store.nodes.list(), store.services.list(), store.tasks.list())


def alone(state: SwarmState, me: Membership) -> tuple[pb.Cluster, list[store_pb2.StoreAction]]:
    """The writes that rebuild `state` with this manager the only one: the other managers are
    left out and denied from now on; their tasks stay, for the orchestrator to replace."""
    cluster = pb.Cluster()
    cluster.CopyFrom(state.cluster)
    lost = [n.id for n in state.nodes if n.role == pb.MANAGER and n.id != me.node_id]
    cluster.removed_nodes.extend(lost)
    nodes = [n for n in state.nodes if n.id not in lost]
    for node in nodes:
        if node.id == me.node_id:
            node.manager_status.CopyFrom(pb.ManagerStatus(raft_addr=me.raft_addr, api_addr=me.advertise_addr))
    objects: list[StoreObject] = [cluster, *nodes, *state.services, *state.tasks]
    return cluster, [create(obj) for obj in objects]


async def restore_alone(store: Store, state: SwarmState, me: Membership) -> pb.Cluster:
    """Write the old state into a fresh one-member Raft."""
    cluster, actions = alone(state, me)
    await write_chunks(store, actions)
    log.warning("force-new-cluster: kept %d services and %d tasks; removed the lost managers %s",
                len(state.services), len(state.tasks), ", ".join(cluster.removed_nodes) or "(none)")
    return cluster
