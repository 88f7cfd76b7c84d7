"""asyncio helpers for the loops that wait on queues."""
import asyncio

NOTHING = object()


async def get_within(queue: asyncio.Queue, seconds: float):
    """The next item, or NOTHING after `seconds`. Not asyncio.wait_for: on Python 3.11 it can
    swallow a cancellation that arrives together with the item, and a leader loop cancelled
    as a change comes in would then run on beside the new leader's."""
    try:
        async with asyncio.timeout(max(seconds, 0)):
            return await queue.get()
    except TimeoutError:
        return NOTHING
