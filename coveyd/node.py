"""One host's membership in a swarm: init, join, leave, role changes, restarts.

This is the glue that lives in coveyd/: it composes the manager (when the
node's certificate says manager) and the agent (always).
"""
import asyncio
import datetime
import logging
import random
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from covey import __version__, addr, backupfile, pki, tls
from covey.errors import NOT_IN_SWARM, FailedPrecondition, InvalidArgument, Unavailable, from_rpc_error
from covey.ids import new_id
from covey.units import parse_duration
from coveyd import autolock, recovery
from coveyd.nodestate import Membership, NodeState
from coveyd.settings import DEFAULT_HEARTBEAT, Settings
from manager.allocator import ipam
from manager.manager import Manager, ManagerConfig, bootstrap
from manager.state import membership as mship
from overlay.dns import Resolver
from overlay.driver import Overlay
from proto import ca_pb2, ca_pb2_grpc, local_pb2
from proto import objects_pb2 as pb
from worker.agent import Agent, Credentials, describe_node
from worker.network import TaskNetworks
from worker.tasks import Reporter, TaskManager

log = logging.getLogger(__name__)

ALREADY_IN_SWARM = ("this node is already part of a swarm: use \"covey swarm leave\" to leave "
                    "it and join another one")
AUTOLOCK_POLL = 0.5  # seconds: how often a manager catching up looks again at the unlock key
RESTORE_IN_SWARM = ("this node is already part of a swarm: a backup is restored on a node that is in "
                    "none (\"covey swarm leave\" first, or restore on another host); nothing was changed")
LAST_MANAGER = ("you are attempting to leave the swarm on a node that is participating as a "
                "manager; removing the last manager erases all current state of the swarm: "
                "use --force to ignore this message")


def _local_ip_towards(host: str, port: int) -> str:
    """The local address this host uses to reach `host` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return probe.getsockname()[0]


@dataclass(frozen=True)
class NetworkSetup:
    """How this node programs overlay networks (coveyd --net-prefix, --dns-upstream)."""
    prefix: str                # of every namespace, link and nft table the overlay makes
    dns_upstreams: list[str]   # where the embedded DNS sends names it does not know
    run_dir: Path


class Node:
    def __init__(self, data_dir: Path, hostname: str, settings: Settings, executor=None,
                 network: NetworkSetup | None = None, insecure_registries: tuple[str, ...] = ()):
        self.state = NodeState(data_dir)
        self._insecure_registries = insecure_registries  # for the manager (stack deploy --resolve-image)
        self._network = network
        self.hostname = hostname
        self.settings = settings
        # The node's tasks outlive its sessions (a reconnect keeps them running).
        self.tasks = TaskManager(executor, Reporter()) if executor is not None else None
        self.membership: Membership | None = None
        self.manager: Manager | None = None
        self._cluster_server: grpc.aio.Server | None = None
        self.agent: Agent | None = None   # this node's session with the leader
        self._agent_task: asyncio.Task | None = None
        self._peers_task: asyncio.Task | None = None
        self._autolock_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()  # one membership change at a time
        self.locked = False  # autolock: a restarted manager waits for `swarm unlock`

    @property
    def _member(self) -> Membership:
        """This node's membership, for the paths that only run inside a swarm."""
        if self.membership is None:
            raise FailedPrecondition(NOT_IN_SWARM)
        return self.membership

    # ------------------------------------------------------------ lifecycle

    async def resume(self) -> None:
        """After a restart: take back the role the certificate on disk gives."""
        membership = self.state.load()
        if membership is None:
            return
        self.membership = membership
        if self.state.identity().role == pb.MANAGER:
            if self.state.locked():
                self.locked = True  # serves nothing but `swarm unlock` until then
                log.warning("this manager is locked (autolock): run covey swarm unlock")
                return
            await self._start_manager(membership)
        self._start_agent()
        log.info("resumed as node %s of cluster %s", membership.node_id, membership.cluster_id)

    async def unlock(self, request: local_pb2.SwarmUnlockRequest) -> None:
        """Open a locked manager's keys with the unlock key, then start as after any restart."""
        async with self._lock:
            if not self.locked:
                raise FailedPrecondition("this node is not locked")
            self.state.unlock(pki.parse_unlock_key(request.unlock_key))  # a wrong key changes nothing
            self.locked = False
            await self._start_manager(self._member)
            self._start_agent()
            log.info("unlocked: resumed as manager %s", self._member.node_id)

    async def close(self) -> None:
        await self._stop_agent()
        if self.tasks is not None:
            await self.tasks.close()
        await self._stop_manager()

    # ------------------------------------------------------------ swarm init

    async def init(self, request: local_pb2.SwarmInitRequest) -> local_pb2.SwarmInitResponse:
        async with self._lock:
            if request.force_new_cluster:
                return await self._force_new_cluster()
            if self.membership:
                raise FailedPrecondition(ALREADY_IN_SWARM)
            if not request.advertise_addr:
                raise InvalidArgument("--advertise-addr is required: the address other nodes reach this one on")
            listen_host, listen_port = addr.parse_ip_port(request.listen_addr or f"0.0.0.0:{addr.API_PORT}",
                                                   addr.API_PORT, "listen address")
            adv_host, adv_port = addr.parse_ip_port(request.advertise_addr, listen_port, "advertise address")
            heartbeat = request.heartbeat_period_ns or parse_duration(DEFAULT_HEARTBEAT)
            cert_expiry = request.cert_expiry_ns or int(pki.NODE_CERT_LIFETIME.total_seconds() * 1e9)
            if cert_expiry < parse_duration("10s"):
                raise InvalidArgument("--cert-expiry must be at least 10s")
            network_defaults = pb.NetworkDefaults(addr_pools=request.default_addr_pools,
                                                  subnet_size=request.default_addr_pool_mask_length,
                                                  data_path_port=request.data_path_port)
            ipam.validate_defaults(network_defaults)
            cluster_id, node_id = new_id(), new_id()
            ca_cert, ca_key = pki.create_root_ca(cluster_id)
            key = pki.new_key_pem()
            cert = pki.sign_node_cert(ca_cert, ca_key, pki.make_csr(key), node_id, pb.MANAGER, cluster_id,
                                      datetime.timedelta(microseconds=cert_expiry // 1000))
            self.state.save_certs(ca_cert, key, cert)
            self.state.save_raft_key(secrets.token_bytes(32))
            api_addr = addr.join(adv_host, adv_port)
            membership = Membership(cluster_id=cluster_id, node_id=node_id, role=pb.MANAGER,
                                    listen_addr=addr.join(listen_host, listen_port), advertise_addr=api_addr,
                                    raft_addr=addr.raft_addr(api_addr), managers=[api_addr])
            try:
                manager = await self._start_manager(membership)
                cluster = await bootstrap(manager, cluster_id, self.hostname, ca_cert, ca_key,
                                          heartbeat, cert_expiry, network_defaults, request.autolock)
            except BaseException:
                await self._stop_manager()
                self.state.erase()
                raise
            self.state.save(membership)
            self.membership = membership
            self._start_agent()
            log.info("initialized swarm %s; this node %s is its manager", cluster_id, node_id)
            unlock_key = pki.format_unlock_key(cluster.unlock_key) if request.autolock else ""
            return local_pb2.SwarmInitResponse(node_id=node_id, cluster_id=cluster_id,
                                        worker_token=cluster.join_tokens.worker, manager_addr=api_addr,
                                        unlock_key=unlock_key)

    async def _force_new_cluster(self) -> local_pb2.SwarmInitResponse:
        """A surviving manager becomes a one-manager swarm with all the state it has.

        The lost managers leave Raft and their certificates are denied; the workers
        keep their certificates and find this manager in their list.
        """
        if self.manager is None:
            raise FailedPrecondition("--force-new-cluster needs a manager of an existing swarm: "
                                     "this node is not one")
        store = self.manager.store
        await _wait(lambda: store.caught_up() and store.clusters.list(), self.settings.manager_ready_timeout,
                    "the Raft log to be applied")
        state, me = recovery.read_state(store), self._member
        await self._stop_manager()
        old = self.state.raft_dir.with_name(f"raft.before-force-new-cluster.{int(time.time())}")
        self.state.raft_dir.rename(old)
        me.raft_peers = []
        manager = await self._start_manager(me)
        try:
            await manager.store.wait_ready(self.settings.manager_ready_timeout)
            cluster = await recovery.restore_alone(manager.store, state, me)
        except BaseException:
            await self._stop_manager()
            shutil.rmtree(self.state.raft_dir, ignore_errors=True)
            old.rename(self.state.raft_dir)
            raise
        shutil.rmtree(old, ignore_errors=True)
        me.managers = [me.advertise_addr]
        self.state.save(me)
        log.warning("forced a new cluster: this manager is now the only one")
        return local_pb2.SwarmInitResponse(node_id=me.node_id, cluster_id=me.cluster_id,
                                    worker_token=cluster.join_tokens.worker, manager_addr=me.advertise_addr)

    # ------------------------------------------------------------ swarm restore

    async def restore(self, request: local_pb2.SwarmRestoreRequest, data: bytes) -> local_pb2.SwarmRestoreResponse:
        """This node, in no swarm, becomes the one manager of the swarm in a backup file, with
        a new node ID and a manager certificate of the backup's CA (its join tokens stay valid).
        Nothing is written until the file is open; a failure after that leaves no swarm here."""
        async with self._lock:
            if self.membership:
                raise FailedPrecondition(RESTORE_IN_SWARM)
            listen_addr, advertise_addr = _manager_addrs(request.listen_addr, request.advertise_addr)
            # scrypt takes ~0.3 s and decoding a large backup longer: not on the event loop
            backup = await asyncio.to_thread(backupfile.read, data, request.passphrase, "the backup file")
            cluster = backup.store.clusters[0]
            membership = Membership(cluster_id=cluster.id, node_id=new_id(), role=pb.MANAGER,
                                    listen_addr=listen_addr, advertise_addr=advertise_addr,
                                    raft_addr=addr.raft_addr(advertise_addr), managers=[advertise_addr])
            key, cert = _manager_cert(cluster, membership.node_id)
            try:
                self.state.save_certs(cluster.root_ca.ca_cert_pem, key, cert)
                self.state.save_raft_key(cluster.raft_key)
                manager = await self._start_manager(membership)
                await manager.store.wait_ready(self.settings.manager_ready_timeout)
                restored = await recovery.restore_backup(manager.store, backup, membership, self.hostname)
            except BaseException:
                await self._stop_manager()
                self.state.erase()
                raise
            self.state.save(membership)
            self.membership = membership
            self._start_agent()
            removed = restored.removed_nodes[len(cluster.removed_nodes):]
            log.warning("restored swarm %s from a backup at Raft index %d; this node %s is its only manager",
                        cluster.id, backup.raft_index, membership.node_id)
            return local_pb2.SwarmRestoreResponse(node_id=membership.node_id, cluster_id=cluster.id,
                                                  manager_addr=advertise_addr,
                                                  restored=backupfile.summary_of(backup, len(data)),
                                                  removed_managers=removed)

    # ------------------------------------------------------------ swarm join

    async def join(self, request: local_pb2.SwarmJoinRequest) -> local_pb2.SwarmJoinResponse:
        async with self._lock:
            if self.membership and not request.token.strip():
                return await self._rejoin(self.membership, request.remote_addr)
            if self.membership:
                raise FailedPrecondition(ALREADY_IN_SWARM)
            if not request.token.strip():
                raise InvalidArgument("a join token is required (--token): 'covey swarm join-token worker' "
                                      "on a manager prints it")
            digest, _ = pki.parse_token(request.token)
            host, port = addr.parse_ip_port(request.remote_addr, addr.API_PORT, "manager address")
            remote = addr.join(host, port)
            listen_host, listen_port = addr.parse_ip_port(request.listen_addr or f"0.0.0.0:{addr.API_PORT}",
                                                   addr.API_PORT, "listen address")
            adv_host, adv_port = addr.parse_ip_port(request.advertise_addr or _local_ip_towards(host, port),
                                             listen_port, "advertise address")
            timeout = self.settings.join_timeout
            ca_cert = await asyncio.to_thread(tls.fetch_unverified_ca, remote, timeout)
            if pki.ca_digest(ca_cert) != digest:
                # Pinning: nothing secret (the token) is sent to a CA the token does not name.
                raise InvalidArgument(f"{pki.INVALID_TOKEN}: the manager at {remote} has a different "
                                      "root CA than the token names")
            key = pki.new_key_pem()
            issue = ca_pb2.IssueNodeCertificateRequest(token=request.token.strip(), csr_pem=pki.make_csr(key),
                                                   hostname=self.hostname,
                                                   advertise_addr=addr.join(adv_host, adv_port))
            async with tls.secure_channel(remote, ca_cert, *tls.anonymous_identity()) as channel:
                try:
                    response = await ca_pb2_grpc.CAStub(channel).IssueNodeCertificate(issue, timeout=timeout)
                except grpc.RpcError as exc:
                    raise from_rpc_error(exc) from None
            identity = pki.cert_identity(response.cert_pem)
            if identity.node_id != response.node_id or not pki.verify_signed_by(response.cert_pem, ca_cert):
                raise Unavailable(f"the manager at {remote} returned a certificate that does not check out")
            self.state.save_certs(ca_cert, key, response.cert_pem)
            membership = Membership(cluster_id=identity.cluster_id, node_id=identity.node_id,
                                    role=identity.role, managers=list(response.managers) or [remote])
            if identity.role == pb.MANAGER:
                membership.listen_addr = addr.join(listen_host, listen_port)
                membership.advertise_addr = addr.join(adv_host, adv_port)
                await self._become_manager(membership, response.raft_key, response.raft_addr,
                                           list(response.raft_peers))
            self.state.save(membership)
            self.membership = membership
            self._start_agent()
            log.info("joined swarm %s as node %s (%s)", identity.cluster_id, identity.node_id,
                     pb.NodeRole.Name(identity.role).lower())
            return local_pb2.SwarmJoinResponse(node_id=identity.node_id, role=identity.role)

    async def _rejoin(self, me: Membership, remote_addr: str) -> local_pb2.SwarmJoinResponse:
        """A worker that holds its certificate finds its swarm at a new address (a swarm
        restored from a backup elsewhere): no token, the manager must have this node's CA."""
        if me.role == pb.MANAGER:
            raise FailedPrecondition("this node was a manager: a restored swarm denies its old managers; "
                                     "use \"covey swarm leave --force\", then join with a token")
        host, port = addr.parse_ip_port(remote_addr, addr.API_PORT, "manager address")
        remote = addr.join(host, port)
        ca_cert = await asyncio.to_thread(tls.fetch_unverified_ca, remote, self.settings.join_timeout)
        if ca_cert != self.state.ca_cert():
            raise InvalidArgument(f"the manager at {remote} has another root CA than this node's certificate: "
                                  "it is another swarm; leave this one and join with a token")
        before = me.managers
        await self._point_agent(me, [remote])
        assert self.agent is not None
        try:
            await asyncio.wait_for(self.agent.connected.wait(), self.settings.join_timeout)
        except TimeoutError:
            await self._point_agent(me, before)   # as it was: refused, nothing changed
            raise Unavailable(f"the manager at {remote} did not take this node back within "
                              f"{self.settings.join_timeout:g}s (was it removed from the swarm?)") from None
        log.info("rejoined swarm %s at %s as node %s", me.cluster_id, remote, me.node_id)
        return local_pb2.SwarmJoinResponse(node_id=me.node_id, role=me.role)

    async def _point_agent(self, me: Membership, managers: list[str]) -> None:
        """A new agent, which asks these managers for a session."""
        await self._stop_agent()
        me.managers = managers
        self.state.save(me)
        self._start_agent()

    # ------------------------------------------------------------ swarm leave

    async def leave(self, request: local_pb2.SwarmLeaveRequest) -> None:
        async with self._lock:
            if not self.membership:
                raise FailedPrecondition(NOT_IN_SWARM)
            if self.locked and not request.force:
                raise FailedPrecondition(f"{autolock.LOCKED}, or use --force to leave without unlocking")
            if self.agent is not None and (self.manager is None or request.force):
                await self.agent.leave()  # Down at once; a manager without --force is refused below
            if self.manager is not None:
                await self._leave_raft(self.manager, self.membership, request.force)
            await self.close()
            if self.tasks is not None:
                await self.tasks.remove_all()  # as Docker: a node that leaves runs no task of the swarm
            self.state.erase()
            self.membership = None
            self.locked = False
            log.info("left the swarm")

    async def _leave_raft(self, manager: Manager, membership: Membership, force: bool) -> None:
        store = manager.store
        if not force:
            if len(mship.managers(store)) <= 1:
                raise FailedPrecondition(LAST_MANAGER)
            me = store.nodes.get(membership.node_id)
            if me is None:
                raise FailedPrecondition(f"node {membership.node_id} is not in the swarm's state yet: "
                                         "try again, or use --force to leave at once")
            mship.check_can_lose(store, me, "remove")
            raise FailedPrecondition("this node is a manager: demote it first (covey node demote), "
                                     "or use --force to leave at once")
        if len(mship.managers(store)) > 1:
            try:  # best effort: the others stop counting on this member
                await store.remove_member(membership.raft_addr, wait=not store.is_leader())
            except Exception as exc:
                log.warning("could not leave Raft cleanly: %s", exc)

    # ------------------------------------------------------------ role changes

    async def _renew(self, channel, desired_role: pb.NodeRole) -> Credentials:
        """Renew the certificate (the agent calls this when the managers ask for another role)."""
        key = pki.new_key_pem()
        request = ca_pb2.RenewNodeCertificateRequest(csr_pem=pki.make_csr(key))
        response = await ca_pb2_grpc.CAStub(channel).RenewNodeCertificate(request, timeout=self.settings.join_timeout)
        ca_cert = response.ca_cert_pem or self.state.ca_cert()  # a root CA rotation gives the new bundle
        if not pki.verify_signed_by(response.cert_pem, ca_cert):
            raise Unavailable("the renewed certificate does not check out")
        async with self._lock:
            me = self._member
            if response.role == pb.MANAGER and self.manager is None:
                api_host, api_port = addr.split(response.api_addr, addr.API_PORT)
                me.listen_addr, me.advertise_addr = addr.join("0.0.0.0", api_port), response.api_addr
                self.state.save_certs(ca_cert, key, response.cert_pem)
                await self._become_manager(me, response.raft_key, response.raft_addr, list(response.raft_peers))
            elif response.role == pb.WORKER and me.role == pb.MANAGER:
                await self._stop_manager()  # it already left Raft: that came first
                shutil.rmtree(self.state.raft_dir, ignore_errors=True)
                self.state.reseal(None)  # autolock is for managers: a worker never starts locked
                me.listen_addr = me.advertise_addr = me.raft_addr = ""
                me.raft_peers = []
            self.state.save_certs(ca_cert, key, response.cert_pem)
            me.role = response.role
            me.managers = list(response.managers) or me.managers
            self.state.save(me)
        return Credentials(ca_cert, key, response.cert_pem, response.role)

    def _step_down(self) -> None:
        """This leader is being demoted: stop its Raft replica so another is elected.
        The certificate renewal that follows makes it a worker."""
        asyncio.get_running_loop().create_task(self._stop_manager(), name="step-down")

    async def _become_manager(self, membership: Membership, raft_key: bytes, raft_addr: str,
                              peers: list[str]) -> None:
        self.state.save_raft_key(raft_key)
        membership.raft_addr, membership.raft_peers = raft_addr, peers
        shutil.rmtree(self.state.raft_dir, ignore_errors=True)  # a new member starts empty
        await self._start_manager(membership)

    # ------------------------------------------------------------ parts

    def _dial(self, addr: str) -> grpc.aio.Channel:
        """A channel to another manager, with this node's certificate."""
        return tls.secure_channel(addr, self.state.ca_cert(), self.state.key(), self.state.cert())

    async def _start_manager(self, membership: Membership) -> Manager:
        listen_host, _ = addr.split(membership.listen_addr, addr.API_PORT)
        _, raft_port = addr.split(membership.raft_addr, addr.API_PORT + addr.RAFT_PORT_OFFSET)
        config = ManagerConfig(node_id=membership.node_id, raft_dir=self.state.raft_dir,
                               raft_addr=membership.raft_addr, raft_bind=addr.join(listen_host, raft_port),
                               api_addr=membership.advertise_addr, raft_key=self.state.raft_key(),
                               at_rest_key=self.state.at_rest_key(),
                               raft_peers=list(membership.raft_peers), timings=self.settings.raft,
                               ready_timeout=self.settings.manager_ready_timeout,
                               log_gather_timeout=self.settings.log_gather_timeout,
                               insecure_registries=self._insecure_registries)
        manager = self.manager = await Manager.open(config, step_down=self._step_down, dial=self._dial)
        server = grpc.aio.server(options=tls.SERVER_OPTIONS)
        manager.add_to_server(server)
        creds = tls.server_credentials(lambda: (self.state.key(), self.state.cert(), self._trusted_cas(manager)))
        try:
            server.add_secure_port(membership.listen_addr, creds)
        except RuntimeError:
            await self._stop_manager()
            raise Unavailable(f"cannot listen on {membership.listen_addr}: "
                              "the address is in use or not local") from None
        await server.start()
        self._cluster_server = server
        self._peers_task = asyncio.create_task(self._remember_peers(manager, membership), name="raft-peers")
        self._autolock_task = asyncio.create_task(self._follow_autolock(manager), name="autolock")
        return manager

    def _trusted_cas(self, manager: Manager) -> bytes:
        """What this manager's server trusts: the CAs its state names (during a root CA
        rotation the file, which this node's agent updates, may lag behind)."""
        try:
            clusters = manager.store.clusters.list()
        except RuntimeError:  # read from gRPC's thread while the store changed: use the file
            clusters = []
        return pki.trust_bundle(clusters[0].root_ca) if clusters else self.state.ca_cert()

    async def _stop_manager(self) -> None:
        for task in (self._peers_task, self._autolock_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._peers_task = self._autolock_task = None
        if self.manager is not None:
            # Before the server's grace period: a lone manager's node monitor would otherwise
            # see its own agent gone for longer than the heartbeat timeout, mark its node Down
            # and move its tasks while coveyd merely restarts.
            await self.manager.stop_loops()
        if self._cluster_server is not None:
            await self._cluster_server.stop(self.settings.shutdown_timeout)
            self._cluster_server = None
        if self.manager is not None:
            await self.manager.close()
            self.manager = None

    async def _remember_peers(self, manager: Manager, membership: Membership) -> None:
        """Keep swarm.json's Raft peers current, so a restart finds the other managers."""
        events = manager.store.subscribe()
        try:
            while True:
                peers = manager.raft_peers()
                if peers and peers != membership.raft_peers:
                    membership.raft_peers = peers
                    if self.membership is membership:
                        self.state.save(membership)
                event = await events.get()
                while not isinstance(event.obj, pb.Node):
                    event = await events.get()
        finally:
            # _stop_manager cancels this task before it closes the manager
            manager.store.unsubscribe(events)

    async def _follow_autolock(self, manager: Manager) -> None:
        """Keep this manager's keys at rest sealed with the swarm's current unlock key, or
        plain without autolock. The key is in the replicated state, so every manager follows
        `swarm update --autolock` and `unlock-key --rotate`; a manager still replaying its log
        waits until it has caught up (an old key met on the way is not the current one)."""
        events = manager.store.subscribe()
        try:
            while True:
                store = manager.store
                if store.ready() and store.caught_up() and (clusters := store.clusters.list()):
                    cluster = clusters[0]
                    wanted = cluster.unlock_key if cluster.spec.autolock and cluster.unlock_key else None
                    if wanted != self.state.unlock_key:
                        self.state.reseal(wanted)
                        log.info("this manager's keys at rest are now %s",
                                 "sealed by the unlock key" if wanted else "not sealed (autolock is off)")
                try:
                    async with asyncio.timeout(AUTOLOCK_POLL):
                        while not isinstance((await events.get()).obj, pb.Cluster):
                            pass
                except TimeoutError:
                    pass
        finally:
            manager.store.unsubscribe(events)

    def _start_agent(self) -> None:
        identity = self.state.identity()
        credentials = Credentials(self.state.ca_cert(), self.state.key(), self.state.cert(), identity.role)
        if self.tasks is not None and self.tasks.networks is None and self._network is not None:
            self.tasks.networks = self._task_networks(self._network)
        agent = Agent(describe_node(self.hostname, __version__), credentials,
                      self._member.managers, _agent_channel, self.settings.agent,
                      on_managers=self._remember_managers, renew=self._renew, renew_in=_renew_in,
                      on_trust=self.state.save_ca_cert,
                      tasks=self.tasks)
        self.agent = agent
        self._agent_task = asyncio.create_task(agent.run(), name="agent")

    def _task_networks(self, setup: NetworkSetup) -> TaskNetworks:
        """The overlay on the address this node's sessions come from (the managers see that
        address as the node's, and send it to the others as the VXLAN remote)."""
        host, port = addr.split(self._member.managers[0])
        underlay = _local_ip_towards(host, port)
        resolver = Resolver(setup.dns_upstreams, timeout=self.settings.dns_timeout)
        return TaskNetworks(lambda: Overlay(setup.prefix, underlay), underlay, resolver, setup.run_dir, self.hostname,
                            self._member.node_id)

    async def _stop_agent(self) -> None:
        if self._agent_task is not None:
            self._agent_task.cancel()
            await asyncio.gather(self._agent_task, return_exceptions=True)
            self._agent_task = None

    def _remember_managers(self, managers: list[str]) -> None:
        if self.membership:
            self.membership.managers = managers
            self.state.save(self.membership)

    def info(self) -> local_pb2.InfoResponse:
        m = self.membership
        return local_pb2.InfoResponse(node_id=m.node_id if m else "", cluster_id=m.cluster_id if m else "",
                               role=self.state.identity().role if m else pb.WORKER,
                               hostname=self.hostname, managers=m.managers if m else [],
                               engine_version=__version__)


def _renew_in(cert_pem: bytes) -> float:
    """Seconds until this certificate should be renewed: a random point between 50% and
    80% of its life, so that the nodes of a swarm do not all renew at once."""
    due = pki.renewal_due(cert_pem, random.uniform(0.5, 0.8))
    return max(0.0, (due - datetime.datetime.now(datetime.UTC)).total_seconds())


def _manager_addrs(listen_addr: str, advertise_addr: str) -> tuple[str, str]:
    """(listen, advertise) host:port of a manager from what the user gave; the listen host
    is the advertised one when it names an address."""
    listen_host, listen_port = addr.parse_ip_port(listen_addr or f"0.0.0.0:{addr.API_PORT}",
                                                  addr.API_PORT, "listen address")
    if not advertise_addr and listen_host in ("0.0.0.0", "::"):
        raise InvalidArgument("--advertise-addr is required: the address other nodes reach this one on")
    adv_host, adv_port = addr.parse_ip_port(advertise_addr or listen_host, listen_port, "advertise address")
    return addr.join(listen_host, listen_port), addr.join(adv_host, adv_port)


def _manager_cert(cluster: pb.Cluster, node_id: str) -> tuple[bytes, bytes]:
    """(key, certificate) of a manager of `cluster`, signed by its root CA."""
    ca = cluster.root_ca
    if not (ca.ca_cert_pem and ca.ca_key_pem and cluster.raft_key):
        raise backupfile.Corrupt("the backup file is corrupt: its cluster has no root CA key or no Raft key")
    lifetime = datetime.timedelta(microseconds=cluster.spec.node_cert_expiry_ns // 1000) or pki.NODE_CERT_LIFETIME
    key = pki.new_key_pem()
    try:
        cert = pki.sign_node_cert(ca.ca_cert_pem, ca.ca_key_pem, pki.make_csr(key), node_id, pb.MANAGER,
                                  cluster.id, lifetime)
    except ValueError as exc:
        raise backupfile.Corrupt(f"the backup file is corrupt: its root CA cannot sign ({exc})") from None
    return key, cert


def _agent_channel(addr: str, credentials: Credentials) -> grpc.aio.Channel:
    return tls.secure_channel(addr, credentials.ca_cert, credentials.key, credentials.cert)


async def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise Unavailable(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
