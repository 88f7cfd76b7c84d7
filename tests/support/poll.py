"""The one poller of every test layer and of deploy/lab.py: poll a condition until it holds or
a deadline passes (never sleep as synchronization), or watch that it keeps holding.

    wait_until(lambda: lab_is_up(), 30, what="the lab")              # plain code
    tasks = await until(lambda: swarm.converged("web", 3), what="3 running")   # in a loop

A predicate may return a value (returned once truthy); `until` and `holds` also take async
predicates. A missed deadline raises TimeoutError naming `what`.
"""
import asyncio
import inspect
import time

TIMEOUT = 15.0  # s: the default deadline of an async wait


class _Deadline:
    def __init__(self, timeout: float, what: str):
        self.timeout, self.what = timeout, what
        self.at = time.monotonic() + timeout

    def passed(self) -> bool:
        return time.monotonic() >= self.at

    def check(self) -> None:
        if self.passed():
            raise TimeoutError(f"timed out after {self.timeout}s waiting for {self.what}")


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll a plain `predicate` until it returns something truthy; return that."""
    deadline = _Deadline(timeout, what)
    while not (result := predicate()):
        deadline.check()
        time.sleep(interval)
    return result


def holds_for(predicate, seconds: float, interval: float = 0.1, what: str = "condition") -> None:
    """Check that a plain `predicate` stays true for `seconds` (what must NOT happen can only
    be watched); AssertionError as soon as it turns false."""
    deadline = _Deadline(seconds, what)
    while not deadline.passed():
        assert predicate(), f"{what} stopped holding"
        time.sleep(interval)


async def _value(predicate):
    result = predicate()
    return await result if inspect.isawaitable(result) else result


async def until(predicate, timeout: float = TIMEOUT, what: str = "condition", interval: float = 0.02):
    """Poll `predicate` (sync or async) until it returns something truthy; return that."""
    deadline = _Deadline(timeout, what)
    while not (result := await _value(predicate)):
        deadline.check()
        await asyncio.sleep(interval)
    return result


async def holds(predicate, seconds: float, what: str = "condition", interval: float = 0.02) -> None:
    """Check that `predicate` (sync or async) stays true for `seconds`."""
    deadline = _Deadline(seconds, what)
    while not deadline.passed():
        assert await _value(predicate), f"{what} stopped holding"
        await asyncio.sleep(interval)
