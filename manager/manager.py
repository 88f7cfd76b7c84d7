"""The manager: the store plus the services and loops that run on it.

Leader-only loops (today the dispatcher's heartbeat monitor) start when this
manager wins leadership and are cancelled when it loses it.
"""
import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from covey import pki
from covey.errors import DeadlineExceeded, Unavailable
from manager.allocator import loop as allocator
from manager.ca import authz, rotation
from manager.ca.server import CAServer
from manager.controlapi.api import Control
from manager.controlapi.networks import default_ingress
from manager.dispatcher.api import Dispatcher
from manager.dispatcher.logbroker import LogBroker, LogBrokerAPI
from manager.orchestrator import services as orchestrator
from manager.scheduler import loop as scheduler
from manager.state import membership
from manager.state import store as st
from manager.state.actions import create
from manager.state.queries import cluster_of
from proto import ca_pb2, control_pb2, dispatcher_pb2, logbroker_pb2
from proto import objects_pb2 as pb

log = logging.getLogger(__name__)


@dataclass
class ManagerConfig:
    node_id: str
    raft_dir: Path
    raft_addr: str        # host:port other managers reach our Raft port on
    raft_bind: str        # host:port our Raft port binds
    api_addr: str         # host:port other nodes reach our gRPC API on
    raft_key: bytes
    at_rest_key: bytes    # this manager's own key for its Raft files
    timings: st.RaftTimings
    raft_peers: list[str] = field(default_factory=list)  # the other members, at start
    ready_timeout: float = 30.0
    reconcile_period: float = 1.0
    log_gather_timeout: float = 10.0  # service logs: how long to wait for each node's backlog
    leader_poll: float = 0.05         # how often the leader watch looks at who leads
    insecure_registries: tuple[str, ...] = ()  # plain-HTTP registries (stack deploy --resolve-image)


class Manager:
    def __init__(self, config: ManagerConfig, store: st.Store, step_down=lambda: None, dial=None):
        self.config = config
        self.store = store
        self._step_down = step_down  # called when this leader is demoted
        self._dial = dial  # host:port -> a grpc.aio channel with this node's certificate
        logs = LogBroker(store, config.log_gather_timeout)
        self.dispatcher = Dispatcher(store, self.manager_addrs, self.leader_api_addr, config.leader_poll)
        self.logs = LogBrokerAPI(logs, self.dispatcher.sessions.check)
        self.ca = CAServer(store, self.manager_addrs)
        self.control = Control(store, self.manager_status, config.api_addr,
                               self.dispatcher.sessions.end_session, logs, self._leader_channel,
                               config.insecure_registries)
        self._leader_tasks: list[asyncio.Task] = []
        self._watch = asyncio.create_task(_supervise("leader watch", self.dispatcher.leader.run))

    @classmethod
    async def open(cls, config: ManagerConfig, step_down=lambda: None, dial=None) -> "Manager":
        # No waiting for a leader here: a manager restarted without quorum must keep
        # running (and be able to force a new cluster).
        store = st.Store(config.raft_dir, config.raft_addr, config.raft_peers, config.raft_key,
                         config.raft_bind, config.timings, config.at_rest_key)
        manager = cls(config, store, step_down, dial)
        store.on_leadership(manager._leadership_changed)
        return manager

    def add_to_server(self, server) -> None:
        """Serve the cluster's services on `server` (TCP, mutual TLS), each call authorized."""
        served = ((ca_pb2, "CA", self.ca), (dispatcher_pb2, "Dispatcher", self.dispatcher),
                  (logbroker_pb2, "LogBroker", self.logs), (control_pb2, "Control", self.control))
        for module, name, service in served:
            authz.serve(server, module.DESCRIPTOR.services_by_name[name], service.handlers,
                        lambda: cluster_of(self.store))

    # ------------------------------------------------------------ leadership

    def _leadership_changed(self, leader: bool) -> None:
        for task in self._leader_tasks:
            task.cancel()
        self._leader_tasks = []
        if not leader:
            self.dispatcher.sessions.end_all_sessions()
            return
        loops = {"dispatcher monitor": self.dispatcher.sessions.run_monitor,
                 "session notifier": self.dispatcher.sessions.run_notifier,
                 "orchestrator": lambda: orchestrator.run(self.store, self.config.reconcile_period),
                 "allocator": lambda: allocator.run(self.store, self.config.reconcile_period),
                 "scheduler": lambda: scheduler.run(self.store, self.config.reconcile_period),
                 "root CA rotation": lambda: rotation.run(self.store, self.config.reconcile_period),
                 "role reconciler": lambda: membership.reconcile_roles(
                     self.store, self.config.raft_addr, self.config.reconcile_period, self._step_down),
                 "reachability": lambda: membership.track_reachability(
                     self.store, self.config.raft_addr, self.config.reconcile_period,
                     self.config.timings.unreachable_after)}
        self._leader_tasks = [asyncio.create_task(self._lead(name, fn), name=name) for name, fn in loops.items()]

    async def _lead(self, name: str, loop_fn) -> None:
        """A leader loop, once this leader's state holds every write committed before it and
        the cluster object: a swarm being created or restored writes it last (coveyd/recovery.py)."""
        await self.store.wait_leads_current()
        await _cluster_written(self.store)
        await _supervise(name, loop_fn)

    # ------------------------------------------------------------ views

    def manager_addrs(self) -> list[str]:
        addrs = [n.manager_status.api_addr for n in self.store.nodes.view()
                 if n.role == pb.MANAGER and n.manager_status.api_addr]
        return sorted(addrs) or [self.config.api_addr]

    def raft_peers(self) -> list[str]:
        """The other managers' Raft addresses, as the store knows them."""
        return sorted(n.manager_status.raft_addr for n in membership.managers(self.store)
                      if n.manager_status.raft_addr and n.manager_status.raft_addr != self.config.raft_addr)

    def leader_api_addr(self) -> str | None:
        leader = self.store.leader_addr()
        for node in membership.managers(self.store):
            if leader and node.manager_status.raft_addr == leader:
                return node.manager_status.api_addr
        return None

    def _leader_channel(self):
        addr = self.leader_api_addr()
        return self._dial(addr) if addr and self._dial else None

    def manager_status(self, node: pb.Node) -> pb.ManagerStatus | None:
        if node.role != pb.MANAGER:
            return None
        status = pb.ManagerStatus()
        status.CopyFrom(node.manager_status)
        status.leader = status.raft_addr == self.store.leader_addr()
        reachable = status.leader or membership.reachable(self.store, node)
        if status.raft_addr == self.store.self_addr and self.store.disk_error():
            # It cannot write its journal, so it sends no Raft message: to the others it is gone.
            status.message = f"raft journal: {self.store.disk_error()}"
            reachable = False
        status.reachability = (pb.ManagerStatus.REACHABLE if reachable
                               else pb.ManagerStatus.UNREACHABLE)
        return status

    async def stop_loops(self) -> None:
        """No more leader loops here (the first step of stopping): nothing this manager
        decides from now on, e.g. that its own node went quiet while coveyd shuts down."""
        for task in [*self._leader_tasks, self._watch]:
            task.cancel()
        await asyncio.gather(*self._leader_tasks, self._watch, return_exceptions=True)

    async def close(self) -> None:
        await self.stop_loops()
        await asyncio.to_thread(self.store.close)


async def _cluster_written(store: st.Store) -> None:
    events = store.subscribe()
    try:
        while not store.clusters.view():
            await events.get()
    finally:
        store.unsubscribe(events)


async def _supervise(name: str, loop_fn, restart_delay: float = 1.0) -> None:
    """Run a leader loop until cancelled; log and restart it if it fails. A write refused
    or timed out (this leader is losing its leadership: the loop is about to be cancelled)
    is logged in one line; anything else with its traceback."""
    while True:
        try:
            await loop_fn()
        except asyncio.CancelledError:
            raise
        except (Unavailable, DeadlineExceeded) as exc:
            log.warning("%s stopped: %s; restarting it", name, exc)
        except Exception:
            log.exception("%s failed; restarting it", name)
        await asyncio.sleep(restart_delay)


async def bootstrap(manager: Manager, cluster_id: str, hostname: str, ca_cert: bytes,
                    ca_key: bytes, heartbeat_ns: int, cert_expiry_ns: int,
                    network_defaults: pb.NetworkDefaults | None = None, autolock: bool = False) -> pb.Cluster:
    """Write the first objects of a new swarm: the cluster (with the network defaults of
    `swarm init`, checked by the caller), this manager's node and the ingress network."""
    await manager.store.wait_ready(manager.config.ready_timeout)
    now = time.time_ns()
    meta = pb.Meta(created_at_ns=now, updated_at_ns=now)
    digest = pki.ca_digest(ca_cert)
    cluster = pb.Cluster(
        id=cluster_id, meta=meta,
        spec=pb.ClusterSpec(name="default", heartbeat_period_ns=heartbeat_ns,
                            node_cert_expiry_ns=cert_expiry_ns, autolock=autolock),
        root_ca=pb.RootCA(ca_cert_pem=ca_cert, ca_key_pem=ca_key, ca_digest=digest),
        join_tokens=pb.JoinTokens(worker=pki.make_token(digest, pki.new_token_secret()),
                                  manager=pki.make_token(digest, pki.new_token_secret())),
        raft_key=manager.config.raft_key, network_defaults=network_defaults,
        unlock_key=pki.new_unlock_key() if autolock else b"")
    node = manager_node(manager.config.node_id, hostname, manager.config.raft_addr, manager.config.api_addr, now)
    node.cert_ca_digest = digest
    ingress = default_ingress(cluster.network_defaults, [node], now)
    await manager.store.write([create(cluster), create(node), create(ingress)])
    return cluster


def manager_node(node_id: str, hostname: str, raft_addr: str, api_addr: str, now_ns: int) -> pb.Node:
    """The node object of a swarm's first manager (a new swarm, or one restored from a backup)."""
    return pb.Node(
        id=node_id, meta=pb.Meta(created_at_ns=now_ns, updated_at_ns=now_ns), role=pb.MANAGER,
        spec=pb.NodeSpec(desired_role=pb.MANAGER, availability=pb.ACTIVE),
        description=pb.NodeDescription(hostname=hostname),
        status=pb.NodeStatus(state=pb.NodeStatus.UNKNOWN),
        manager_status=pb.ManagerStatus(raft_addr=raft_addr, api_addr=api_addr))
