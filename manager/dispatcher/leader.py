"""Which manager leads, for agents that watch (the Leader RPC, served by every manager).

An agent keeps its session with the leader and watches another manager. When the leader is
paused or cut off, its session just goes quiet; the watched manager tells the agent of the
new leader as soon as it follows one, so the agent moves within moments of the election
instead of after its heartbeats time out. pysyncobj has no callback for another member's
win, so Raft's view of the leader is polled (one attribute read); the leader's API address,
which takes a walk over the managers, is looked up only for the watchers' messages.
"""
import asyncio
from collections.abc import AsyncIterator, Callable

from manager.ca import authz
from proto import dispatcher_pb2


class LeaderWatch:
    def __init__(self, raft_leader: Callable[[], str | None], leader_api_addr: Callable[[], str | None],
                 poll: float):
        self._raft_leader = raft_leader
        self._leader_api_addr = leader_api_addr
        self._poll = poll
        self._current: str | None = None
        self._changed = asyncio.Event()

    async def run(self) -> None:
        """For the manager's whole life: wake the watchers when the leader changes."""
        while True:
            leader = self._raft_leader()
            if leader != self._current:
                self._current = leader
                self._changed.set()
                self._changed = asyncio.Event()
            await asyncio.sleep(self._poll)

    async def stream(self, request: dispatcher_pb2.LeaderRequest, context,
                     caller: authz.Caller | None) -> AsyncIterator[dispatcher_pb2.LeaderMessage]:
        while True:
            changed = self._changed  # taken before the read: a change after it wakes us
            yield dispatcher_pb2.LeaderMessage(leader_addr=self._leader_api_addr() or "")
            await changed.wait()
