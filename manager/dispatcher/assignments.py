"""The dispatcher's task half: what each node must run, and what it reports back.

Assignments stream: the full set of the node's tasks first, then numbered increments
as tasks change. The views of the overlay networks its tasks use go with them
(networkviews.py): complete in the first message, then what changed; so do the secrets and
configs its tasks use (secretfeed.py).
Status updates come in batches; every one that would move a task's state backwards is dropped
(docs/design.md, "Control plane"), which makes replays and reconnects safe.
The batches of all nodes are written together (status.StatusWriter): one Raft write per round.
"""
import asyncio
import logging
from collections.abc import AsyncIterator

from covey.aio import NOTHING, get_within
from covey.errors import PermissionDenied
from manager.ca import authz
from manager.dispatcher import registryauth
from manager.dispatcher.networkviews import Feed, NetworkViews
from manager.dispatcher.secretfeed import SecretFeed
from manager.dispatcher.sessions import Sessions
from manager.dispatcher.status import StatusWriter
from manager.state import store as st
from proto import dispatcher_pb2, store_pb2
from proto import objects_pb2 as pb

log = logging.getLogger(__name__)

NETWORKS_CHANGED = object()  # put in a stream's event queue: its network views have news

def assigned_to(task: pb.Task, node_id: str) -> bool:
    """A task the node must know about: placed on it, and past scheduling."""
    return task.node_id == node_id and task.status.state >= pb.ASSIGNED


class Assignments:
    """The Assignments RPC: the node's tasks, in full and then by increments."""

    def __init__(self, store: st.Store, sessions: Sessions, views: NetworkViews):
        self._store = store
        self._sessions = sessions
        self._views = views

    async def stream(self, request: dispatcher_pb2.AssignmentsRequest, context,
                     caller: authz.Caller | None) -> AsyncIterator[dispatcher_pb2.AssignmentsMessage]:
        node_id = authz.calling_node(caller)
        self._sessions.check(node_id, request.session_id)
        events = self._store.subscribe(tasks_of=node_id)  # before the first read: no change falls between
        feed = self._views.open(node_id, wake=lambda: events.put_nowait(NETWORKS_CHANGED))
        try:
            mine = [t for t in self._store.tasks.on_node(node_id) if assigned_to(t, node_id)]
            sent = {t.id: t.meta.version for t in mine}
            networks, _ = self._views.send(feed)
            first = dispatcher_pb2.AssignmentsMessage(type=dispatcher_pb2.AssignmentsMessage.COMPLETE,
                                                      updated=mine, networks=networks)
            registryauth.attach(self._store, first)
            secrets = SecretFeed(self._store)    # the secrets and configs go with the tasks using them
            secrets.track(mine, ())
            secrets.add_to(first)
            yield first
            sequence = 0
            while self._sessions.alive(node_id, request.session_id):
                changed = await _next_batch(events, timeout=1.0)
                message = _increment([e for e in changed if e is not NETWORKS_CHANGED], sent, node_id)
                registryauth.attach(self._store, message)
                if message is not None:
                    secrets.track(message.updated, message.removed)
                    secrets.add_to(message)
                message = self._with_networks(message, feed)
                if message is not None:
                    sequence += 1
                    message.sequence = sequence
                    yield message
        finally:
            self._views.close(feed)
            self._store.unsubscribe(events)

    def _with_networks(self, message: dispatcher_pb2.AssignmentsMessage | None,
                       feed: Feed) -> dispatcher_pb2.AssignmentsMessage | None:
        """The increment with what changed in the node's networks (an increment of its own if
        no task changed)."""
        networks, removed = self._views.send(feed)
        if not networks and not removed:
            return message
        if message is None:
            message = dispatcher_pb2.AssignmentsMessage(type=dispatcher_pb2.AssignmentsMessage.INCREMENTAL)
        message.networks.extend(networks)
        message.removed_networks.extend(removed)
        return message


class StatusReports:
    """The TaskStatusReports RPC: a node's batches of reports about its own tasks."""

    def __init__(self, store: st.Store, sessions: Sessions, writer: "StatusWriter"):
        self._store = store
        self._sessions = sessions
        self._writer = writer

    async def stream(self, requests: AsyncIterator[dispatcher_pb2.UpdateTaskStatusRequest], context,
                     caller: authz.Caller | None) -> AsyncIterator[dispatcher_pb2.UpdateTaskStatusResponse]:
        """Each batch is answered once it is committed."""
        async for node_id, request in self._sessions.in_session(authz.calling_node(caller), requests):
            updates = {}
            for u in request.updates:
                task = self._store.tasks.peek(u.task_id)
                if task is not None and task.node_id != node_id:
                    raise PermissionDenied(f"task {u.task_id} is not assigned to node {node_id}")
                updates[u.task_id] = u.status
            await self._writer.submit(updates)
            yield dispatcher_pb2.UpdateTaskStatusResponse()


async def _next_batch(events: asyncio.Queue, timeout: float) -> list:
    """The events that arrived together (after waiting up to `timeout` for the first)."""
    first = await get_within(events, timeout)
    if first is NOTHING:
        return []
    batch = [first]
    while not events.empty():
        batch.append(events.get_nowait())
    return batch


def _increment(changed: list, sent: dict, node_id: str) -> dispatcher_pb2.AssignmentsMessage | None:
    updated, removed = {}, set()
    for event in changed:
        task = event.obj
        if not isinstance(task, pb.Task):
            continue
        if event.kind != store_pb2.StoreAction.DELETE and assigned_to(task, node_id):
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
    return dispatcher_pb2.AssignmentsMessage(type=dispatcher_pb2.AssignmentsMessage.INCREMENTAL,
                                             updated=list(updated.values()), removed=sorted(removed - set(updated)))
