"""Container log files, in Docker's json-file format (one JSON object a line with "log",
"stream" and "time"), rotated by size and count: NAME, NAME.1, ... NAME.(max_files-1).

Only the standard library: the per-container shim imports this and must start fast."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

LOG_NAME = "container.log"


@dataclass
class LogEntry:
    time: float          # seconds since the epoch
    stream: str          # "stdout" | "stderr"
    line: str            # with its trailing newline if it had one

    def rfc3339(self) -> str:
        whole = int(self.time)
        nanos = int(round((self.time - whole) * 1e9))
        if nanos >= 1_000_000_000:
            whole, nanos = whole + 1, nanos - 1_000_000_000
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{nanos:09d}Z"


def encode(entry: LogEntry) -> bytes:
    return (json.dumps({"log": entry.line, "stream": entry.stream, "time": entry.rfc3339()})
            + "\n").encode()


def parse_time(text: str) -> float:
    """RFC 3339 with up to nanoseconds, UTC ('Z'), as written by `LogEntry.rfc3339`."""
    main, _, frac = text.rstrip("Z").partition(".")
    import calendar
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return secs + (int(frac.ljust(9, "0")[:9]) / 1e9 if frac else 0.0)


def decode(raw: bytes) -> LogEntry | None:
    try:
        d = json.loads(raw)
        return LogEntry(parse_time(d["time"]), d["stream"], d["log"])
    except (ValueError, KeyError, TypeError):
        return None      # a torn last line (writer killed mid-write): skip it


def rotated_paths(path: str, max_files: int) -> list[str]:
    """Oldest first, the current file last."""
    return [f"{path}.{i}" for i in range(max_files - 1, 0, -1)] + [path]


class LogWriter:
    """Appends entries; when the current file would pass max_size it shifts NAME.i to
    NAME.(i+1), dropping the oldest, and starts a new NAME."""

    def __init__(self, path: str, max_size: int, max_files: int):
        self.path, self.max_size, self.max_files = path, max_size, max(1, max_files)
        self._f = open(path, "ab", buffering=0)
        self._size = self._f.tell()

    def write(self, stream: str, line: str, when: float | None = None) -> None:
        data = encode(LogEntry(time.time() if when is None else when, stream, line))
        if self.max_size and self._size and self._size + len(data) > self.max_size:
            self._rotate()
        self._f.write(data)
        self._size += len(data)

    def _rotate(self) -> None:
        self._f.close()
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            paths = rotated_paths(self.path, self.max_files)  # oldest first
            for older, newer in zip(paths, paths[1:], strict=False):
                if os.path.exists(newer):
                    os.replace(newer, older)
        self._f = open(self.path, "ab", buffering=0)
        self._size = 0

    def close(self) -> None:
        self._f.close()
