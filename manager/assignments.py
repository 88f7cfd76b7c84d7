"""The dispatcher's task half: what each node must run, and what it reports back.

Assignments stream: the full set of the node's tasks first, then numbered increments
as tasks change. Status updates come in batches; every one that would move a task's
state backwards is dropped (DESIGN.md section 3), which makes replays and reconnects safe.
"""
import asyncio
import logging
import time

from covey.aio import NOTHING, get_within
from covey.errors import Conflict, NotFound, PermissionDenied
from covey.rpc import stream, unary
from manager import authz
from manager import store as st
from manager.ca import cluster_of
from proto import covey_pb2 as pb

log = logging.getLogger(__name__)

STATUS_WRITE_ATTEMPTS = 10


def assigned_to(task: pb.Task, node_id: str) -> bool:
    """A task the node must know about: placed on it, and past scheduling."""
    return task.node_id == node_id and task.status.state >= pb.ASSIGNED


class AssignmentsMixin:
    """Mixed into Dispatcher, which provides _store, _sessions and _session_of()."""

    @stream
    async def Assignments(self, request, context):
        node_id = self._session_of(context, request.session_id)
        events = self._store.subscribe_tasks_of(node_id)  # before the first read: no change falls between
        try:
            mine = [t for t in self._store.tasks_on(node_id) if assigned_to(t, node_id)]
            sent = {t.id: t.meta.version for t in mine}
            yield pb.AssignmentsMessage(type=pb.AssignmentsMessage.COMPLETE, updated=mine)
            sequence = 0
            while self._session_alive(node_id, request.session_id):
                changed = await _next_batch(events, timeout=1.0)
                message = _increment(changed, sent, node_id)
                if message is not None:
                    sequence += 1
                    message.sequence = sequence
                    yield message
        finally:
            self._store.unsubscribe(events)

    @unary
    async def UpdateTaskStatus(self, request, context):
        node_id = self._session_of(context, request.session_id)
        updates = {u.task_id: u.status for u in request.updates}
        for _ in range(STATUS_WRITE_ATTEMPTS):
            actions = _status_actions(self._store, node_id, updates)
            if not actions:
                break
            try:
                await self._store.write(actions)
                break
            except Conflict:
                continue  # the task changed meanwhile (e.g. its desired state): read again
        return pb.UpdateTaskStatusResponse()

    def _session_of(self, context, session_id: str) -> str:
        caller = authz.require_node(authz.identify(context, cluster_of(self._store)))
        if not self._session_alive(caller.node_id, session_id):
            raise NotFound("session invalid: open a new session")
        return caller.node_id

    def _session_alive(self, node_id: str, session_id: str) -> bool:
        session = self._sessions.get(node_id)
        return session is not None and session.session_id == session_id


async def _next_batch(events: asyncio.Queue, timeout: float) -> list:
    """The events that arrived together (after waiting up to `timeout` for the first)."""
    first = await get_within(events, timeout)
    if first is NOTHING:
        return []
    batch = [first]
    while not events.empty():
        batch.append(events.get_nowait())
    return batch


def _increment(changed: list, sent: dict, node_id: str) -> pb.AssignmentsMessage | None:
    updated, removed = {}, set()
    for event in changed:
        if event.table != "task":
            continue
        task = event.obj
        if event.kind != pb.StoreAction.DELETE and assigned_to(task, node_id):
            if sent.get(task.id) != task.meta.version:
                updated[task.id] = task
        elif task.id in sent:
            removed.add(task.id)
    for task_id, task in updated.items():
        sent[task_id] = task.meta.version
    for task_id in removed - set(updated):
        sent.pop(task_id, None)
    if not updated and not removed:
        return None
    return pb.AssignmentsMessage(type=pb.AssignmentsMessage.INCREMENTAL, updated=list(updated.values()),
                                 removed=sorted(removed - set(updated)))


def _status_actions(store: st.Store, node_id: str, updates: dict) -> list:
    actions = []
    for task_id, status in updates.items():
        task = store.get("task", task_id)
        if task is None:
            continue  # removed meanwhile: nothing to record
        if task.node_id != node_id:
            raise PermissionDenied(f"task {task_id} is not assigned to node {node_id}")
        if status.state <= task.status.state:
            continue  # never backwards (a replay, or a report that raced a newer one)
        task.status.CopyFrom(status)
        task.status.timestamp_ns = task.status.timestamp_ns or time.time_ns()
        task.meta.updated_at_ns = time.time_ns()
        actions.append(st.update("task", task))
    return actions
