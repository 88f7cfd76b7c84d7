"""The services on the root-only unix socket: the node's own lifecycle, and the
control API of this node's manager (if it is one)."""
import grpc

from covey.errors import NOT_A_MANAGER, NOT_IN_SWARM
from covey.node import Node
from covey.rpc import unary
from proto import covey_pb2 as pb
from proto import covey_pb2_grpc as rpc


class LocalNodeAPI(rpc.LocalNodeServicer):
    def __init__(self, node: Node):
        self._node = node

    @unary
    async def SwarmInit(self, request, context):
        return await self._node.init(request)

    @unary
    async def SwarmJoin(self, request, context):
        return await self._node.join(request)

    @unary
    async def SwarmLeave(self, request, context):
        await self._node.leave(request)
        return pb.SwarmLeaveResponse()

    @unary
    async def Info(self, request, context):
        return self._node.info()


def _delegate(name: str):
    async def call(self, request, context):
        node = self._node
        if node.membership is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NOT_IN_SWARM)
        if node.manager is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"{NOT_A_MANAGER}: worker nodes can't be used to view or modify "
                                "cluster state; run this command on a manager node")
        return await getattr(node.manager.control, name)(request, context)
    call.__name__ = name
    return call


class LocalControl(rpc.ControlServicer):
    """The control API on the unix socket: this node's manager, if it is one."""

    def __init__(self, node: Node):
        self._node = node


for _name in pb.DESCRIPTOR.services_by_name["Control"].methods_by_name:
    setattr(LocalControl, _name, _delegate(_name))


def add_local_services(server, node: Node) -> None:
    rpc.add_LocalNodeServicer_to_server(LocalNodeAPI(node), server)
    rpc.add_ControlServicer_to_server(LocalControl(node), server)

