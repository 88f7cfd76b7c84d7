"""Task status reports of every node, written together: one Raft write per round."""
import asyncio
import time

from covey.errors import NO_LEADER, Unavailable
from manager.state import store as st
from manager.state.actions import update, write_fresh
from proto import objects_pb2 as pb

STATUS_WRITE_ATTEMPTS = 10


class StatusWriter:
    """The status reports of every node, written together: one Raft write per round for all
    that came in while the previous round was being committed. With a write per report,
    1,000 nodes starting their tasks would queue thousands of small writes."""

    def __init__(self, store: st.Store):
        self._store = store
        self._pending: dict[str, pb.TaskStatus] = {}   # task ID -> its newest report
        self._round: asyncio.Future | None = None      # settles when the pending reports are written
        self._writer: asyncio.Task | None = None

    async def submit(self, updates: dict[str, pb.TaskStatus]) -> None:
        """Returns once the reports are committed (or found stale); raises what the write raised."""
        if not updates:
            return  # nothing to commit, and a round opened for nothing would never settle
        for task_id, status in updates.items():
            held = self._pending.get(task_id)
            if held is None or status.state > held.state:
                self._pending[task_id] = status
        if self._round is None:
            self._round = asyncio.get_running_loop().create_future()
        this_round = self._round
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_rounds())
        await asyncio.shield(this_round)  # a caller that goes away does not cancel the others' round

    async def _write_rounds(self) -> None:
        # submit opens a round whenever it adds a report, so pending reports always have one
        while self._pending and (this_round := self._round) is not None:
            pending, self._pending, self._round = self._pending, {}, None
            try:
                await self._write(pending)
                this_round.set_result(None)
            except asyncio.CancelledError:
                _fail(this_round, Unavailable(NO_LEADER))
                raise
            except Exception as exc:
                _fail(this_round, exc)

    async def _write(self, pending: dict[str, pb.TaskStatus]) -> None:
        # Out of attempts, this raises: the round fails, and the agents keep and resend the reports.
        await write_fresh(self._store, lambda: _status_actions(self._store, pending),
                          STATUS_WRITE_ATTEMPTS, "task status reports")


def _fail(future: asyncio.Future, exc: Exception) -> None:
    future.set_exception(exc)
    future.exception()  # marked as seen: no warning when every caller has gone meanwhile


def _status_actions(store: st.Store, updates: dict) -> list:
    actions = []
    for task_id, status in updates.items():
        current = store.tasks.peek(task_id)
        if current is None:
            continue  # removed meanwhile: nothing to record
        if status.state <= current.status.state:
            continue  # never backwards (a replay, or a report that raced a newer one)
        task = pb.Task()
        task.CopyFrom(current)
        task.status.CopyFrom(status)
        task.status.timestamp_ns = task.status.timestamp_ns or time.time_ns()
        task.meta.updated_at_ns = time.time_ns()
        actions.append(update(task))
    return actions
