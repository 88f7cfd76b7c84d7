"""gRPC handler plumbing: CoveyError in a handler becomes the caller's status."""
import functools
import logging

from covey.errors import CoveyError

log = logging.getLogger(__name__)


def unary(method):
    """Wrap an async unary handler so that a CoveyError aborts with its code."""
    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            return await method(self, request, context)
        except CoveyError as exc:
            await context.abort(exc.code, str(exc), trailing_metadata=exc.metadata())
    return wrapper


def stream(method):
    """Like `unary`, for an async generator (server-streaming) handler."""
    @functools.wraps(method)
    async def wrapper(self, request, context):
        try:
            async for item in method(self, request, context):
                yield item
        except CoveyError as exc:
            await context.abort(exc.code, str(exc), trailing_metadata=exc.metadata())
    return wrapper
