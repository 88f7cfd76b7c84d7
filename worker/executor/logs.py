"""Reading a container's logs: tail, since, and follow across rotations until the container
has exited and its shim has written the last line."""
from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from .logfile import LOG_NAME, LogEntry, decode, rotated_paths


def _entries(data: bytes) -> list[LogEntry]:
    return [e for e in map(decode, data.splitlines()) if e is not None]


async def read_logs(cdir: Path, max_files: int, *, follow: bool = False, tail: int | None = None,
                    since: float = 0.0, finished: Callable[[], bool] = lambda: True,
                    poll_interval: float = 0.1) -> AsyncIterator[LogEntry]:
    """Entries oldest first. `tail` keeps the last N of what exists now; `since` drops entries
    older than that epoch time; `follow` then waits for new ones until `finished()`."""
    path = str(cdir / LOG_NAME)
    try:
        current = open(path, "rb")
    except FileNotFoundError:
        current = None
    backlog: list[LogEntry] = []
    for older in rotated_paths(path, max_files)[:-1]:
        try:
            backlog += _entries(Path(older).read_bytes())
        except FileNotFoundError:
            continue
    rest = b""
    if current:
        data = current.read()
        cut = data.rfind(b"\n") + 1          # a half-written last line waits for its end
        backlog += _entries(data[:cut])
        rest = data[cut:]
    selected = [e for e in backlog if e.time >= since]
    if tail is not None:
        selected = list(deque(selected, maxlen=tail)) if tail > 0 else []
    for e in selected:
        yield e
    if not follow:
        if current:
            current.close()
        return
    try:
        async for e in _follow(path, current, rest, since, finished, poll_interval):
            yield e
    finally:
        if current and not current.closed:
            current.close()


async def _follow(path: str, f, rest: bytes, since: float, finished, poll_interval: float):
    while True:
        done = finished()             # checked before reading, so the last lines are not lost
        if f is None:
            try:
                f = open(path, "rb")
            except FileNotFoundError:
                if done:
                    return
                await asyncio.sleep(poll_interval)
                continue
        data = f.read()
        if data:
            rest += data
            cut = rest.rfind(b"\n") + 1
            for e in _entries(rest[:cut]):
                if e.time >= since:
                    yield e
            rest = rest[cut:]
            continue
        try:
            rotated = os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            rotated = False
        if rotated:                   # the old file is drained: go on with the new one
            f.close()
            f, rest = None, b""
            continue
        if done:
            f.close()
            return
        await asyncio.sleep(poll_interval)
