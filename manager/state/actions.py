"""Store actions: what a write is made of (create / update / delete, each built from the
object itself, its table picked from its class), and the helpers that write them:
read-modify-write with retries, removal, a leader loop's plan in chunks.
"""
from collections.abc import Callable
from typing import TYPE_CHECKING

from covey.errors import Conflict, NotFound
from manager.state.formats import NAMES, StoreObject
from manager.state.tables import T, Table
from proto import store_pb2

if TYPE_CHECKING:
    from manager.state.store import Store


def create(obj: StoreObject) -> store_pb2.StoreAction:
    """Create `obj` in the table of its class."""
    return _action(store_pb2.StoreAction.CREATE, obj)


def update(obj: StoreObject) -> store_pb2.StoreAction:
    """Replace `obj`, if its meta.version is still the stored one."""
    return _action(store_pb2.StoreAction.UPDATE, obj, obj.meta.version)


def delete(obj: StoreObject) -> store_pb2.StoreAction:
    """Delete `obj`, if its meta.version is still the stored one."""
    return _action(store_pb2.StoreAction.DELETE, type(obj)(id=obj.id), obj.meta.version)


def _action(kind: store_pb2.StoreAction.Kind, obj: StoreObject, expected_version: int = 0) -> store_pb2.StoreAction:
    action = store_pb2.StoreAction(kind=kind, expected_version=expected_version)
    getattr(action, NAMES[type(obj)]).CopyFrom(obj)
    return action


async def modify(store: "Store", cls: type[T], obj_id: str, change: Callable[[T], object],
                 now_ns: int, attempts: int = 10) -> T:
    """Read-modify-write one object of class `cls`, retrying when another writer got there
    first. `change(obj)` edits the object in place (it may raise to refuse); returns the
    object as written.
    """
    def changed(obj: T) -> store_pb2.StoreAction:
        change(obj)
        obj.meta.updated_at_ns = now_ns
        return update(obj)

    obj = await _retrying(store, store.table(cls), obj_id, changed, attempts)
    obj.meta.version += 1
    return obj


async def remove(store: "Store", cls: type[T], obj_id: str, attempts: int = 10) -> T:
    """Delete one object whatever changed it meanwhile: a removal asked for by a user must
    not fail because a loop or another client updated the object after it was read."""
    return await _retrying(store, store.table(cls), obj_id, delete, attempts)


async def _retrying(store: "Store", table: Table[T], obj_id: str,
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


async def write_fresh(store: "Store", plan: Callable[[], list[store_pb2.StoreAction]],
                      attempts: int, what: str) -> None:
    """Write `plan()`, planned anew from what is stored after each version conflict; nothing
    when it plans nothing; Conflict naming `what` when it kept conflicting `attempts` times."""
    for _ in range(attempts):
        actions = plan()
        if not actions:
            return
        try:
            return await store.write(actions)
        except Conflict:
            continue  # another writer got there first: read again
    raise Conflict(f"{what} kept conflicting after {attempts} attempts")


PLAN_CHUNK = 1000


async def write_chunks(store: "Store", actions: list) -> None:
    """Write many actions PLAN_CHUNK per Raft entry (a service of 100,000 tasks would be one
    15 MB entry); each chunk commits on its own."""
    for start in range(0, len(actions), PLAN_CHUNK):
        await store.write(actions[start:start + PLAN_CHUNK])


async def write_plan(store: "Store", actions: list) -> None:
    """Write a loop's planned actions in chunks (each action stands alone: the loops derive
    every pass from what is stored, so a plan written in part is taken up again). A conflict
    is fine: the change that caused it wakes the loop, which plans again from what is there."""
    try:
        await write_chunks(store, actions)
    except Conflict:
        return
