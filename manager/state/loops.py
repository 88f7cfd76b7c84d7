"""Leader loops over the store: a step after every change, planners that plan in a thread."""
import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from covey.aio import NOTHING, get_within
from manager.state.actions import write_plan

if TYPE_CHECKING:
    from manager.state.store import Store

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
