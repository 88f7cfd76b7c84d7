"""Docker's grammar for durations and byte sizes."""
import re

from covey.errors import InvalidArgument

_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Go-style duration ("1s", "1m30s", "250ms") in nanoseconds."""
    s = text.strip()
    if s == "0":
        return 0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s) or not s:
        raise InvalidArgument(f"invalid duration {text!r}: use a number with a unit, e.g. 5s, 1m30s, 250ms")
    return int(total)


def format_duration(nanos: int) -> str:
    for unit, size in (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6)):
        if nanos >= size and nanos % size == 0:
            return f"{nanos // size}{unit}"
    return f"{nanos / 10**9:g}s"
