"""The replicated cluster store (docs/design.md, "Control plane"): the asyncio face of the Raft state
machine (manager/state/tables.py). Readers use the local copy through typed tables
(store.nodes, store.tasks, ...); writes are batches of actions (manager/state/actions.py),
committed through Raft; leader loops subscribe to change events (manager/state/loops.py),
which are handed from pysyncobj's thread to the asyncio loop.
"""
import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.syncobj import _RAFT_STATE, FAIL_REASON, monotonicTime

from covey.errors import (
    MAYBE_APPLIED,
    NO_LEADER,
    NOT_APPLIED,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    Outcome,
    Unavailable,
)
from manager.state.formats import FORMAT_VERSION
from manager.state.raft import safety
from manager.state.raft.readindex import ReadIndex
from manager.state.tables import Event, State, T, Table, TaskTable
from proto import objects_pb2 as pb
from proto import store_pb2

log = logging.getLogger(__name__)

LEAD_POLL = 0.01  # s: how often a new leader looks whether it has applied its election no-op
RAFT_READ_ATTEMPTS = 5  # reads of pysyncobj's state that a concurrent change may spoil
R = TypeVar("R")
READ_GRACE = 0.5  # s: beyond read_timeout, for pysyncobj's thread to refuse an expired read itself


@dataclass
class RaftTimings:
    """pysyncobj's knobs; every one is a setting so tests can run fast."""
    election_min: float = 0.4
    election_max: float = 1.4
    append_period: float = 0.01     # ~10 ms commit latency instead of 100 ms
    tick_period: float = 0.005      # pysyncobj's loop period bounds every latency
    connection_timeout: float = 3.5
    leader_fallback: float = 1.4    # a leader cut off from the majority steps down (= election_max)
    write_timeout: float = 10.0     # a write not committed by then fails
    snapshot_timeout: float = 10.0  # Store.snapshot: pysyncobj's thread must take the copy by then
    read_timeout: float = 2.0       # a read the leader has not confirmed current by then is refused
    unreachable_after: float = 3.0  # the leader shows a manager Unreachable once silent this long


@dataclass(frozen=True)
class StoreCopy:
    """Every table (name -> id -> serialized object) as of one applied Raft entry."""
    index: int
    tables: dict[str, dict[str, bytes]]


class Store:
    """The asyncio face of the Raft state machine."""

    def __init__(self, raft_dir: Path, self_addr: str, peers: list[str], key: bytes,
                 bind_addr: str, timings: RaftTimings, at_rest_key: bytes):
        """`key` is the cluster's Raft key (authenticates and encrypts peer traffic);
        `at_rest_key` is this manager's own key for its journal and snapshots."""
        self._loop = asyncio.get_running_loop()
        self._timings = timings
        # None -> queues of every event; a node ID -> queues of its tasks' events only
        self._subscribers: dict[str | None, list[asyncio.Queue]] = {}
        self._subscribed_to: dict[asyncio.Queue, str | None] = {}
        self._leadership_callbacks: list[Callable[[bool], None]] = []
        self._noop_index = 0  # the index of the no-op of this manager's current leadership
        self._state = State(self._from_raft_thread)
        self.clusters = Table(self._state, pb.Cluster)
        self.nodes = Table(self._state, pb.Node)
        self.services = Table(self._state, pb.Service)
        self.tasks = TaskTable(self._state, pb.Task)
        self.networks = Table(self._state, pb.Network)
        self.stacks = Table(self._state, pb.Stack)
        self.secrets = Table(self._state, pb.Secret)
        self.configs = Table(self._state, pb.Config)
        self._by_class: dict[type, Table[Any]] = {t.cls: t for t in (self.clusters, self.nodes, self.services,
                                                                     self.tasks, self.networks, self.stacks,
                                                                     self.secrets, self.configs)}
        # Journal fsynced once per batch before anything is sent, sealed at rest; snapshots
        # as protobuf; only real term conflicts truncate the log (manager/state/raft/safety.py).
        raft_options, transport = safety.syncobj_options(
            raft_dir, at_rest_key, lambda: self._state.tables, self._set_tables)
        conf = SyncObjConf(
            **raft_options,
            password=key.hex(),
            bindAddress=bind_addr,
            raftMinTimeout=timings.election_min,
            raftMaxTimeout=timings.election_max,
            appendEntriesPeriod=timings.append_period,
            autoTickPeriod=timings.tick_period,
            connectionTimeout=timings.connection_timeout,
            leaderFallbackTimeout=timings.leader_fallback,
            dynamicMembershipChange=True,
            onStateChanged=self._on_raft_state,
        )
        self.self_addr = self_addr
        self._raft = SyncObj(self_addr, peers, conf, consumers=[self._state], transportClass=transport)
        self._read_index = ReadIndex(self._raft, lambda: self._noop_index, timings.read_timeout)
        raft_transport = self._raft._SyncObj__transport
        raft_transport.setOnMessageReceivedCallback(
            self._read_index.route(raft_transport._onMessageReceivedCallback))

    def _set_tables(self, tables: dict) -> None:
        self._state.load(tables)

    # ------------------------------------------------------------ raft thread -> loop

    def _from_raft_thread(self, events: list[Event]) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._publish, events)

    def _publish(self, events: list[Event]) -> None:
        everything = self._subscribers.get(None, ())
        for event in events:
            for queue in everything:
                queue.put_nowait(event)
            if isinstance(event.obj, pb.Task):
                for queue in self._subscribers.get(event.obj.node_id, ()):
                    queue.put_nowait(event)

    def _on_raft_state(self, old: int, new: int) -> None:
        was, now = old == _RAFT_STATE.LEADER, new == _RAFT_STATE.LEADER
        if now and not was:
            # Called as pysyncobj starts to lead, right before it appends its no-op: that
            # entry's index is the next one (see leads_current).
            self._noop_index = self._raft._SyncObj__getCurrentLogIndex() + 1
        if was != now and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._leadership_changed, now)

    def _leadership_changed(self, leader: bool) -> None:
        log.info("raft: this manager %s the leader", "is now" if leader else "is no longer")
        for callback in list(self._leadership_callbacks):
            callback(leader)

    # ------------------------------------------------------------ public API

    def on_leadership(self, callback: Callable[[bool], None]) -> None:
        self._leadership_callbacks.append(callback)
        if self.is_leader():
            callback(True)

    def subscribe(self, tasks_of: str | None = None) -> asyncio.Queue:
        """A queue of every change event; with `tasks_of` (a node ID), only the events of the
        tasks on that node. Each node's assignments stream needs just its own: sent every
        event, a swarm of N nodes would do N times the work per change."""
        queue: asyncio.Queue = asyncio.Queue()
        self._subscribed_to[queue] = tasks_of
        self._subscribers.setdefault(tasks_of, []).append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        if queue not in self._subscribed_to:
            return
        key = self._subscribed_to.pop(queue)
        self._subscribers[key].remove(queue)
        if not self._subscribers[key]:
            del self._subscribers[key]

    def is_leader(self) -> bool:
        return self._raft._isLeader()

    def leads_current(self) -> bool:
        """This manager leads and has applied the no-op pysyncobj appends at its election, so
        its state holds every write committed before it (Raft's rule before a leader serves:
        a new leader's log has them, but it learns they are committed only then)."""
        return self._raft._isLeader() and self._raft._SyncObj__raftLastApplied >= self._noop_index

    async def wait_leads_current(self) -> None:
        """Until leads_current(); a leader that loses leadership meanwhile is cancelled."""
        while not self.leads_current():
            await asyncio.sleep(LEAD_POLL)

    def leader_addr(self) -> str | None:
        leader = self._raft._getLeader()
        return leader.address if leader is not None else None

    def has_quorum(self) -> bool:
        """A leader is known and this replica is connected to a majority of the members."""
        return self._raft._getLeader() is not None and self._raft.hasQuorum

    def ready(self) -> bool:
        """Quorum, and this replica has applied what the leader had committed when it joined."""
        return self.has_quorum() and self._raft.isReady()

    def status(self) -> dict:
        return _read_raft(self._raft.getStatus)

    def disk_error(self) -> str | None:
        """Why this manager's Raft journal cannot be written now (disk full, read-only),
        or None. While it is set, this manager sends no Raft messages (raft/journal.py)."""
        return getattr(self._raft._SyncObj__raftLog, "disk_error", None)

    def members(self) -> dict[str, bool]:
        """Raft address of every member -> whether this replica is connected to it."""
        status = self.status()
        prefix = "partner_node_status_server_"
        members = {key[len(prefix):]: value == 2 for key, value in status.items() if key.startswith(prefix)}
        members[self.self_addr] = True
        return members

    def answering(self, within: float) -> dict[str, bool]:
        """On the leader: Raft address of every other member -> whether it answered an append
        in the last `within` seconds (a member whose disk is full, or that is paused, stays
        connected but answers nothing). Empty on a follower: it hears from the leader only."""
        if not self._raft._isLeader():
            return {}
        heard = _read_raft(lambda: dict(self._raft._SyncObj__lastResponseTime))
        now, connected = monotonicTime(), self.members()   # pysyncobj's clock (MONOTONIC_RAW)
        return {node.id: connected.get(node.id, False) and now - at <= within for node, at in heard.items()}

    def caught_up(self) -> bool:
        """Everything this replica knows to be committed has been applied."""
        status = self.status()
        return status["last_applied"] >= status["commit_idx"]

    async def add_member(self, raft_addr: str) -> None:
        """Propose a new Raft member. Not awaited to commit: with the new member counted
        in the quorum, the commit needs that member to be running, and it starts only
        once it is told it is one."""
        self._raft.addNodeToCluster(raft_addr, callback=_log_membership("add", raft_addr))

    async def remove_member(self, raft_addr: str, wait: bool = True) -> None:
        """Remove a Raft member and (unless not `wait`) wait until the change is committed."""
        if not wait:
            self._raft.removeNodeFromCluster(raft_addr, callback=_log_membership("remove", raft_addr))
            return
        future = self._loop.create_future()

        def done(result, error):
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(_settle, future, result, error)

        self._raft.removeNodeFromCluster(raft_addr, callback=done)
        try:
            async with asyncio.timeout(self._timings.write_timeout):
                await future
        except TimeoutError:
            raise Unavailable(f"removing {raft_addr} from Raft did not commit in time") from None

    async def read_barrier(self) -> None:
        """Returns once this replica has applied every write committed before the call (the
        leader's read index, manager/state/raft/readindex.py): a read after it is
        linearizable. Unavailable, saying why, when that cannot be confirmed in time."""
        future = self._loop.create_future()

        def done(index: int | None, why: str) -> None:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(_settle_read, future, why)

        self._read_index.request(done)
        try:
            async with asyncio.timeout(self._timings.read_timeout + READ_GRACE):
                await future
        except TimeoutError:
            raise Unavailable(f"this manager could not confirm within {self._timings.read_timeout:g}s that its "
                              "state is current (its Raft thread did not answer)") from None

    def table(self, cls: type[T]) -> Table[T]:
        """The table of objects of class `cls` (store.nodes is store.table(pb.Node))."""
        return self._by_class[cls]

    async def write(self, actions: list) -> None:
        """Commit one batch; Conflict if a version check fails, Unavailable without a leader."""
        future = self._loop.create_future()

        def done(result, error):
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(_settle, future, result, error)

        if not self.has_quorum():  # fail at once rather than queue without quorum
            raise Unavailable(f"{NO_LEADER}; the change was {NOT_APPLIED}")
        batch = store_pb2.StoreBatch(actions=actions, format_version=FORMAT_VERSION).SerializeToString()
        self._state.apply_batch(batch, callback=done)
        try:
            async with asyncio.timeout(self._timings.write_timeout):
                outcome, detail = await future
        except TimeoutError:
            # Proposed (or queued for a leader to come): it may still commit.
            raise DeadlineExceeded(f"the change was not committed within {self._timings.write_timeout:g}s "
                                   "as far as this manager saw"
                                   + ("" if self.has_quorum() else f" and {NO_LEADER}")
                                   + f"; it {MAYBE_APPLIED}") from None
        if outcome == "conflict":
            raise Conflict(detail)
        if outcome == "refused":
            raise FailedPrecondition(detail)

    async def snapshot(self) -> StoreCopy:
        """A copy of every table at one applied index, for backups. Entries are applied on
        pysyncobj's thread, so the copy is taken there, at the end of a tick, between two
        entries (as the Raft snapshots are: raft/snapshots.py). Copying the dicts of bytes is
        all it does there: 10,000 tasks take about a millisecond."""
        future = self._loop.create_future()
        taken = False

        def copy() -> None:  # on pysyncobj's thread, once
            nonlocal taken
            if not taken and not self._loop.is_closed():
                taken = True
                result = StoreCopy(self._raft.raftLastApplied,
                                   {name: dict(table) for name, table in self._state.tables.items()})
                self._loop.call_soon_threadsafe(_settle, future, result, FAIL_REASON.SUCCESS)

        self._raft.addOnTickCallback(copy)
        try:
            async with asyncio.timeout(self._timings.snapshot_timeout):
                return await future
        except TimeoutError:
            raise Unavailable("this manager's Raft thread did not take a copy of the store in time") from None
        finally:
            self._raft.removeOnTickCallback(copy)

    async def wait_ready(self, timeout: float) -> None:
        deadline = self._loop.time() + timeout
        while not self.ready():
            if self._loop.time() > deadline:
                raise Unavailable(NO_LEADER)
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self._read_index.stop()
        self._raft.destroy_synchronous()
        self._read_index.close()


def _log_membership(change: str, addr: str):
    def done(result, error):
        if error == FAIL_REASON.SUCCESS:
            log.info("raft: member %s %s committed", addr, "added" if change == "add" else "removed")
        else:
            log.warning("raft: %s of member %s failed (reason %s)", change, addr, error)
    return done


# pysyncobj's failures of a command: those where the leader never appended it, or a
# different entry took its place in the log, and those where it may still commit.
_NOT_PROPOSED = (FAIL_REASON.NOT_LEADER, FAIL_REASON.MISSING_LEADER, FAIL_REASON.REQUEST_DENIED,
                 FAIL_REASON.QUEUE_FULL)
_PROPOSED_UNKNOWN = (FAIL_REASON.LEADER_CHANGED, FAIL_REASON.UNKNOWN_OUTCOME)


def raft_failure(error) -> Unavailable:
    """The error for a command pysyncobj failed with `error`, saying whether it may apply."""
    if error in _NOT_PROPOSED:
        return Unavailable(f"{NO_LEADER}; the change was {NOT_APPLIED}")
    if error == FAIL_REASON.DISCARDED:   # a later leader put another entry at its index
        return Unavailable(f"the leader changed and the change was dropped from the log; it was {NOT_APPLIED}")
    if error in _PROPOSED_UNKNOWN:
        return Unavailable(f"the leader changed after the change was proposed; it {MAYBE_APPLIED}",
                           outcome=Outcome.UNKNOWN)
    return Unavailable(f"the write failed in Raft (reason {error}); it {MAYBE_APPLIED}", outcome=Outcome.UNKNOWN)


def _settle(future: asyncio.Future, result, error) -> None:
    if future.done():
        return
    if error == FAIL_REASON.SUCCESS:
        future.set_result(result)
    else:
        future.set_exception(raft_failure(error))


def _settle_read(future: asyncio.Future, why: str) -> None:
    if future.done():
        return
    if why:
        future.set_exception(Unavailable(f"{why}: refused rather than answered from a copy that may be stale; "
                                         f"the request was {NOT_APPLIED}"))
    else:
        future.set_result(None)


def _read_raft(read: Callable[[], R]) -> R:
    """`read()` of pysyncobj's state from outside its thread: a set or dict it changes
    meanwhile raises RuntimeError; read again (the last try raises)."""
    for _ in range(RAFT_READ_ATTEMPTS - 1):
        try:
            return read()
        except RuntimeError:
            continue
    return read()
