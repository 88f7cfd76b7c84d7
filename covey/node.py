"""One host's membership in a swarm: init, join, leave, and resuming after a restart.

This is the glue DESIGN.md puts in covey/: it composes the manager (when the
node's certificate says manager) and the agent (always), and serves the local
node API on the root-only unix socket.
"""
import asyncio
import ipaddress
import logging
import secrets
from pathlib import Path

import grpc

from covey import __version__, pki, tls
from covey.config import DEFAULT_API_PORT, Settings
from covey.errors import (FailedPrecondition, InvalidArgument, NOT_A_MANAGER, NOT_IN_SWARM,
                          Unavailable, from_rpc_error)
from covey.ids import new_id
from covey.nodestate import Membership, NodeState
from covey.rpc import unary
from covey.units import parse_duration
from manager.manager import Manager, ManagerConfig, bootstrap
from proto import covey_pb2 as pb
from proto import covey_pb2_grpc as rpc
from worker.agent import Agent, Credentials, describe_node

log = logging.getLogger(__name__)

ALREADY_IN_SWARM = ("this node is already part of a swarm: use \"covey swarm leave\" to leave "
                    "it and join another one")
LAST_MANAGER = ("you are attempting to leave the swarm on a node that is participating as a "
                "manager; removing the last manager erases all current state of the swarm: "
                "use --force to ignore this message")


def _parse_addr(text: str, default_port: int, what: str) -> tuple[str, int]:
    host, port = tls.split_addr(text.strip(), default_port)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: give an IP address, optionally with :PORT") from None
    if not 0 < port < 65536:
        raise InvalidArgument(f"invalid {what} {text!r}: port out of range")
    return host, port


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Node:
    def __init__(self, data_dir: Path, hostname: str, settings: Settings):
        self.state = NodeState(data_dir)
        self.hostname = hostname
        self.settings = settings
        self.membership: Membership | None = None
        self.manager: Manager | None = None
        self._cluster_server: grpc.aio.Server | None = None
        self._agent_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one membership change at a time

    # ------------------------------------------------------------ lifecycle

    async def resume(self) -> None:
        """After a restart: take back the role the certificate on disk gives."""
        membership = self.state.load()
        if membership is None:
            return
        self.membership = membership
        if self.state.identity().role == pb.MANAGER:
            await self._start_manager()
        self._start_agent()
        log.info("resumed as node %s of cluster %s", membership.node_id, membership.cluster_id)

    async def close(self) -> None:
        await self._stop_agent()
        await self._stop_manager()

    # ------------------------------------------------------------ swarm init

    async def init(self, request: pb.SwarmInitRequest) -> pb.SwarmInitResponse:
        async with self._lock:
            if self.membership:
                raise FailedPrecondition(ALREADY_IN_SWARM)
            if not request.advertise_addr:
                raise InvalidArgument("--advertise-addr is required: the address other nodes reach this one on")
            listen_host, listen_port = _parse_addr(request.listen_addr or f"0.0.0.0:{DEFAULT_API_PORT}",
                                                   DEFAULT_API_PORT, "listen address")
            adv_host, adv_port = _parse_addr(request.advertise_addr, listen_port, "advertise address")
            heartbeat = request.heartbeat_period_ns or parse_duration("5s")
            cluster_id, node_id = new_id(), new_id()
            ca_cert, ca_key = pki.create_root_ca(cluster_id)
            key = pki.new_key_pem()
            cert = pki.sign_node_cert(ca_cert, ca_key, pki.make_csr(key), node_id, pb.MANAGER, cluster_id)
            self.state.save_certs(ca_cert, key, cert)
            self.state.save_raft_key(secrets.token_bytes(32))
            api_addr = _join(adv_host, adv_port)
            membership = Membership(cluster_id=cluster_id, node_id=node_id, role=pb.MANAGER,
                                    listen_addr=_join(listen_host, listen_port), advertise_addr=api_addr,
                                    raft_addr=_join(adv_host, adv_port + 1), managers=[api_addr])
            try:
                await self._start_manager(membership)
                cluster = await bootstrap(self.manager, cluster_id, self.hostname, ca_cert, ca_key, heartbeat)
            except BaseException:
                await self._stop_manager()
                self.state.erase()
                raise
            self.state.save(membership)
            self.membership = membership
            self._start_agent()
            log.info("initialized swarm %s; this node %s is its manager", cluster_id, node_id)
            return pb.SwarmInitResponse(node_id=node_id, cluster_id=cluster_id,
                                        worker_token=cluster.join_tokens.worker, manager_addr=api_addr)

    # ------------------------------------------------------------ swarm join

    async def join(self, request: pb.SwarmJoinRequest) -> pb.SwarmJoinResponse:
        async with self._lock:
            if self.membership:
                raise FailedPrecondition(ALREADY_IN_SWARM)
            digest, _ = pki.parse_token(request.token)
            host, port = _parse_addr(request.remote_addr, DEFAULT_API_PORT, "manager address")
            remote = _join(host, port)
            timeout = self.settings.join_timeout
            ca_cert = await asyncio.to_thread(tls.fetch_unverified_ca, remote, timeout)
            if pki.ca_digest(ca_cert) != digest:
                # Pinning: nothing secret (the token) is sent to a CA the token does not name.
                raise InvalidArgument(f"{pki.INVALID_TOKEN}: the manager at {remote} has a different "
                                      "root CA than the token names")
            key = pki.new_key_pem()
            anon_key, anon_cert = tls.anonymous_identity()
            issue = pb.IssueNodeCertificateRequest(token=request.token.strip(), csr_pem=pki.make_csr(key),
                                                   hostname=self.hostname, advertise_addr=request.advertise_addr)
            async with tls.secure_channel(remote, ca_cert, anon_key, anon_cert) as channel:
                try:
                    response = await rpc.CAStub(channel).IssueNodeCertificate(issue, timeout=timeout)
                except grpc.RpcError as exc:
                    raise from_rpc_error(exc) from None
            identity = pki.cert_identity(response.cert_pem)
            if identity.node_id != response.node_id or not pki.verify_signed_by(response.cert_pem, ca_cert):
                raise Unavailable(f"the manager at {remote} returned a certificate that does not check out")
            self.state.save_certs(ca_cert, key, response.cert_pem)
            membership = Membership(cluster_id=identity.cluster_id, node_id=identity.node_id,
                                    role=identity.role, managers=list(response.managers) or [remote])
            self.state.save(membership)
            self.membership = membership
            self._start_agent()
            log.info("joined swarm %s as node %s", identity.cluster_id, identity.node_id)
            return pb.SwarmJoinResponse(node_id=identity.node_id, role=identity.role)

    # ------------------------------------------------------------ swarm leave

    async def leave(self, request: pb.SwarmLeaveRequest) -> None:
        async with self._lock:
            if not self.membership:
                raise FailedPrecondition(NOT_IN_SWARM)
            if self.manager is not None and not request.force:
                managers = [n for n in self.manager.store.list("node") if n.role == pb.MANAGER]
                if len(managers) <= 1:
                    raise FailedPrecondition(LAST_MANAGER)
                raise FailedPrecondition("this node is a manager: demote it first, or use --force")
            await self.close()
            self.state.erase()
            self.membership = None
            log.info("left the swarm")

    # ------------------------------------------------------------ parts

    async def _start_manager(self, membership: Membership | None = None) -> None:
        membership = membership or self.membership
        listen_host, _ = tls.split_addr(membership.listen_addr, DEFAULT_API_PORT)
        _, raft_port = tls.split_addr(membership.raft_addr, DEFAULT_API_PORT + 1)
        config = ManagerConfig(node_id=membership.node_id, raft_dir=self.state.raft_dir,
                               raft_addr=membership.raft_addr, raft_bind=_join(listen_host, raft_port),
                               api_addr=membership.advertise_addr, raft_key=self.state.raft_key(),
                               timings=self.settings.raft,
                               ready_timeout=self.settings.manager_ready_timeout)
        self.manager = await Manager.open(config)
        server = grpc.aio.server(options=tls.SERVER_OPTIONS)
        self.manager.add_to_server(server)
        creds = tls.server_credentials(self.state.key(), self.state.cert(), self.state.ca_cert())
        try:
            server.add_secure_port(membership.listen_addr, creds)
        except RuntimeError:
            await self._stop_manager()
            raise Unavailable(f"cannot listen on {membership.listen_addr}: the address is in use or not local") from None
        await server.start()
        self._cluster_server = server

    async def _stop_manager(self) -> None:
        if self._cluster_server is not None:
            await self._cluster_server.stop(self.settings.shutdown_timeout)
            self._cluster_server = None
        if self.manager is not None:
            await self.manager.close()
            self.manager = None

    def _start_agent(self) -> None:
        credentials = Credentials(self.state.ca_cert(), self.state.key(), self.state.cert())
        agent = Agent(describe_node(self.hostname, __version__), credentials,
                      self.membership.managers, _agent_channel, self.settings.agent,
                      on_managers=self._remember_managers)
        self._agent_task = asyncio.create_task(agent.run(), name="agent")

    async def _stop_agent(self) -> None:
        if self._agent_task is not None:
            self._agent_task.cancel()
            await asyncio.gather(self._agent_task, return_exceptions=True)
            self._agent_task = None

    def _remember_managers(self, managers: list[str]) -> None:
        if self.membership:
            self.membership.managers = managers
            self.state.save(self.membership)

    def info(self) -> pb.InfoResponse:
        m = self.membership
        return pb.InfoResponse(node_id=m.node_id if m else "", cluster_id=m.cluster_id if m else "",
                               role=self.state.identity().role if m else pb.WORKER,
                               hostname=self.hostname, managers=m.managers if m else [],
                               engine_version=__version__)


def _agent_channel(addr: str, credentials: Credentials) -> grpc.aio.Channel:
    return tls.secure_channel(addr, credentials.ca_cert, credentials.key, credentials.cert)


# ---------------------------------------------------------------- local socket services

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

