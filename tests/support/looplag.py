"""How late an asyncio event loop wakes up: everything in it waits that long (RPCs,
heartbeats, leader loops). For the benches, which print it beside their figures."""
import asyncio
import time


class LoopLag:
    """The largest lag since the last look; start it inside the loop to watch."""

    def __init__(self, tick: float = 0.05):
        self.tick, self.worst = tick, 0.0
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.tick)
            self.worst = max(self.worst, time.perf_counter() - before - self.tick)

    def take(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst

    def close(self) -> float:
        self._task.cancel()
        return self.take()
