"""The services on the root-only unix socket: the node's own lifecycle, the control
API of this node's manager (if it is one), and the node's own containers."""
import asyncio
import json

from covey.errors import NOT_A_MANAGER, NOT_IN_SWARM, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from covey.rpc import stream, unary
from coveyd import autolock
from coveyd.node import Node
from manager.ca import authz
from proto import control_pb2, control_pb2_grpc, local_pb2, local_pb2_grpc
from worker.executor import ExecOptions, ExecutorError, VolumeInUse, VolumeNotFound
from worker.network import AttachedContainer, NetworkError, NetworkSnapshot
from worker.tasks import TASK_NAME_LABEL


class LocalNodeAPI(local_pb2_grpc.LocalNodeServicer):
    def __init__(self, node: Node):
        self._node = node

    @unary
    async def SwarmInit(self, request, context):
        return await self._node.init(request)

    @unary
    async def SwarmJoin(self, request, context):
        return await self._node.join(request)

    @unary
    async def SwarmUnlock(self, request, context):
        await self._node.unlock(request)
        return local_pb2.SwarmUnlockResponse()

    @unary
    async def SwarmLeave(self, request, context):
        await self._node.leave(request)
        return local_pb2.SwarmLeaveResponse()

    @unary
    async def Info(self, request, context):
        return self._node.info()

    @unary
    async def SwarmRestore(self, request_iterator, context):
        first, data = None, bytearray()
        async for chunk in request_iterator:   # the first chunk also carries the passphrase and addresses
            first = first or chunk
            data += chunk.data
        if first is None:
            raise InvalidArgument("a restore needs a backup file: none was sent")
        return await self._node.restore(first, bytes(data))


def _delegate(name: str, streaming: bool):
    def manager_of(node: Node):
        if node.membership is None:
            raise FailedPrecondition(NOT_IN_SWARM)
        if node.locked:
            raise FailedPrecondition(autolock.LOCKED)
        if node.manager is None:
            raise PermissionDenied(f"{NOT_A_MANAGER}: worker nodes can't be used to view or modify "
                                   "cluster state; run this command on a manager node")
        return node.manager

    # The socket is root-only: its caller is the node itself, trusted (authz.LOCAL).
    @unary
    async def call(self, request, context):
        return await manager_of(self._node).control.handlers[name](request, context, authz.LOCAL)

    @stream
    async def call_streaming(self, request, context):
        async for message in manager_of(self._node).control.handlers[name](request, context, authz.LOCAL):
            yield message
    chosen = call_streaming if streaming else call
    chosen.__name__ = name
    return chosen


class LocalControl(control_pb2_grpc.ControlServicer):
    """The control API on the unix socket: this node's manager, if it is one."""

    def __init__(self, node: Node):
        self._node = node


for _name, _method in control_pb2.DESCRIPTOR.services_by_name["Control"].methods_by_name.items():
    setattr(LocalControl, _name, _delegate(_name, _method.server_streaming))


class LocalContainers(local_pb2_grpc.LocalContainersServicer):
    """`covey container ls / inspect / logs`: what the executor on this node holds."""

    def __init__(self, executor):
        self._executor = executor

    async def _resolve(self, ref: str) -> str:
        """The executor's name of the container `ref` names: a name or ID, the name `ls` shows
        (<service>.<slot>.<task id>), or a unique prefix of any of them (e.g. "web.1")."""
        if not ref:
            raise InvalidArgument("a container name or ID is required")
        names = self._executor.names()
        ids = {self._executor.cid(n): n for n in names}
        if ref in names or ref in ids:
            return ids.get(ref, ref)
        if ref.rpartition(".")[2] in names:     # the name `ls` shows: <service>.<slot>.<task id>
            return ref.rpartition(".")[2]
        matches = {n for n in names if n.startswith(ref)} | {n for i, n in ids.items() if i.startswith(ref)}
        if not matches:     # a prefix of a name as `ls` shows it: that needs each one's labels
            matches = {i.name for i in await self._executor.list(all=True) if _summary(i).name.startswith(ref)}
        if not matches:
            raise NotFound(f"no such container: {ref}")
        if len(matches) > 1:
            raise InvalidArgument(f"container {ref} is ambiguous ({len(matches)} matches)")
        return matches.pop()

    @unary
    async def List(self, request, context):
        infos = await self._executor.list(all=request.all)
        return local_pb2.ListContainersResponse(containers=[_summary(i) for i in infos])

    @unary
    async def Inspect(self, request, context):
        info = await self._executor.inspect(await self._resolve(request.container))
        return local_pb2.InspectContainerResponse(json=json.dumps(info.to_dict(), indent=2, default=str))

    @stream
    async def Logs(self, request, context):
        name = await self._resolve(request.container)
        tail = request.tail if request.tail >= 0 else None
        async for entry in self._executor.logs(name, follow=request.follow, tail=tail, since=request.since):
            yield local_pb2.LogLine(time=entry.time, stream=entry.stream, line=entry.line)


    @stream
    async def Exec(self, requests, context):
        """`covey container exec`: stdin in, output out while it runs, then the exit code."""
        inputs = aiter(requests)
        first = await anext(inputs, None)
        if first is None or first.WhichOneof("part") != "start":
            raise InvalidArgument("an exec begins with what to start (ExecStart)")
        opts = _exec_options(first.start)
        try:
            session = await self._executor.exec(await self._resolve(first.start.container), opts)
        except ExecutorError as exc:
            raise FailedPrecondition(str(exc)) from None
        feeding = asyncio.ensure_future(_feed(inputs, session))
        try:
            async for stream_name, data in session.output():
                yield local_pb2.ExecOutput(**{stream_name: data})
            yield local_pb2.ExecOutput(exit_code=await session.wait())
        finally:    # also when the caller went away: the process goes too
            feeding.cancel()
            await asyncio.gather(feeding, return_exceptions=True)
            await session.close()


def _exec_options(start: local_pb2.ExecStart) -> ExecOptions:
    if not start.command:
        raise InvalidArgument("exec needs a command to run in the container")
    bad = [item for item in start.env if not item or item.startswith("=")]
    if bad:
        raise InvalidArgument(f"invalid environment variable {bad[0]!r}: use KEY=VALUE")
    return ExecOptions(argv=list(start.command), env=list(start.env), user=start.user, workdir=start.workdir,
                       stdin=start.stdin, tty=start.tty, rows=start.size.rows, cols=start.size.cols)


async def _feed(inputs, session) -> None:
    """The caller's stdin chunks and terminal sizes into the process; its end is stdin's."""
    async for message in inputs:
        part = message.WhichOneof("part")
        if part == "stdin":
            await session.feed(message.stdin)
        elif part == "resize":
            session.resize(message.resize.rows, message.resize.cols)
    await session.close_stdin()


def _summary(info) -> local_pb2.ContainerSummary:
    cfg = info.config
    return local_pb2.ContainerSummary(
        name=cfg.labels.get(TASK_NAME_LABEL, info.name) if cfg else info.name, id=info.id, image=info.image,
        status=info.status,
        created_at=info.created_at, started_at=info.started_at, finished_at=info.finished_at,
        exited=info.exit_code is not None, exit_code=info.exit_code or 0, oom_killed=info.oom_killed,
        health=(info.health or {}).get("status", ""), command=info.command)


class LocalVolumes(local_pb2_grpc.LocalVolumesServicer):
    """`covey volume create / ls / inspect / rm / prune`: the executor's named volumes."""

    def __init__(self, executor):
        self._executor = executor

    def _volumes(self):
        volumes = getattr(self._executor, "volumes", None)
        if volumes is None:
            raise FailedPrecondition("this node's executor keeps no volumes (a simulated one)")
        return volumes

    def _view(self, name: str, users: dict[str, list[str]]) -> local_pb2.LocalVolume:
        try:
            info = self._volumes().inspect(name)
        except VolumeNotFound as exc:
            raise NotFound(str(exc)) from None
        except ExecutorError as exc:
            raise InvalidArgument(str(exc)) from None
        return local_pb2.LocalVolume(name=info.name, driver=info.driver, mountpoint=str(info.mountpoint),
                                     labels=info.labels, created_at=info.created_at, used_by=users.get(name, []))

    @unary
    async def Create(self, request, context):
        try:
            info = self._volumes().create(request.name, dict(request.labels))
        except ExecutorError as exc:
            raise InvalidArgument(str(exc)) from None
        return local_pb2.CreateVolumeResponse(volume=self._view(info.name, self._executor.volume_users()))

    @unary
    async def List(self, request, context):
        users = self._executor.volume_users()
        return local_pb2.ListVolumesResponse(volumes=[self._view(n, users) for n in self._volumes().list()])

    @unary
    async def Inspect(self, request, context):
        return local_pb2.InspectVolumeResponse(volume=self._view(request.name, self._executor.volume_users()))

    @unary
    async def Remove(self, request, context):
        self._view(request.name, {})  # NotFound, or a bad name, first
        try:
            await asyncio.to_thread(self._executor.remove_volume, request.name)
        except VolumeInUse as exc:
            raise FailedPrecondition(str(exc)) from None
        return local_pb2.RemoveVolumeResponse()

    @unary
    async def Prune(self, request, context):
        self._volumes()
        removed, freed = await asyncio.to_thread(self._executor.prune_volumes)
        return local_pb2.PruneVolumesResponse(removed=removed, reclaimed_bytes=freed)


class LocalNetworks(local_pb2_grpc.LocalNetworksServicer):
    """`covey network inspect` on a node: the node's own part of a network, as its glue holds it."""

    def __init__(self, node: Node, executor):
        self._node, self._executor = node, executor

    @unary
    async def Inspect(self, request, context):
        networks = self._node.tasks.networks if self._node.tasks is not None else None
        if self._node.membership is None or networks is None:
            raise FailedPrecondition(NOT_IN_SWARM)
        if not request.network:
            raise InvalidArgument("a network name or ID is required")
        try:
            found = networks.find(request.network)
        except NetworkError as exc:
            raise InvalidArgument(str(exc)) from None
        snapshot = await networks.snapshot(found.id) if found is not None else None
        if snapshot is None:
            raise NotFound(f"network {request.network} not found on this node (no task of it here)")
        return local_pb2.InspectLocalNetworkResponse(network=self._local_network(snapshot))

    def _local_network(self, snap: NetworkSnapshot) -> local_pb2.LocalNetwork:
        names = set(self._executor.names())
        out = local_pb2.LocalNetwork(network=snap.network, sandbox=snap.sandbox)
        if snap.ingress is not None:
            out.ingress_endpoint.CopyFrom(_container(snap.ingress, ""))
        for c in snap.containers:
            cid = self._executor.cid(c.task_id) if c.task_id in names else ""
            out.containers.append(_container(c, cid))
        for p in snap.peers:
            out.peers.add(name=p.name, address=p.addr, mac=p.mac, host=p.host)
        for port in snap.ports:
            out.ports.add(protocol=port.protocol, published=port.published, target=port.target, mode=port.mode,
                          backends=port.backends)
        if snap.driver is not None:
            out.programmed = snap.driver.programmed
            out.programmed_peers.update(snap.driver.peers or {})
        return out


def _container(c: AttachedContainer, container_id: str) -> local_pb2.NetworkContainer:
    return local_pb2.NetworkContainer(task_id=c.task_id, name=c.name, container_id=container_id,
                                      interface=c.interface, address=c.addr, mac=c.mac)


def add_local_services(server, node: Node, executor) -> None:
    local_pb2_grpc.add_LocalNodeServicer_to_server(LocalNodeAPI(node), server)
    control_pb2_grpc.add_ControlServicer_to_server(LocalControl(node), server)
    local_pb2_grpc.add_LocalContainersServicer_to_server(LocalContainers(executor), server)
    local_pb2_grpc.add_LocalVolumesServicer_to_server(LocalVolumes(executor), server)
    local_pb2_grpc.add_LocalNetworksServicer_to_server(LocalNetworks(node, executor), server)

