"""The control API for nodes: what `covey node ls / inspect / update / rm` call."""
import time
from collections.abc import Callable

from covey.errors import FailedPrecondition, InvalidArgument, NotFound
from manager.state import membership
from manager.state import store as st
from manager.state.actions import delete, modify, update
from manager.state.queries import cluster_of, find_node
from proto import control_pb2
from proto import objects_pb2 as pb


class NodeAPI:
    def __init__(self, store: st.Store, manager_status: Callable[[pb.Node], pb.ManagerStatus | None],
                 end_session: Callable[[str], None]):
        self._store = store
        self._manager_status = manager_status  # a manager's status as this manager sees it now
        self._end_session = end_session        # node ID: its dispatcher session ends

    def _decorate(self, node: pb.Node) -> pb.Node:
        status = self._manager_status(node)
        if status is not None:
            node.manager_status.CopyFrom(status)
        return node

    async def list(self, request: control_pb2.ListNodesRequest) -> control_pb2.ListNodesResponse:
        nodes = sorted(self._store.nodes.list(), key=lambda n: (n.description.hostname, n.id))
        return control_pb2.ListNodesResponse(nodes=[self._decorate(n) for n in nodes])

    async def get(self, request: control_pb2.GetNodeRequest) -> control_pb2.GetNodeResponse:
        return control_pb2.GetNodeResponse(node=self._decorate(find_node(self._store, request.node)))

    async def update(self, request: control_pb2.UpdateNodeRequest) -> control_pb2.UpdateNodeResponse:
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

        node = await modify(self._store, pb.Node, node_id, change, time.time_ns())
        return control_pb2.UpdateNodeResponse(node=self._decorate(node))

    async def remove(self, request: control_pb2.RemoveNodeRequest) -> control_pb2.RemoveNodeResponse:
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
        await self._store.write([delete(node), update(cluster)])
        self._end_session(node.id)
        return control_pb2.RemoveNodeResponse()
