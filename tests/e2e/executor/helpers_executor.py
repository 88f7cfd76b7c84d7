"""Helpers for the executor's e2e tests (a uniquely named module: conftests cannot share)."""
import asyncio
import time


async def output(ex, name: str, timeout: float = 15.0) -> str:
    """Wait for the container to exit and return its stdout and stderr as one text."""
    await ex.wait(name, timeout)
    return "".join([e.line async for e in ex.logs(name)])


async def eventually(check, timeout: float = 15.0, interval: float = 0.05):
    """Poll an (async or plain) condition until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met in {timeout}s: {check}")
        await asyncio.sleep(interval)
