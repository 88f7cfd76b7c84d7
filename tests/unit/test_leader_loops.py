"""manager/manager.py _supervise: a leader loop that fails is restarted; one whose write was
refused because this manager is losing its leadership logs one line, not a traceback (the
chaos suite fails on any traceback, and a paused leader that resumes meets this)."""
import asyncio
import logging

import pytest

from covey.errors import Unavailable
from manager.manager import _supervise


async def _run_twice(exc: Exception) -> int:
    calls = 0
    done = asyncio.Event()

    async def loop_fn():
        nonlocal calls
        calls += 1
        if calls == 2:
            done.set()
            await asyncio.Event().wait()     # runs until cancelled
        raise exc
    task = asyncio.create_task(_supervise("test loop", loop_fn, restart_delay=0))
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return calls


def test_a_refused_write_is_one_line_and_the_loop_restarts(caplog):
    caplog.set_level(logging.WARNING, logger="manager.manager")
    assert asyncio.run(_run_twice(Unavailable("the swarm does not have a leader"))) == 2
    [record] = caplog.records
    assert "test loop stopped: the swarm does not have a leader" in record.getMessage()
    assert record.exc_info is None


def test_any_other_failure_keeps_its_traceback(caplog):
    caplog.set_level(logging.WARNING, logger="manager.manager")
    assert asyncio.run(_run_twice(KeyError("bug"))) == 2
    [record] = caplog.records
    assert "test loop failed" in record.getMessage() and record.exc_info is not None
