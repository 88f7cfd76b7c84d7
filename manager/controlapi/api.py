"""The control API (covey.Control): what `covey node / service / swarm join-token / backup` call.

One module per object kind holds the handlers; this one composes them into the service
and puts the check every call needs in front of each: a quorum, and a read barrier (the
leader's read index, manager/state/raft/readindex.py), so that every call, read or write,
sees every write acknowledged before it began, on any manager, or fails saying why.
Who may call is not decided here: manager/ca/authz.py wraps these handlers when they are
served on TCP, and the root-only unix socket calls them as the node itself.
"""
from collections.abc import Callable

import grpc

from covey.errors import NO_LEADER, NOT_APPLIED, Unavailable
from manager.ca import authz
from manager.controlapi.backup import BackupAPI
from manager.controlapi.cluster import ClusterAPI
from manager.controlapi.networks import NetworkAPI
from manager.controlapi.nodes import NodeAPI
from manager.controlapi.secrets import SecretAPI
from manager.controlapi.services import ServiceAPI
from manager.controlapi.stacks import StackAPI
from manager.controlapi.tasks import TaskAPI
from manager.dispatcher.logbroker import LogBroker
from manager.state import store as st
from proto import objects_pb2 as pb

CATCHING_UP = "this manager is still catching up with the swarm's state; try again in a moment"


class Control:
    def __init__(self, store: st.Store, manager_status: Callable[[pb.Node], pb.ManagerStatus | None],
                 api_addr: str, end_session: Callable[[str], None], logs: LogBroker,
                 leader_channel: Callable[[], grpc.aio.Channel | None], insecure_registries: tuple[str, ...] = ()):
        self._store = store
        cluster = ClusterAPI(store, api_addr)
        nodes = NodeAPI(store, manager_status, end_session)
        services = ServiceAPI(store, logs, leader_channel)
        tasks = TaskAPI(store)
        networks = NetworkAPI(store)
        unary = {"GetCluster": cluster.get, "JoinToken": cluster.join_token,
                 "UpdateCluster": cluster.update, "UnlockKey": cluster.unlock_key,
                 "RotateRootCA": cluster.rotate_root_ca,
                 "ListNodes": nodes.list, "GetNode": nodes.get, "UpdateNode": nodes.update,
                 "RemoveNode": nodes.remove,
                 "CreateService": services.create, "ListServices": services.list,
                 "GetService": services.get, "ScaleService": services.scale,
                 "UpdateService": services.update, "RemoveService": services.remove,
                 "ListTasks": tasks.list,
                 "CreateNetwork": networks.create, "ListNetworks": networks.list,
                 "GetNetwork": networks.get, "RemoveNetwork": networks.remove,
                 "PruneNetworks": networks.prune,
                 **StackAPI(store, insecure_registries).handlers(), **SecretAPI(store).handlers()}
        # Method name -> authz.Handler, for authz.serve and the unix socket.
        self.handlers: dict[str, authz.Handler] = {name: self._unary(fn) for name, fn in unary.items()}
        self.handlers["ServiceLogs"] = self._streaming(services.logs)
        self.handlers["Backup"] = self._streaming(BackupAPI(store).backup)

    async def _check_serving(self) -> None:
        if (why := self._store.disk_error()) is not None:    # it cannot apply, so it cannot read
            raise Unavailable(f"this manager cannot write its Raft journal ({why}): it answers nothing until "
                              f"space returns; ask another manager; the request was {NOT_APPLIED}")
        if not self._store.has_quorum():
            raise Unavailable(f"{NO_LEADER}; the request was {NOT_APPLIED}")
        if not self._store.ready():  # still loading the state: not worth a round trip
            raise Unavailable(CATCHING_UP)
        await self._store.read_barrier()

    def _unary(self, fn) -> authz.Handler:
        async def handler(request, context, caller: authz.Caller | None):
            await self._check_serving()
            return await fn(request)
        return handler

    def _streaming(self, fn) -> authz.Handler:
        async def handler(request, context, caller: authz.Caller | None):
            await self._check_serving()
            async for message in fn(request, context):
                yield message
        return handler
