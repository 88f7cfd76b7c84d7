"""The dispatcher's sessions: node sessions and heartbeats (docs/design.md, "Control plane").

A node opens a Session (a server stream) and then heartbeats (on a stream of its own). Heartbeats are
kept in memory on the leader; only transitions (Ready, Down) are written to the store, with
why a node is Down ("heartbeat failure", "left the swarm") in its status message.
"""
import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from covey import addr, pki
from covey.errors import FailedPrecondition, NotFound, NotLeader, Unavailable
from covey.ids import new_id
from manager.ca import authz
from manager.state import store as st
from manager.state.actions import modify, update, write_fresh
from manager.state.queries import cluster_of
from proto import dispatcher_pb2
from proto import objects_pb2 as pb

log = logging.getLogger(__name__)

# A node is Down after this many periods without a heartbeat. With the default period (1 s) a
# host that dies has its tasks running elsewhere within about 4.5 s (Down at 4 s, replaced
# in ~0.5 s), and a 2 s network blip never marks a node Down: its last heartbeat is at most
# a period old when the link goes, and its agent is back within ~0.2 s of the link's return
# (1 + 2 + 0.2 s < 4 s).
DOWN_AFTER_PERIODS = 4
# A new leader has seen no heartbeat yet: every node gets half the Down delay, and at least
# 2 s, from the election to open a session with it (2 s by default). Agents watch another
# manager and reach the new leader within a few hundred milliseconds of its election
# (tests/e2e/test_failure_detection.py), so a healthy node is never marked Down, while a
# leader's host that was cut off has its tasks replaced within about 4 s of losing the link.
# The floor is for short periods: agents need the same time to find a leader whatever the
# period (with 0.3 s, half the Down delay was 0.6 s, and a loaded CI host missed it).
NEW_LEADER_GRACE = 0.5
NEW_LEADER_GRACE_MIN = 2.0
# A node whose heartbeats have been coming late (a busy host, a slow network) gets twice its
# longest recent gap instead, when that is longer: the idea of a phi-accrual detector, kept
# simple. A host that beats every period keeps the 4-period rule; at 1,000 simulated nodes
# whose processes ran 2 s late, this is what keeps them from being marked Down.
LATE_FACTOR = 2.0
RECENT_GAPS = 10
HEARTBEAT_FAILURE = "heartbeat failure"
LEFT = "left the swarm"
RETIRE_ATTEMPTS = 5


@dataclass
class _Session:
    session_id: str
    deadline: float
    changed: asyncio.Event


class Sessions:
    """The session of each node (one at a time), its heartbeats, and the Down monitor."""

    def __init__(self, store: st.Store, managers: Callable[[], list[str]],
                 leader_api_addr: Callable[[], str | None]):
        self._store = store
        self._managers = managers                # the managers' API addresses
        self._leader_api_addr = leader_api_addr  # host:port of the leader's API, or None
        self._sessions: dict[str, _Session] = {}
        self._deadlines: dict[str, float] = {}   # node ID -> when it goes Down
        self._beats: dict[str, tuple[float, deque[float]]] = {}  # node ID -> last beat, recent gaps
        self._leaving: set[str] = set()          # nodes that said they leave, before it is stored

    def heartbeat_period(self) -> float:
        return cluster_of(self._store).spec.heartbeat_period_ns / 1e9

    def _down_after(self) -> float:
        return DOWN_AFTER_PERIODS * self.heartbeat_period()

    def new_leader_grace(self) -> float:
        return max(NEW_LEADER_GRACE * self._down_after(), NEW_LEADER_GRACE_MIN)

    # ------------------------------------------------------------ RPCs

    async def open(self, request: dispatcher_pb2.SessionRequest, context,
                   caller: authz.Caller | None) -> AsyncIterator[dispatcher_pb2.SessionMessage]:
        """The Session RPC: the node's session messages until another session replaces it."""
        if not self._store.is_leader():
            raise NotLeader(self._leader_api_addr())
        if not self._store.leads_current():  # its tasks' state may be behind: the agent asks again
            raise Unavailable("this manager has just become the leader and is catching up")
        node_id = authz.calling_node(caller)
        if self._has_left(node_id):  # its agent may not have stopped yet
            raise FailedPrecondition(f"node {node_id} left the swarm")
        session = _Session(new_id(), time.monotonic() + self._down_after(), asyncio.Event())
        previous = self._sessions.get(node_id)
        self._sessions[node_id] = session
        self._deadlines[node_id] = session.deadline
        if previous:
            previous.changed.set()  # the old stream ends: one session per node
        self._beats.pop(node_id, None)  # the gap since the last session's beats is no lateness
        await self._set_ready(node_id, request.description, addr.peer_host(context.peer()))
        if self._sessions.get(node_id) is session:  # the periods count from now: the write may have queued
            self._deadlines[node_id] = time.monotonic() + self._down_after()
        log.info("node %s: session %s opened", node_id, session.session_id)
        try:
            while self._sessions.get(node_id) is session:
                yield self._session_message(session, node_id)
                session.changed.clear()
                await session.changed.wait()
        finally:
            if self._sessions.get(node_id) is session:
                del self._sessions[node_id]
            log.info("node %s: session %s closed", node_id, session.session_id)

    async def heartbeats(self, requests: AsyncIterator[dispatcher_pb2.HeartbeatRequest], context,
                         caller: authz.Caller | None) -> AsyncIterator[dispatcher_pb2.HeartbeatResponse]:
        async for node_id, _ in self.in_session(authz.calling_node(caller), requests):
            self._deadlines[node_id] = time.monotonic() + self._allowance(node_id)
            jittered = self.heartbeat_period() * random.uniform(0.9, 1.0)  # spread heartbeats out in time
            yield dispatcher_pb2.HeartbeatResponse(period_ns=int(jittered * 1e9))

    async def leave(self, request: dispatcher_pb2.LeaveRequest, context,
                    caller: authz.Caller | None) -> dispatcher_pb2.LeaveResponse:
        """The node leaves: Down at once, and its tasks retired, so that their slots are filled
        elsewhere now."""
        node_id = authz.calling_node(caller)
        self.check(node_id, request.session_id)
        self._leaving.add(node_id)
        self.end_session(node_id)
        await self._set_down(node_id, LEFT)
        await self._retire_tasks(node_id)
        return dispatcher_pb2.LeaveResponse()

    def _allowance(self, node_id: str) -> float:
        """How long the node may now go without a heartbeat (see LATE_FACTOR)."""
        now = time.monotonic()
        last, gaps = self._beats.get(node_id) or (None, deque(maxlen=RECENT_GAPS))
        if last is not None:
            gaps.append(now - last)
        self._beats[node_id] = (now, gaps)
        return max(self._down_after(), LATE_FACTOR * max(gaps, default=0.0))

    def _has_left(self, node_id: str) -> bool:
        node = self._store.nodes.get(node_id)
        return node_id in self._leaving or (
            node is not None and node.status.state == pb.NodeStatus.DOWN and node.status.message == LEFT)

    def check(self, node_id: str, session_id: str) -> None:
        if not self.alive(node_id, session_id):
            raise NotFound("session invalid: open a new session")

    async def in_session(self, node_id: str, requests):
        """(node ID, request) for each request of a node's stream, checked against its session."""
        async for request in requests:
            if not self.alive(node_id, request.session_id):
                raise NotFound("session invalid: open a new session")
            yield node_id, request

    def alive(self, node_id: str, session_id: str) -> bool:
        session = self._sessions.get(node_id)
        return session is not None and session.session_id == session_id

    def _session_message(self, session: _Session, node_id: str) -> dispatcher_pb2.SessionMessage:
        cluster = cluster_of(self._store)
        node = self._store.nodes.get(node_id)
        role = node.role if node else pb.WORKER  # the role a renewal would give it now
        return dispatcher_pb2.SessionMessage(session_id=session.session_id, managers=self._managers(),
                                 heartbeat_period_ns=cluster.spec.heartbeat_period_ns,
                                 ca_cert_pem=pki.trust_bundle(cluster.root_ca), role=role)

    async def run_notifier(self) -> None:
        """Leader only: a node whose object changed gets a fresh session message; when a
        manager changed, every node does (the managers list is in it)."""
        events = self._store.subscribe()
        managers = self._managers()
        clusters = self._store.clusters.list()  # none yet in a swarm being initialized
        bundle = pki.trust_bundle(clusters[0].root_ca) if clusters else b""
        try:
            while True:
                event = await events.get()
                if isinstance(event.obj, pb.Cluster) and pki.trust_bundle(event.obj.root_ca) != bundle:
                    bundle = pki.trust_bundle(event.obj.root_ca)
                    self.notify_all()  # a root CA rotation: every node renews, then trusts only the new CA
                if not isinstance(event.obj, pb.Node):
                    continue
                if self._managers() != managers:
                    managers = self._managers()
                    self.notify_all()
                elif event.id in self._sessions:
                    self._sessions[event.id].changed.set()
        finally:
            self._store.unsubscribe(events)

    def notify_all(self) -> None:
        """Send every session a fresh session message (e.g. the managers changed)."""
        for session in self._sessions.values():
            session.changed.set()

    def end_all_sessions(self) -> None:
        """This manager lost leadership: every node must find the new leader."""
        for node_id in list(self._sessions):
            self.end_session(node_id)
        self._deadlines.clear()

    def end_session(self, node_id: str) -> None:
        session = self._sessions.pop(node_id, None)
        self._deadlines.pop(node_id, None)
        self._beats.pop(node_id, None)
        if session:
            session.changed.set()

    # ------------------------------------------------------------ store writes

    async def _set_ready(self, node_id: str, description: pb.NodeDescription, addr: str) -> None:
        def change(node):
            node.description.CopyFrom(description)
            node.status.state = pb.NodeStatus.READY
            node.status.message = ""
            node.status.addr = addr
        await modify(self._store, pb.Node, node_id, change, time.time_ns())

    async def _retire_tasks(self, node_id: str) -> None:
        """The tasks of a node that left: told to stop, and recorded stopped (the node removes
        their containers as it goes). Stopped, not finished: no restart delay holds their slots."""
        def plan() -> list:
            now = time.time_ns()
            return [update(_retired(task, now)) for task in self._store.tasks.on_node(node_id)
                    if task.desired_state < pb.SHUTDOWN or task.status.state < pb.COMPLETE]
        await write_fresh(self._store, plan, RETIRE_ATTEMPTS, f"the tasks of node {node_id}, which left,")

    async def _set_down(self, node_id: str, why: str) -> None:
        def change(node):
            node.status.state = pb.NodeStatus.DOWN
            node.status.message = why
        await modify(self._store, pb.Node, node_id, change, time.time_ns())
        log.warning("node %s is down: %s", node_id, why)

    # ------------------------------------------------------------ leader loop

    async def run_monitor(self) -> None:
        """Leader only: mark nodes Down when their heartbeats stop."""
        while not self._store.clusters.view():  # a new swarm: bootstrap has not written it yet
            await asyncio.sleep(0.05)
        grace = time.monotonic() + self.new_leader_grace()
        for node in self._store.nodes.view():
            if node.status.state != pb.NodeStatus.DOWN:
                self._deadlines.setdefault(node.id, grace)
        while True:
            tick = min(self.heartbeat_period() / 10, 0.25)
            due = time.monotonic() + tick
            await asyncio.sleep(tick)
            self._forgive(time.monotonic() - due)
            await self._expire(time.monotonic())

    def _forgive(self, late: float) -> None:
        """This loop ran late: the heartbeats that waited in it meanwhile are no node's fault
        (a leader busy with a large plan must not mark its nodes Down)."""
        if late > 0.05:
            for node_id in self._deadlines:
                self._deadlines[node_id] += late

    async def _expire(self, now: float) -> None:
        for node_id in list(self._deadlines):
            # Read again: a heartbeat may have come while an earlier node was being marked down.
            if self._deadlines.get(node_id, now + 1) > now:
                continue
            del self._deadlines[node_id]
            node = self._store.nodes.get(node_id)
            if node is None or node.status.state == pb.NodeStatus.DOWN:
                continue
            self.end_session(node_id)
            try:
                await self._set_down(node_id, HEARTBEAT_FAILURE)
            except Exception:
                log.exception("node %s: could not mark it down", node_id)
                self._deadlines[node_id] = now  # try again on the next pass


def _retired(task: pb.Task, now_ns: int) -> pb.Task:
    retired = pb.Task()
    retired.CopyFrom(task)
    retired.desired_state = max(task.desired_state, pb.SHUTDOWN)
    if task.status.state < pb.COMPLETE:
        retired.status.CopyFrom(pb.TaskStatus(state=pb.SHUTDOWN, message=LEFT, timestamp_ns=now_ns))
    retired.meta.updated_at_ns = now_ns
    return retired
