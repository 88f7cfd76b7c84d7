"""Service logs from this node: the agent's answer to the leader's log subscriptions
(manager/dispatcher/logbroker.py has the other half).

Per subscription: the backlog of every task of the service this node holds, one message
marked caught_up, then, when following, new lines of those tasks and of tasks that start
here later, until the leader says close or the session ends.
"""
import asyncio
import logging

from covey.aio import NOTHING, get_within
from proto import logbroker_pb2
from worker.executor import ContainerNotFound

log = logging.getLogger(__name__)

LINES_PER_MESSAGE = 1000


class LogPublisher:
    def __init__(self, tasks, poll_interval: float):
        self._tasks = tasks            # worker.tasks.TaskManager
        self._poll_interval = poll_interval  # following: how often to look for new tasks

    async def serve(self, stub, session_id: str) -> None:
        publishing: dict[str, asyncio.Task] = {}
        try:
            request = logbroker_pb2.LogSubscriptionsRequest(session_id=session_id)
            async for subscription in stub.LogSubscriptions(request):
                for done in [i for i, t in publishing.items() if t.done()]:
                    del publishing[done]
                if subscription.close:
                    if subscription.id in publishing:
                        publishing.pop(subscription.id).cancel()
                    continue
                messages = self._messages(session_id, subscription)
                publishing[subscription.id] = asyncio.create_task(self._publish(stub, messages, subscription.id))
        finally:
            for task in publishing.values():
                task.cancel()
        raise ConnectionError("the dispatcher ended the log subscriptions stream")

    @staticmethod
    async def _publish(stub, messages, subscription_id: str) -> None:
        try:
            await stub.PublishLogs(messages)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the leader went away: the reader gets a warning from it
            log.info("log subscription %s ended: %r", subscription_id, exc)

    async def _messages(self, session_id: str, subscription: logbroker_pb2.LogSubscription):
        def message(lines, **kwargs):
            return logbroker_pb2.PublishLogsMessage(session_id=session_id, subscription_id=subscription.id,
                                         lines=lines, **kwargs)
        tail = subscription.tail if subscription.tail >= 0 else None
        last_seen: dict[str, float] = {}   # task ID -> time of the last line sent
        lines, errors = [], []
        for task_id in self._containers_of(subscription.service_id):
            try:
                async for entry in self._tasks.executor.logs(task_id, tail=tail, since=subscription.since):
                    lines.append(_line(task_id, entry))
                    last_seen[task_id] = entry.time
            except ContainerNotFound:
                continue  # removed meanwhile
            except Exception as exc:
                errors.append(f"task {task_id}: {exc}")
            last_seen.setdefault(task_id, subscription.since)
            if len(lines) >= LINES_PER_MESSAGE:
                yield message(lines)
                lines = []
        yield message(lines, caught_up=True, err="; ".join(errors))
        if subscription.follow:
            async for batch in self._follow(subscription, last_seen):
                yield message(batch)

    async def _follow(self, subscription: logbroker_pb2.LogSubscription, last_seen: dict[str, float]):
        """New lines as they come, from the tasks already read and from new ones."""
        queue: asyncio.Queue = asyncio.Queue()
        readers: dict[str, asyncio.Task] = {}
        try:
            while True:
                for task_id in self._containers_of(subscription.service_id):
                    if task_id not in readers:
                        since = last_seen.get(task_id, subscription.since)
                        readers[task_id] = asyncio.create_task(self._read_new(task_id, since, queue))
                first = await get_within(queue, self._poll_interval)
                if first is NOTHING:
                    continue
                batch = [first]
                while not queue.empty() and len(batch) < LINES_PER_MESSAGE:
                    batch.append(queue.get_nowait())
                yield batch
        finally:
            for reader in readers.values():
                reader.cancel()

    async def _read_new(self, task_id: str, after: float, queue: asyncio.Queue) -> None:
        try:
            async for entry in self._tasks.executor.logs(task_id, follow=True, since=after):
                if entry.time > after:  # the backlog already had the rest
                    queue.put_nowait(_line(task_id, entry))
        except ContainerNotFound:
            pass

    def _containers_of(self, service_id: str) -> list[str]:
        known = set(self._tasks.executor.names())
        return [task_id for task_id in self._tasks.task_ids(service_id) if task_id in known]


def _line(task_id: str, entry) -> logbroker_pb2.TaskLogLine:
    return logbroker_pb2.TaskLogLine(task_id=task_id, time=entry.time, stream=entry.stream, line=entry.line)
