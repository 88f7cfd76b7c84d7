"""The agent's waits count only the time its own loop kept up."""
import asyncio
import time

import pytest

from worker.agent import _within_own_time


def test_an_answer_delayed_by_this_process_own_busy_loop_is_still_taken():
    async def scenario():
        answer = asyncio.get_running_loop().create_future()

        async def busy_then_answer():
            await asyncio.sleep(0.05)
            time.sleep(1.0)          # this node's loop is stuck for twice the timeout...
            await asyncio.sleep(0.05)
            answer.set_result("pong")  # ...and the answer is read just after
        busy = asyncio.create_task(busy_then_answer())
        try:
            return await _within_own_time(answer, 0.5)
        finally:
            await busy
    assert asyncio.run(scenario()) == "pong"


def test_a_silent_peer_times_out_after_the_timeout():
    async def scenario():
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await _within_own_time(asyncio.get_running_loop().create_future(), 0.3)
        return time.monotonic() - started
    assert 0.3 <= asyncio.run(scenario()) < 2.0
