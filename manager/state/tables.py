"""The store's typed tables and the deterministic apply (docs/design.md, "Control plane").

`State` is what Raft replicates: it applies each StoreBatch atomically, checking the
version each update and delete read. Apply reads no clock, no randomness and no files.
`Table` is the typed read face of one table on this manager's replica.
"""
import builtins
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pysyncobj import SyncObjConsumer, replicated

from manager.state import formats
from manager.state.formats import NAMES, TABLES, StoreObject
from manager.state.raft.crash import crash_point
from proto import objects_pb2 as pb
from proto import store_pb2

T = TypeVar("T", pb.Cluster, pb.Node, pb.Service, pb.Task, pb.Network, pb.Stack, pb.Secret, pb.Config)


@dataclass(frozen=True)
class Event:
    """One applied change. Its table is the object's class: isinstance(event.obj, pb.Node)."""
    kind: int          # store_pb2.StoreAction.Kind
    id: str
    obj: StoreObject   # the object after the change (before, for DELETE)


class State(SyncObjConsumer):
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
        crash_point("apply.before_entry")
        try:
            batch = formats.decode_batch(batch_bytes)
        except formats.FormatError as exc:
            return ("refused", str(exc))
        error = self._check(batch)
        if error:
            return ("conflict", error)
        events = [self._apply(action) for action in batch.actions]
        self._on_applied(events)
        return ("ok", None)

    def _check(self, batch: store_pb2.StoreBatch) -> str | None:
        for action in batch.actions:
            table = action.WhichOneof("object")
            if table is None:
                return "a store action names no object"
            obj_id = getattr(action, table).id
            current = self.objects[table].get(obj_id)
            if action.kind == store_pb2.StoreAction.CREATE:
                if current is not None:
                    return f"{table} {obj_id} already exists"
                continue
            if current is None:
                return f"{table} {obj_id} not found"
            version = current.meta.version
            if version != action.expected_version:
                return (f"{table} {obj_id} was changed by another writer "
                        f"(version {version}, expected {action.expected_version})")
        return None

    def _apply(self, action: store_pb2.StoreAction) -> Event:
        name = action.WhichOneof("object")
        assert name is not None  # _check refused the batch otherwise
        obj_id = getattr(action, name).id
        table, objects = self.tables[name], self.objects[name]
        if isinstance(objects.get(obj_id), pb.Task):
            self._unindex(objects[obj_id])
        if action.kind == store_pb2.StoreAction.DELETE:
            del table[obj_id]
            return Event(action.kind, obj_id, objects.pop(obj_id))
        given = getattr(action, name)
        given.meta.version = action.expected_version + 1 if action.kind == store_pb2.StoreAction.UPDATE else 1
        table[obj_id] = given.SerializeToString(deterministic=True)
        obj = objects[obj_id] = TABLES[name].FromString(table[obj_id])  # not tied to the batch's memory
        if isinstance(obj, pb.Task):
            self._index(obj)
        return Event(action.kind, obj_id, obj)


class Table(Generic[T]):
    """The reads of one table on this manager's replica, typed by its object class."""

    def __init__(self, state: State, cls: type[T]):
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
