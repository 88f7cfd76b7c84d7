"""The agent's waits count only the time its own loop kept up."""
import asyncio
import time

import pytest

from worker.agent import _within_own_time

BUSY = 1.0       # s this process's loop is held by work of its own: twice the timeout
TIMEOUT = 0.5


def _hold_the_loop(seconds: float) -> None:
    """Work that keeps the loop from running anything else (a busy node), not a wait."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        pass


def test_an_answer_delayed_by_this_process_own_busy_loop_is_still_taken():
    async def scenario():
        loop = asyncio.get_running_loop()
        answer = loop.create_future()

        def busy_then_answer():
            _hold_the_loop(BUSY)
            loop.call_soon(answer.set_result, "pong")   # read on the loop's next turn, past the timeout
        loop.call_soon(busy_then_answer)                # once the wait below has begun
        return await _within_own_time(answer, TIMEOUT)
    assert asyncio.run(scenario()) == "pong"


def test_a_silent_peer_times_out_after_the_timeout():
    async def scenario():
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await _within_own_time(asyncio.get_running_loop().create_future(), 0.3)
        return time.monotonic() - started
    assert 0.3 <= asyncio.run(scenario()) < 2.0
