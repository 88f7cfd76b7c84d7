"""The control API: what `covey node ...` and `covey swarm join-token` call."""
import time

from covey import pki
from covey.errors import FailedPrecondition, InvalidArgument, NO_LEADER, NotFound, Unavailable
from manager.state import membership
from manager.state import store as st
from manager.ca.server import cluster_of
from manager.controlapi.services import ServiceAPI
from proto import control_pb2
from proto import objects_pb2 as pb

CATCHING_UP = "this manager is still catching up with the swarm's state; try again in a moment"


def find_node(store: st.Store, ref: str) -> pb.Node:
    """A node by full ID, hostname, or unique ID prefix (as Docker resolves it)."""
    if not ref:
        raise InvalidArgument("a node ID or hostname is required")
    nodes = store.list("node")
    for node in nodes:
        if node.id == ref:
            return node
    by_name = [n for n in nodes if n.description.hostname == ref]
    if len(by_name) == 1:
        return by_name[0]
    by_prefix = [n for n in nodes if n.id.startswith(ref)]
    matches = by_name or by_prefix
    if not matches:
        raise NotFound(f"node {ref} not found")
    if len(matches) > 1:
        raise InvalidArgument(f"node {ref} is ambiguous ({len(matches)} matches): use a longer ID prefix")
    return matches[0]


def public_cluster(cluster: pb.Cluster) -> pb.Cluster:
    """The cluster without its secrets (CA key, Raft key, join tokens)."""
    shown = pb.Cluster()
    shown.CopyFrom(cluster)
    shown.root_ca.ClearField("ca_key_pem")
    shown.ClearField("raft_key")
    shown.ClearField("join_tokens")
    return shown


class ControlAPI(ServiceAPI):
    def __init__(self, store: st.Store, manager_status, api_addr: str, end_session, logs, leader_channel):
        self._store = store
        self._logs = logs
        self._leader_channel = leader_channel
        self._manager_status = manager_status  # node -> ManagerStatus or None
        self._api_addr = api_addr
        self._end_session = end_session

    @property
    def handlers(self) -> dict:
        """Each covey.Control method's handler (manager/ca/authz.py says who may call it)."""
        service = control_pb2.DESCRIPTOR.services_by_name["Control"]
        return {method.name: getattr(self, method.name) for method in service.methods}

    def _check_serving(self) -> pb.Cluster:
        if not self._store.has_quorum():
            raise Unavailable(NO_LEADER)
        if not self._store.ready():  # any answer now could be stale
            raise Unavailable(CATCHING_UP)
        return cluster_of(self._store)

    def _decorate(self, node: pb.Node) -> pb.Node:
        status = self._manager_status(node)
        if status is not None:
            node.manager_status.CopyFrom(status)
        return node

    async def GetCluster(self, request, context, caller):
        return control_pb2.GetClusterResponse(cluster=public_cluster(self._check_serving()))

    async def ListNodes(self, request, context, caller):
        self._check_serving()
        nodes = sorted(self._store.list("node"), key=lambda n: (n.description.hostname, n.id))
        return control_pb2.ListNodesResponse(nodes=[self._decorate(n) for n in nodes])

    async def GetNode(self, request, context, caller):
        self._check_serving()
        return control_pb2.GetNodeResponse(node=self._decorate(find_node(self._store, request.node)))

    async def UpdateNode(self, request, context, caller):
        self._check_serving()
        target = find_node(self._store, request.node)
        node_id = target.id
        if request.set_role and request.role == pb.WORKER and target.spec.desired_role == pb.MANAGER:
            membership.check_can_lose(self._store, target, "demote")
        for key in list(request.labels_add) + list(request.labels_remove):
            if not key or "=" in key:
                raise InvalidArgument(f"invalid label key {key!r}")

        def change(node):
            if request.set_availability:
                node.spec.availability = request.availability
            if request.set_role:
                node.spec.desired_role = request.role
            for key in request.labels_remove:
                if key not in node.spec.labels:
                    raise NotFound(f"label {key} does not exist on node {node.id}")
                del node.spec.labels[key]
            node.spec.labels.update(request.labels_add)

        node = await st.modify(self._store, "node", node_id, change, time.time_ns())
        return control_pb2.UpdateNodeResponse(node=self._decorate(node))

    async def RemoveNode(self, request, context, caller):
        self._check_serving()
        node = find_node(self._store, request.node)
        if node.role == pb.MANAGER or node.spec.desired_role == pb.MANAGER:
            raise FailedPrecondition(f"node {node.id} is a cluster manager and is a member of the "
                                     "raft cluster: it must be demoted to worker before removal")
        if node.status.state == pb.NodeStatus.READY and not request.force:
            raise FailedPrecondition(f"node {node.id} is not down and can't be removed: stop its "
                                     "coveyd first, or use --force")
        cluster = cluster_of(self._store)
        cluster.removed_nodes.append(node.id)
        cluster.meta.updated_at_ns = time.time_ns()
        # One batch: the node vanishes and its certificate is denied together.
        await self._store.write([st.delete("node", node), st.update("cluster", cluster)])
        self._end_session(node.id)
        return control_pb2.RemoveNodeResponse()

    async def JoinToken(self, request, context, caller):
        cluster = self._check_serving()
        if request.rotate:
            secret = pki.new_token_secret()
            token = pki.make_token(cluster.root_ca.ca_digest, secret)

            def change(c):
                if request.role == pb.MANAGER:
                    c.join_tokens.manager = token
                else:
                    c.join_tokens.worker = token
            cluster = await st.modify(self._store, "cluster", cluster.id, change, time.time_ns())
        tokens = cluster.join_tokens
        token = tokens.manager if request.role == pb.MANAGER else tokens.worker
        return control_pb2.JoinTokenResponse(token=token, manager_addr=self._api_addr)
