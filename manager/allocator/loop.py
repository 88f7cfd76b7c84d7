"""The allocator's leader loop: the only writer of Task.networks, Service.virtual_ips and
Node.attachments.

On leadership it builds the index of what is in use from the store (so a leader change
keeps every allocation: they are all in Raft), then keeps it current from the store's
events: an event only says which object changed; the index reads that object as the store
holds it now, so events that arrive late or out of order cannot make it stale. After a
write that conflicted (another writer changed an object meanwhile), addresses it handed
out tentatively are forgotten by building the index again.
"""
import logging
import time

from covey.errors import Conflict
from manager.allocator.index import Allocations
from manager.allocator.plan import plan
from manager.state import store as st
from manager.state.actions import write_chunks
from manager.state.loops import each_change
from manager.state.tables import Event
from proto import objects_pb2 as pb

log = logging.getLogger(__name__)

WATCHED = (pb.Task, pb.Service, pb.Network, pb.Node)


def build(store: st.Store) -> Allocations:
    return Allocations.build(store.networks.view(), store.services.view(), store.tasks.view(), store.nodes.view())


class Allocator:
    def __init__(self, store: st.Store):
        self._store = store
        self._events = store.subscribe()  # before the build: no change falls in between
        self.index = build(store)

    def close(self) -> None:
        self._store.unsubscribe(self._events)

    def catch_up(self) -> None:
        """Bring the index in line with every change since the last pass."""
        changed: list[Event] = []
        while not self._events.empty():
            changed.append(self._events.get_nowait())
        if any(isinstance(e.obj, pb.Network) for e in changed):
            self.index = build(self._store)  # rare: a network came or went
            return
        for event in changed:
            if isinstance(event.obj, pb.Task):
                self.index.refresh_task(event.id, self._store.tasks.peek(event.id))
            elif isinstance(event.obj, pb.Service):
                self.index.refresh_service(event.id, self._store.services.peek(event.id))
            elif isinstance(event.obj, pb.Node):
                self.index.refresh_node(event.id, self._store.nodes.peek(event.id))

    async def step(self) -> float:
        """One pass: catch up, plan, write. Returns the CPU time it took (for each_change)."""
        started = time.monotonic()
        self.catch_up()
        wanted = plan(self.index, self._store.services.peek, self._store.tasks.peek,
                      node_of=self._store.nodes.get)
        busy = time.monotonic() - started
        try:
            # Services first, each chunk alone: a user's concurrent update of one service
            # must not hold back the tasks.
            await write_chunks(self._store, wanted.services)
        except Conflict:
            self.index = build(self._store)
            return busy
        for actions in (wanted.nodes, wanted.tasks):  # a node's heartbeat must not hold back the tasks
            try:
                await write_chunks(self._store, actions)
            except Conflict:
                self.index = build(self._store)
                return busy
        return busy


async def run(store: st.Store, period: float) -> None:
    """Leader loop: a pass now, after every change to tasks, services or networks, and
    every `period`."""
    allocator = Allocator(store)
    try:
        await each_change(store, period, allocator.step, kinds=WATCHED)
    finally:
        allocator.close()
