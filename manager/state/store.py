"""The replicated cluster store (DESIGN.md section 3).

Every write is one StoreBatch: a list of create / update / delete actions that
apply atomically and deterministically on every manager, each update and delete
naming the version it read. Apply reads no clock, no randomness and no files.
Readers use the local copy; leader loops subscribe to change events, which are
handed from pysyncobj's thread to the asyncio loop.
"""
import asyncio
import builtins
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.syncobj import FAIL_REASON, _RAFT_STATE

from covey.aio import NOTHING, get_within
from covey.errors import Conflict, DeadlineExceeded, NotFound, NO_LEADER, Unavailable
from manager.state.raft import safety
from proto import objects_pb2 as pb
from proto import store_pb2
log = logging.getLogger(__name__)

StoreObject = pb.Cluster | pb.Node | pb.Service | pb.Task
TABLES: dict[str, type[StoreObject]] = {"cluster": pb.Cluster, "node": pb.Node, "service": pb.Service,
                                        "task": pb.Task}
NAMES: dict[type, str] = {cls: name for name, cls in TABLES.items()}
T = TypeVar("T", pb.Cluster, pb.Node, pb.Service, pb.Task)


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


@dataclass(frozen=True)
class Event:
    kind: int          # store_pb2.StoreAction.Kind
    table: str
    id: str
    obj: object        # the object after the change (before, for DELETE)


class _State(SyncObjConsumer):
    """What Raft replicates: table -> id -> serialized object.

    Beside it, `objects` holds the same objects parsed (not replicated: rebuilt from the
    tables), so that the leader's loops read thousands of tasks without parsing them.
    Attributes set before SyncObjConsumer.__init__ are not part of the
    replicated state (pysyncobj serializes only the ones set after).
    """

    def __init__(self, on_applied: Callable[[list[Event]], None]):
        self._on_applied = on_applied
        self.objects: dict[str, dict[str, Any]] = {name: {} for name in TABLES}
        self.tasks_by_node: dict[str, dict[str, pb.Task]] = {}  # node ID -> task ID -> task
        super().__init__()
        self.tables: dict[str, dict[str, bytes]] = {name: {} for name in TABLES}

    def load(self, tables: dict) -> None:
        """A snapshot was loaded (at start, or sent by the leader)."""
        self.tables = {name: tables.get(name, {}) for name in TABLES}
        self.objects = {name: {i: TABLES[name].FromString(data) for i, data in self.tables[name].items()}
                        for name in TABLES}
        self.tasks_by_node = {}
        for task in self.objects["task"].values():
            self._index(task)

    def _index(self, task: pb.Task) -> None:
        self.tasks_by_node.setdefault(task.node_id, {})[task.id] = task

    def _unindex(self, task: pb.Task) -> None:
        tasks = self.tasks_by_node.get(task.node_id, {})
        tasks.pop(task.id, None)
        if not tasks:
            self.tasks_by_node.pop(task.node_id, None)

    @replicated
    def apply_batch(self, batch_bytes: bytes):
        batch = store_pb2.StoreBatch.FromString(batch_bytes)
        error = self._check(batch)
        if error:
            return ("conflict", error)
        events = [self._apply(action) for action in batch.actions]
        self._on_applied(events)
        return ("ok", None)

    def _check(self, batch) -> str | None:
        for action in batch.actions:
            if action.table not in TABLES:
                return f"unknown table {action.table!r}"
            current = self.objects[action.table].get(action.id)
            if action.kind == store_pb2.StoreAction.CREATE:
                if current is not None:
                    return f"{action.table} {action.id} already exists"
                continue
            if current is None:
                return f"{action.table} {action.id} not found"
            version = current.meta.version
            if version != action.expected_version:
                return (f"{action.table} {action.id} was changed by another writer "
                        f"(version {version}, expected {action.expected_version})")
        return None

    def _apply(self, action) -> Event:
        table, objects = self.tables[action.table], self.objects[action.table]
        is_task = action.table == "task"
        if is_task and action.id in objects:
            self._unindex(objects[action.id])
        if action.kind == store_pb2.StoreAction.DELETE:
            del table[action.id]
            return Event(action.kind, action.table, action.id, objects.pop(action.id))
        obj = TABLES[action.table].FromString(action.object)
        obj.meta.version = action.expected_version + 1 if action.kind == store_pb2.StoreAction.UPDATE else 1
        table[action.id] = obj.SerializeToString(deterministic=True)
        objects[action.id] = obj
        if isinstance(obj, pb.Task):
            self._index(obj)
        return Event(action.kind, action.table, action.id, obj)


class Table(Generic[T]):
    """The reads of one table on this manager's replica, typed by its object class."""

    def __init__(self, state: _State, cls: type[T]):
        self._state = state
        self.cls: type[T] = cls
        self.name = NAMES[cls]

    def get(self, obj_id: str) -> T | None:
        """A copy the caller may change, or None."""
        data = self._state.tables[self.name].get(obj_id)
        return self.cls.FromString(data) if data is not None else None

    def peek(self, obj_id: str) -> T | None:
        """One object as view() gives it (not a copy), or None."""
        obj: Any = self._state.objects[self.name].get(obj_id)
        return obj

    def list(self) -> list[T]:
        """Copies the caller may change."""
        return [self.cls.FromString(data) for data in list(self._state.tables[self.name].values())]

    def view(self) -> builtins.list[T]:
        """The objects themselves, not copies: for loops that read many and write none of
        them in place (changing one would change the store's view of it on this manager)."""
        objects: Any = list(self._state.objects[self.name].values())
        return objects


class TaskTable(Table[pb.Task]):
    def on_node(self, node_id: str) -> list[pb.Task]:
        """The tasks placed on one node, as view() gives them (not copies)."""
        return list(self._state.tasks_by_node.get(node_id, {}).values())


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
        self._state = _State(self._from_raft_thread)
        self.clusters = Table(self._state, pb.Cluster)
        self.nodes = Table(self._state, pb.Node)
        self.services = Table(self._state, pb.Service)
        self.tasks = TaskTable(self._state, pb.Task)
        self._named: dict[str, Table[Any]] = {t.name: t for t in (self.clusters, self.nodes, self.services,
                                                                  self.tasks)}
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
        for _ in range(5):  # read from another thread: retry if a set changed under us
            try:
                return self._raft.getStatus()
            except RuntimeError:
                continue
        return self._raft.getStatus()

    def members(self) -> dict[str, bool]:
        """Raft address of every member -> whether this replica is connected to it."""
        status = self.status()
        prefix = "partner_node_status_server_"
        members = {key[len(prefix):]: value == 2 for key, value in status.items() if key.startswith(prefix)}
        members[self.self_addr] = True
        return members

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

    def tables(self) -> dict[str, dict[str, bytes]]:
        """A copy of the replicated state (for force-new-cluster and backups)."""
        return {name: dict(table) for name, table in self._state.tables.items()}

    def table(self, cls: type[T]) -> Table[T]:
        """The table of objects of class `cls` (store.nodes is store.table(pb.Node))."""
        return self._named[NAMES[cls]]

    # legacy: removed when controlapi/dispatcher/ca move to typed tables
    def table_named(self, name: str) -> Table[Any]:
        return self._named[name]

    # legacy: removed when controlapi/dispatcher/ca move to typed tables
    def get(self, table: str, obj_id: str):
        return self._named[table].get(obj_id)

    # legacy: removed when controlapi/dispatcher/ca move to typed tables
    def peek(self, table: str, obj_id: str):
        return self._named[table].peek(obj_id)

    # legacy: removed when controlapi/dispatcher/ca move to typed tables
    def list(self, table: str) -> list:
        return self._named[table].list()

    # legacy: removed when controlapi/dispatcher/ca move to typed tables
    def view(self, table: str) -> builtins.list:
        return self._named[table].view()

    # legacy: removed when controlapi/dispatcher/ca move to typed tables
    def tasks_on(self, node_id: str) -> builtins.list[pb.Task]:
        return self.tasks.on_node(node_id)

    async def write(self, actions: builtins.list) -> None:
        """Commit one batch; Conflict if a version check fails, Unavailable without a leader."""
        future = self._loop.create_future()

        def done(result, error):
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(_settle, future, result, error)

        if not self.has_quorum():
            raise Unavailable(NO_LEADER)  # fail at once rather than queue without quorum
        batch = store_pb2.StoreBatch(actions=actions).SerializeToString()
        self._state.apply_batch(batch, callback=done)
        try:
            async with asyncio.timeout(self._timings.write_timeout):
                outcome, detail = await future
        except TimeoutError:
            if not self.has_quorum():
                raise Unavailable(NO_LEADER) from None
            raise DeadlineExceeded("the write was not committed in time; it may still apply") from None
        if outcome == "conflict":
            raise Conflict(detail)

    async def wait_ready(self, timeout: float) -> None:
        deadline = self._loop.time() + timeout
        while not self.ready():
            if self._loop.time() > deadline:
                raise Unavailable(NO_LEADER)
            await asyncio.sleep(0.02)

    def close(self) -> None:
        self._raft.destroy_synchronous()


def _log_membership(change: str, addr: str):
    def done(result, error):
        if error == FAIL_REASON.SUCCESS:
            log.info("raft: member %s %s committed", addr, "added" if change == "add" else "removed")
        else:
            log.warning("raft: %s of member %s failed (reason %s)", change, addr, error)
    return done


def _settle(future: asyncio.Future, result, error) -> None:
    if future.done():
        return
    if error == FAIL_REASON.SUCCESS:
        future.set_result(result)
    elif error in (FAIL_REASON.NOT_LEADER, FAIL_REASON.MISSING_LEADER, FAIL_REASON.LEADER_CHANGED,
                   FAIL_REASON.DISCARDED):
        future.set_exception(Unavailable(NO_LEADER))
    else:
        future.set_exception(Unavailable(f"the write failed in Raft (reason {error})"))


# ---------------------------------------------------------------- leader loops

# The share of the event loop's time one leader loop may take. A pass over a large swarm
# blocks the loop (planning is CPU work); without a pause after it, passes would run back to
# back while changes stream in, and RPCs, heartbeats among them, would wait behind them.
LOOP_SHARE = 0.25


async def each_change(store: "Store", period: float, step: Callable,
                      kinds: tuple[type, ...] | None = None) -> None:
    """Run `await step()` now, after every change to the store (to objects of one of `kinds`,
    when given), and at least every `period` (for what depends on time, such as restart delays).
    After a step that kept the CPU busy for t seconds (what it returns; else the time it took),
    the next one waits t * (1 - LOOP_SHARE) / LOOP_SHARE, and covers every change meanwhile.
    Runs until cancelled."""
    events = store.subscribe()
    try:
        while True:
            started = time.monotonic()
            busy = await step()
            took = time.monotonic() - started if busy is None else busy
            deadline = time.monotonic() + period
            while (event := await get_within(events, deadline - time.monotonic())) is not NOTHING:
                if kinds is None or isinstance(event.obj, kinds):
                    break
            await asyncio.sleep(max(0.0, started + took / LOOP_SHARE - time.monotonic()))
            while not events.empty():
                events.get_nowait()
    finally:
        store.unsubscribe(events)


async def run_planner(store: "Store", period: float, plan: Callable) -> None:
    """The leader loop around a pure `plan(services, tasks, nodes) -> actions`: it plans in a
    worker thread, then writes. A pass over 100,000 tasks is about a second of CPU; inline, it
    would hold the event loop, and heartbeats would wait behind it (the interpreter switches
    threads every few milliseconds). The plan reads view() objects, which nothing changes."""
    async def step() -> float:
        started = time.monotonic()
        actions = await asyncio.to_thread(plan, store.services.view(), store.tasks.view(), store.nodes.view())
        busy = time.monotonic() - started
        await write_plan(store, actions)  # waits for Raft, which leaves the CPU to the others
        return busy
    await each_change(store, period, step)


# Actions per write of a leader loop's plan. Placing 100,000 tasks is one plan; as one Raft
# entry it would hold the event loop for seconds (serializing, applying, publishing events)
# and make every follower take tens of megabytes at once.
PLAN_CHUNK = 1000


async def write_plan(store: "Store", actions: list) -> None:
    """Write a loop's planned actions, PLAN_CHUNK at a time (each action stands alone: the
    loops derive every pass from what is stored, so a plan written in part is taken up again).
    A conflict is fine: the change that caused it wakes the loop, which plans again from what
    is there now."""
    for start in range(0, len(actions), PLAN_CHUNK):
        try:
            await store.write(actions[start:start + PLAN_CHUNK])
        except Conflict:
            return


# ---------------------------------------------------------------- write helpers

def create(obj: StoreObject | str, legacy_obj: StoreObject | None = None) -> store_pb2.StoreAction:
    """Create `obj` in the table of its class. (Legacy form: create(table, obj).)"""
    obj = _legacy(obj, legacy_obj)
    return store_pb2.StoreAction(kind=store_pb2.StoreAction.CREATE, table=NAMES[type(obj)], id=obj.id,
                                 object=obj.SerializeToString(deterministic=True))


def update(obj: StoreObject | str, legacy_obj: StoreObject | None = None) -> store_pb2.StoreAction:
    """Replace `obj`, if its meta.version is still the stored one. (Legacy: update(table, obj).)"""
    obj = _legacy(obj, legacy_obj)
    return store_pb2.StoreAction(kind=store_pb2.StoreAction.UPDATE, table=NAMES[type(obj)], id=obj.id,
                                 expected_version=obj.meta.version,
                                 object=obj.SerializeToString(deterministic=True))


def delete(obj: StoreObject | str, legacy_obj: StoreObject | None = None) -> store_pb2.StoreAction:
    """Delete `obj`, if its meta.version is still the stored one. (Legacy: delete(table, obj).)"""
    obj = _legacy(obj, legacy_obj)
    return store_pb2.StoreAction(kind=store_pb2.StoreAction.DELETE, table=NAMES[type(obj)], id=obj.id,
                                 expected_version=obj.meta.version)


# legacy: removed when controlapi/dispatcher/ca move to typed tables (then take `obj` alone)
def _legacy(obj: StoreObject | str, legacy_obj: StoreObject | None) -> StoreObject:
    if not isinstance(obj, str):
        return obj
    if legacy_obj is None or NAMES[type(legacy_obj)] != obj:
        raise TypeError(f"expected a {obj} object, got {type(legacy_obj).__name__}")
    return legacy_obj


async def modify(store: Store, cls: type[T] | str, obj_id: str, change: Callable[[T], object],
                 now_ns: int, attempts: int = 10) -> T:
    """Read-modify-write one object of class `cls`, retrying when another writer got there
    first. `change(obj)` edits the object in place (it may raise to refuse); returns the
    object as written. (A table name for `cls` is the legacy form.)
    """
    def changed(obj: T) -> store_pb2.StoreAction:
        change(obj)
        obj.meta.updated_at_ns = now_ns
        return update(obj)

    table: Table[T] = store.table_named(cls) if isinstance(cls, str) else store.table(cls)
    obj = await _retrying(store, table, obj_id, changed, attempts)
    obj.meta.version += 1
    return obj


async def remove(store: Store, cls: type[T], obj_id: str, attempts: int = 10) -> T:
    """Delete one object whatever changed it meanwhile: a removal asked for by a user must
    not fail because a loop or another client updated the object after it was read."""
    return await _retrying(store, store.table(cls), obj_id, delete, attempts)


async def _retrying(store: Store, table: Table[T], obj_id: str,
                    action: Callable[[T], store_pb2.StoreAction], attempts: int) -> T:
    """Write `action(obj)` for the stored object, read again after each version conflict;
    NotFound once it is gone, Conflict when it kept changing for `attempts` tries."""
    for _ in range(attempts):
        obj = table.get(obj_id)
        if obj is None:
            raise NotFound(f"{table.name} {obj_id} not found")
        try:
            await store.write([action(obj)])
        except Conflict:
            continue
        return obj
    raise Conflict(f"{table.name} {obj_id} kept changing; try again")
