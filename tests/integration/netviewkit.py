"""A real dispatcher over a real (one-member) Raft store, in process, and agents that hold its
sessions and assignments streams as a worker does, keeping what they were sent: tasks, and the
network views applied in order (a gap in the sequence fails the test). Tests write networks,
services and tasks with attachments straight into the store, as the allocator would.

    async with Cluster(tmp_path) as c:
        await c.add_nodes("n1", "n2")
        agent = await c.connect("n1")
        await c.until(lambda: agent.endpoints("net1"), what="endpoints")
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from manager.ca import authz
from manager.dispatcher.api import Dispatcher
from manager.state import store as st
from manager.state.actions import create, delete, modify
from proto import dispatcher_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.inproc import free_port_pair
from tests.support import builders
from tests.support.poll import TIMEOUT, until

COMPLETE, INCREMENTAL = dispatcher_pb2.AssignmentsMessage.COMPLETE, dispatcher_pb2.AssignmentsMessage.INCREMENTAL
STORE_READY_TIMEOUT = 15.0  # s: a one-member Raft elects itself


def underlay_addr(node_id: str) -> str:
    """Each test node's session comes from its own address (TEST-NET-2)."""
    return f"198.51.100.{int(node_id.lstrip('n'))}"


def attached_task(task_id: str, node_id: str, *addrs: tuple[str, str], service_id: str = "s1",
                  slot: int = 1, state: int = pb.RUNNING, desired: int = pb.RUNNING) -> pb.Task:
    """A task of service `service_id` (named svc-<id>) placed on `node_id`, with an attachment
    per (network ID, CIDR) in `addrs`."""
    task = builders.task(task_id, slot, service_id=service_id, service_name=f"svc-{service_id}", node_id=node_id,
                         state=state, desired=desired)
    for network_id, addr in addrs:
        task.networks.add(network_id=network_id, addr=addr)
    return task


def attached_service(service_id: str, *network_ids: str, vips: dict[str, str] | None = None) -> pb.Service:
    """A service on the networks (named by ID), with a VIP on each given one."""
    service = builders.service(service_id)
    for network_id in network_ids:
        service.spec.task.networks.add(target=network_id)
    for network_id, addr in (vips or {}).items():
        service.virtual_ips.add(network_id=network_id, addr=addr)
    return service


class _Context:
    """What the dispatcher's handlers read of a gRPC call's context: the peer."""

    def __init__(self, host: str):
        self._peer = f"ipv4:{host}:40000"

    def peer(self) -> str:
        return self._peer


@dataclass
class HeldView:
    """One network as an agent holds it after applying what it was sent."""
    network: pb.Network
    endpoints: dict[str, dispatcher_pb2.NetworkEndpoint] = field(default_factory=dict)
    services: dict[str, dispatcher_pb2.NetworkService] = field(default_factory=dict)


@dataclass
class Agent:
    node_id: str
    messages: list[dispatcher_pb2.AssignmentsMessage] = field(default_factory=list)
    tasks: dict[str, pb.Task] = field(default_factory=dict)
    networks: dict[str, HeldView] = field(default_factory=dict)
    sequence: int = 0
    runner: asyncio.Task | None = None

    def apply(self, message: dispatcher_pb2.AssignmentsMessage) -> None:
        self.messages.append(message)
        if message.type == COMPLETE:
            self.tasks, self.networks, self.sequence = {}, {}, 0
        else:
            assert message.sequence == self.sequence + 1, f"gap: {self.sequence} then {message.sequence}"
            self.sequence = message.sequence
        self.tasks.update((t.id, t) for t in message.updated)
        for task_id in message.removed:
            self.tasks.pop(task_id, None)
        for view in message.networks:
            self._apply_view(view)
        for network_id in message.removed_networks:
            assert network_id in self.networks, f"{network_id} removed but never sent"
            del self.networks[network_id]

    def _apply_view(self, view: dispatcher_pb2.NetworkView) -> None:
        if view.complete:
            self.networks[view.network.id] = HeldView(view.network)
        held = self.networks[view.network.id]  # a partial view of an unknown network fails here
        if view.network.meta.version:  # otherwise only its ID: the network did not change
            held.network = view.network
        held.endpoints.update((e.task_id or e.node_id, e) for e in view.endpoints)  # a node's own: its ID
        held.services.update((s.id, s) for s in view.services)
        for task_id in view.removed_endpoints:
            held.endpoints.pop(task_id)
        for service_id in view.removed_services:
            held.services.pop(service_id)

    def endpoints(self, network_id: str) -> dict[str, dispatcher_pb2.NetworkEndpoint]:
        held = self.networks.get(network_id)
        return held.endpoints if held else {}

    def since(self, count: int) -> list[dispatcher_pb2.AssignmentsMessage]:
        return self.messages[count:]


class Cluster:
    def __init__(self, tmp_path: Path):
        self._tmp_path = tmp_path
        self.store: st.Store
        self.dispatcher: Dispatcher
        self._runners: list[asyncio.Task] = []

    async def __aenter__(self) -> Cluster:
        addr = f"127.0.0.1:{free_port_pair()}"
        self.store = st.Store(self._tmp_path, addr, [], b"k" * 32, addr, st.RaftTimings(), at_rest_key=b"r" * 32)
        await self.store.wait_ready(STORE_READY_TIMEOUT)
        await self.store.wait_leads_current()
        await self.store.write([create(pb.Cluster(id="c1", spec=pb.ClusterSpec(heartbeat_period_ns=builders.SECOND)))])
        self.dispatcher = Dispatcher(self.store, managers=list, leader_api_addr=lambda: None, leader_poll=0.05)
        return self

    async def __aexit__(self, *exc) -> None:
        self.dispatcher.sessions.end_all_sessions()
        for runner in self._runners:
            runner.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)
        await asyncio.to_thread(self.store.close)

    # ---- writes, as the allocator, scheduler and agents would make them --------------------
    async def add_nodes(self, *node_ids: str) -> None:
        """Nodes n<number>, as their last sessions left them (at underlay_addr)."""
        nodes = [builders.node(n, hostname=f"host-{n}") for n in node_ids]
        for node in nodes:
            node.status.addr = underlay_addr(node.id)
        await self.store.write([create(node) for node in nodes])

    async def add_network(self, network_id: str, third_octet: int) -> None:
        """A network named name-<id> on 10.0.<third_octet>.0/24."""
        await self.store.write([create(pb.Network(
            id=network_id, spec=specs.NetworkSpec(name=f"name-{network_id}"),
            subnet=f"10.0.{third_octet}.0/24", gateway=f"10.0.{third_octet}.1", vni=4096 + third_octet))])

    async def write(self, *objects) -> None:
        await self.store.write([create(o) for o in objects])

    async def change_task(self, task_id: str, **fields) -> None:
        def change(task: pb.Task) -> None:
            if "state" in fields:
                task.status.state = fields["state"]
            if "desired" in fields:
                task.desired_state = fields["desired"]
        await modify(self.store, pb.Task, task_id, change, time.time_ns())

    async def set_node_addr(self, node_id: str, addr: str) -> None:
        await modify(self.store, pb.Node, node_id, lambda node: setattr(node.status, "addr", addr), time.time_ns())

    async def set_vip(self, service_id: str, network_id: str, addr: str) -> None:
        def change(service: pb.Service) -> None:
            del service.virtual_ips[:]
            service.virtual_ips.add(network_id=network_id, addr=addr)
        await modify(self.store, pb.Service, service_id, change, time.time_ns())

    async def remove_task(self, task_id: str) -> None:
        await self.store.write([delete(self.store.tasks.get(task_id))])

    # ---- agents ----------------------------------------------------------------------------
    async def connect(self, node_id: str, agent: Agent | None = None) -> Agent:
        """A session for the node (a new one replaces the last) and its assignments stream,
        applied into `agent` (a new one unless given); returns once the complete set came."""
        agent = agent or Agent(node_id)
        caller = authz.Caller(node_id=node_id, role=pb.WORKER)
        session = self.dispatcher.sessions.open(dispatcher_pb2.SessionRequest(), _Context(underlay_addr(node_id)),
                                                caller)
        session_id = (await anext(session)).session_id
        stream = self.dispatcher.handlers["Assignments"](
            dispatcher_pb2.AssignmentsRequest(session_id=session_id), None, caller)
        completes = sum(m.type == COMPLETE for m in agent.messages)

        async def hold() -> None:
            async with asyncio.TaskGroup() as group:
                group.create_task(_drain(session))
                async for message in stream:
                    agent.apply(message)
        agent.runner = asyncio.create_task(hold())
        self._runners.append(agent.runner)
        await self.until(lambda: sum(m.type == COMPLETE for m in agent.messages) > completes,
                         what=f"{node_id}: the complete set")
        return agent

    async def until(self, predicate, timeout: float = TIMEOUT, what: str = "condition"):
        return await until(predicate, timeout, what)


async def _drain(stream) -> None:
    async for _ in stream:
        pass
