"""Fixtures for integration tests (helpers are in inproc.py)."""
import asyncio

import pytest


@pytest.fixture
def run():
    """Run a coroutine to completion on a fresh loop."""
    def runner(coro, timeout=60):
        return asyncio.run(asyncio.wait_for(coro, timeout))
    return runner
