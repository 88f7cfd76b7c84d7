"""In-process swarms of real nodes (coveyd.node.Node: real managers, Raft, dispatcher, agents,
mutual TLS on loopback) whose agents run the simulated executor: the orchestrator and
scheduler rules can be watched end to end in seconds.

    async with Swarm(tmp_path) as swarm:
        await swarm.init("m1")
        await swarm.join("w1", "w2")
        await swarm.create(service_spec("web", replicas=3))
        await swarm.until(lambda: swarm.converged("web", 3), what="3 running")
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from covey import tls
from coveyd.node import Node
from coveyd.settings import Settings
from manager.state.queries import cluster_of
from manager.state.store import RaftTimings
from proto import control_pb2, control_pb2_grpc, local_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.inproc import free_port_pair
from tests.support.builders import SECOND
from tests.support.poll import TIMEOUT, until
from worker.agent import AgentSettings
from worker.executor.simulated import SimulatedExecutor, SimulatedRegistry

HEARTBEAT = 0.3          # s: a node is Down after 4 periods without one, 1.2 s


def fast_settings() -> Settings:
    """Short periods everywhere, so that a scenario takes seconds."""
    return Settings(join_timeout=10.0, manager_ready_timeout=15.0, shutdown_timeout=0.0,
                    raft=RaftTimings(election_min=0.3, election_max=0.6, leader_fallback=0.6,
                                     connection_timeout=1.0),
                    agent=AgentSettings(connect_timeout=1.0, rpc_timeout=2.0, backoff_initial=0.05,
                                        backoff_max=0.3, status_batch=0.02))


class Watch:
    """Samples a sync predicate in the background (every few ms) while a scenario runs,
    and keeps the first moments it was false:

        async with Watch(lambda: count() >= 3, "3 running") as w: ...
        assert not w.violations
    """

    def __init__(self, predicate, what: str, interval: float = 0.005):
        self.predicate, self.what, self.interval = predicate, what, interval
        self.violations: list[str] = []
        self.samples = 0
        self._task: asyncio.Task | None = None

    async def _run(self) -> None:
        while True:
            ok = self.predicate()
            self.samples += 1
            if not ok and len(self.violations) < 10:
                self.violations.append(f"{self.what} false at sample {self.samples}: {ok!r}")
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> Watch:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


# ---------------------------------------------------------------- the swarm

@dataclass
class SimNode:
    hostname: str
    node: Node
    executor: SimulatedExecutor
    manager: bool = False

    @property
    def id(self) -> str:
        return self.node.membership.node_id

    def running(self, service_name: str | None = None) -> list:
        """The configs of the containers running on this node (of one service, or all)."""
        out = []
        for name in self.executor.running():
            cfg = self.executor._containers[name].cfg
            if service_name is None or cfg.labels.get("covey.service.name") == service_name:
                out.append(cfg)
        return out


@dataclass
class Swarm:
    tmp_path: Path
    heartbeat: float | None = HEARTBEAT  # None: the product's default period
    settings: Settings = field(default_factory=fast_settings)
    registry: SimulatedRegistry = field(default_factory=SimulatedRegistry)
    nodes: dict[str, SimNode] = field(default_factory=dict)

    def __post_init__(self):
        self._channel = None
        self.control: control_pb2_grpc.ControlStub | None = None
        self.via: SimNode | None = None

    async def __aenter__(self) -> Swarm:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ---- membership --------------------------------------------------------------------
    def _new_node(self, hostname: str, manager: bool) -> SimNode:
        executor = SimulatedExecutor(self.registry)
        node = Node(self.tmp_path / hostname, hostname, self.settings, executor)
        sim = SimNode(hostname, node, executor, manager)
        self.nodes[hostname] = sim
        return sim

    async def init(self, hostname: str = "m1", **request) -> SimNode:
        """`request`: more SwarmInitRequest fields (the network defaults, say)."""
        sim = self._new_node(hostname, True)
        port = free_port_pair()
        await sim.node.init(local_pb2.SwarmInitRequest(advertise_addr=f"127.0.0.1:{port}",
                                                listen_addr=f"127.0.0.1:{port}",
                                                heartbeat_period_ns=int((self.heartbeat or 0) * SECOND),
                                                **request))
        await self.use(hostname)
        await self.until_ready(hostname)
        return sim

    async def join(self, *hostnames: str, manager: bool = False) -> list[SimNode]:
        """Join nodes (together); returns once each is Ready as the managers see it."""
        token = (await self.control.JoinToken(control_pb2.JoinTokenRequest(
            role=pb.MANAGER if manager else pb.WORKER))).token
        remote = self.via.node.membership.advertise_addr
        sims = [self._new_node(h, manager) for h in hostnames]

        async def one(sim):
            listen = f"127.0.0.1:{free_port_pair()}" if manager else ""
            await sim.node.join(local_pb2.SwarmJoinRequest(token=token, remote_addr=remote,
                                                    advertise_addr=listen or "127.0.0.1",
                                                    listen_addr=listen))
        if manager:
            for sim in sims:  # one Raft membership change at a time
                await one(sim)
                await self.until(lambda sim=sim: sim.node.manager.store.ready(), what=f"{sim.hostname} caught up")
        else:
            await asyncio.gather(*(one(sim) for sim in sims))
        for sim in sims:
            await self.until_ready(sim.hostname)
        return sims

    async def until_ready(self, hostname: str) -> pb.Node:
        async def ready():
            node = await self.node(hostname)
            return node if node and node.status.state == pb.NodeStatus.READY else None
        return await self.until(ready, what=f"{hostname} Ready")

    async def use(self, hostname: str) -> None:
        """Send control calls to this manager from now on (with its own certificate)."""
        if self._channel is not None:
            await self._channel.close()
        sim = self.nodes[hostname]
        s = sim.node.state
        self._channel = tls.secure_channel(sim.node.membership.advertise_addr, s.ca_cert(), s.key(), s.cert())
        self.control = control_pb2_grpc.ControlStub(self._channel)
        self.via = sim

    async def partition(self, hostname: str) -> None:
        """Cut the node's agent off the managers at once (no goodbye); its containers keep
        running, as on a host whose network failed."""
        await self.nodes[hostname].node._stop_agent()

    def heal(self, hostname: str) -> None:
        """The node's agent connects again (a new session)."""
        self.nodes[hostname].node._start_agent()

    async def stop(self, hostname: str) -> None:
        """The whole node goes (a manager's Raft member too)."""
        await self.nodes[hostname].node.close()

    def heartbeat_period(self) -> float:
        """The heartbeat period in force (s), as the swarm's cluster object holds it."""
        return cluster_of(self.leader().node.manager.store).spec.heartbeat_period_ns / SECOND

    def leader(self) -> SimNode | None:
        for sim in self.nodes.values():
            m = sim.node.manager
            if m is not None and m.store.is_leader():
                return sim
        return None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        await asyncio.gather(*(sim.node.close() for sim in self.nodes.values()), return_exceptions=True)

    # ---- control API -------------------------------------------------------------------
    async def node(self, hostname: str) -> pb.Node | None:
        for n in (await self.control.ListNodes(control_pb2.ListNodesRequest())).nodes:
            if n.description.hostname == hostname:
                return n
        return None

    async def update_node(self, hostname: str, availability: int | None = None,
                          labels: dict | None = None, remove_labels=()) -> pb.Node:
        request = control_pb2.UpdateNodeRequest(node=self.nodes[hostname].id, labels_add=labels or {},
                                       labels_remove=list(remove_labels))
        if availability is not None:
            request.set_availability, request.availability = True, availability
        return (await self.control.UpdateNode(request)).node

    async def create(self, s: specs.ServiceSpec) -> pb.Service:
        return (await self.control.CreateService(control_pb2.CreateServiceRequest(spec=s))).service

    async def get(self, name: str) -> pb.Service:
        return (await self.control.GetService(control_pb2.GetServiceRequest(service=name))).service

    async def update(self, name: str, s: specs.ServiceSpec | None = None, rollback: bool = False) -> pb.Service:
        request = control_pb2.UpdateServiceRequest(service=name, rollback=rollback)
        if s is not None:
            request.spec.CopyFrom(s)
        return (await self.control.UpdateService(request)).service

    async def scale(self, name: str, replicas: int) -> None:
        await self.control.ScaleService(control_pb2.ScaleServiceRequest(service=name, replicas=replicas))

    async def tasks(self, name: str | None = None) -> list[pb.Task]:
        return list((await self.control.ListTasks(control_pb2.ListTasksRequest(service=name or ""))).tasks)

    async def live(self, name: str) -> list[pb.Task]:
        """Tasks the managers want running."""
        return [t for t in await self.tasks(name) if t.desired_state <= pb.RUNNING]

    async def converged(self, name: str, count: int) -> list[pb.Task] | None:
        """Exactly `count` tasks wanted, each RUNNING, each one's container running on its node
        and no other container of the service running anywhere; the tasks then."""
        live = await self.live(name)
        if len(live) != count or any(t.status.state != pb.RUNNING for t in live):
            return None
        containers = sorted((sim.id, cfg.name) for sim in self.nodes.values() for cfg in sim.running(name))
        return live if containers == sorted((t.node_id, t.id) for t in live) else None

    def hostname_of(self, node_id: str) -> str:
        return next(h for h, sim in self.nodes.items() if sim.node.membership and sim.id == node_id)

    def by_host(self, tasks: list[pb.Task]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in tasks:
            host = self.hostname_of(t.node_id)
            counts[host] = counts.get(host, 0) + 1
        return counts

    def containers(self, name: str) -> dict[str, int]:
        """Running containers of the service per hostname (what the executors hold)."""
        return {h: len(sim.running(name)) for h, sim in self.nodes.items() if sim.running(name)}

    async def until(self, predicate, timeout: float = TIMEOUT, what: str = "condition"):
        return await until(predicate, timeout, what)
