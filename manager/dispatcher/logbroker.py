"""Service logs, gathered on the leader from every node that ran the service.

Nodes only ever connect out (docs/design.md, "Control plane"), so a node is asked through a stream it
keeps open (LogSubscriptions) and answers each subscription on a stream of its own
(PublishLogs): its backlog, a message marked caught_up, then, when following, new lines.
The reader gets the backlogs merged by time, then live lines as they come. A node that is
down, or does not answer within the gather timeout, is named in a warning: the reader gets
what there is, never a hang.
"""
import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from covey.aio import NOTHING, get_within
from covey.ids import new_id
from manager.ca import authz
from manager.state import store as st
from proto import control_pb2, logbroker_pb2
from proto import objects_pb2 as pb

LINES_PER_MESSAGE = 1000


@dataclass
class _Subscription:
    asked: set[str]                                   # node IDs that must answer
    inbox: asyncio.Queue = field(default_factory=asyncio.Queue)  # (node ID, message | None: stream ended)


class LogBroker:
    def __init__(self, store: st.Store, gather_timeout: float):
        self._store = store
        self._gather_timeout = gather_timeout
        self._outboxes: dict[str, asyncio.Queue] = {}   # node ID -> subscriptions to send it
        self._subscriptions: dict[str, _Subscription] = {}

    # ------------------------------------------------------------ the nodes' side

    async def subscriptions_for(self, node_id: str) -> AsyncIterator[logbroker_pb2.LogSubscription]:
        outbox: asyncio.Queue[logbroker_pb2.LogSubscription] = asyncio.Queue()
        self._outboxes[node_id] = outbox
        try:
            while True:
                yield await outbox.get()
        finally:
            if self._outboxes.get(node_id) is outbox:
                del self._outboxes[node_id]

    def deliver(self, node_id: str, subscription_id: str, message: logbroker_pb2.PublishLogsMessage | None) -> None:
        """A node's answer (None: its stream ended). Answers nobody asked for are dropped."""
        subscription = self._subscriptions.get(subscription_id)
        if subscription is not None and node_id in subscription.asked:
            subscription.inbox.put_nowait((node_id, message))

    # ------------------------------------------------------------ the reader's side

    async def read(self, service: pb.Service,
                   request: control_pb2.ServiceLogsRequest) -> AsyncIterator[control_pb2.ServiceLogsMessage]:
        tasks = {t.id: t for t in self._store.tasks.list() if t.service_id == service.id and t.node_id}
        subscription_id = new_id()
        wanted = logbroker_pb2.LogSubscription(id=subscription_id, service_id=service.id, follow=request.follow,
                                    tail=request.tail, since=request.since)
        warnings = []
        subscription = _Subscription(asked=set())
        self._subscriptions[subscription_id] = subscription
        try:
            ran_it = {t.node_id for t in tasks.values()}
            # Following, every connected node is asked: a task may start on any of them later.
            for node_id in sorted(ran_it | (set(self._outboxes) if request.follow else set())):
                outbox = self._outboxes.get(node_id)
                if outbox is None:
                    warnings.append(f"node {self._name(node_id)} is not connected (down?): its logs are missing")
                    continue
                subscription.asked.add(node_id)
                outbox.put_nowait(wanted)
            backlog, streaming = await self._gather(subscription, warnings)
            backlog.sort(key=lambda entry: entry[1].time)
            lines = [self._line(node_id, line, tasks) for node_id, line in backlog]
            yield control_pb2.ServiceLogsMessage(warnings=warnings, lines=lines[:LINES_PER_MESSAGE])
            for start in range(LINES_PER_MESSAGE, len(lines), LINES_PER_MESSAGE):
                yield control_pb2.ServiceLogsMessage(lines=lines[start:start + LINES_PER_MESSAGE])
            while request.follow and streaming:
                node_id, message = await subscription.inbox.get()
                if message is None:
                    streaming.discard(node_id)
                    yield control_pb2.ServiceLogsMessage(warnings=[f"node {self._name(node_id)} stopped sending logs"])
                    continue
                if message.lines:
                    tasks.update({t.id: t for t in self._store.tasks.list() if t.service_id == service.id})
                warnings = [f"node {self._name(node_id)}: {message.err}"] if message.err else []
                yield control_pb2.ServiceLogsMessage(lines=[self._line(node_id, line, tasks) for line in message.lines],
                                                     warnings=warnings)
        finally:
            del self._subscriptions[subscription_id]
            for node_id in subscription.asked:
                if node_id in self._outboxes:
                    self._outboxes[node_id].put_nowait(logbroker_pb2.LogSubscription(id=subscription_id, close=True))

    async def _gather(self, subscription: _Subscription, warnings: list[str]) -> tuple[list, set[str]]:
        """Every asked node's backlog, until each is caught up or the timeout passes.
        Returns the lines (node ID, line) and the nodes whose streams are still open."""
        backlog = []
        waiting, streaming = set(subscription.asked), set(subscription.asked)
        deadline = time.monotonic() + self._gather_timeout
        while waiting:
            answer = await get_within(subscription.inbox, deadline - time.monotonic())
            if answer is NOTHING:
                warnings += [f"node {self._name(n)} did not answer within {self._gather_timeout:g}s: "
                             "its logs may be incomplete" for n in sorted(waiting)]
                break
            node_id, message = answer
            if message is None:
                streaming.discard(node_id)
                if node_id in waiting:
                    waiting.discard(node_id)
                    warnings.append(f"node {self._name(node_id)} stopped answering: its logs may be incomplete")
                continue
            backlog += [(node_id, line) for line in message.lines]
            if message.err:
                warnings.append(f"node {self._name(node_id)}: {message.err}")
            if message.caught_up:
                waiting.discard(node_id)
        return backlog, streaming

    def _name(self, node_id: str) -> str:
        node = self._store.nodes.get(node_id)
        return node.description.hostname if node and node.description.hostname else node_id

    def _line(self, node_id: str, line: logbroker_pb2.TaskLogLine,
              tasks: dict[str, pb.Task]) -> control_pb2.ServiceLogLine:
        task = tasks.get(line.task_id)
        return control_pb2.ServiceLogLine(task_id=line.task_id, node_id=node_id, node_hostname=self._name(node_id),
                                 slot=task.slot if task else 0, time=line.time, stream=line.stream, line=line.line)


class LogBrokerAPI:
    """The nodes' side of service logs, its own gRPC service; a node's calls are checked against
    its dispatcher session."""

    def __init__(self, broker: LogBroker, check_session: Callable[[str, str], None]):
        self._broker = broker
        self._check_session = check_session  # (node ID, session ID): NotFound unless it is current
        self.handlers: dict[str, authz.Handler] = {"LogSubscriptions": self.subscriptions, "PublishLogs": self.publish}

    async def subscriptions(self, request, context, caller: authz.Caller | None):
        node_id = authz.calling_node(caller)
        self._check_session(node_id, request.session_id)
        async for subscription in self._broker.subscriptions_for(node_id):
            yield subscription

    async def publish(self, request_iterator, context, caller: authz.Caller | None):
        node_id = authz.calling_node(caller)
        subscription_id: str | None = None  # set by the first message, once its session checks out
        try:
            async for message in request_iterator:
                if subscription_id is None:
                    self._check_session(node_id, message.session_id)
                    subscription_id = message.subscription_id
                self._broker.deliver(node_id, subscription_id, message)
        finally:
            if subscription_id is not None:
                self._broker.deliver(node_id, subscription_id, None)
