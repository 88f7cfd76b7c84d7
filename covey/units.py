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


_BYTES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.I)
_BYTE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(text: str) -> int:
    """Bytes of "512m", "1.5g", "2GiB", "1024" (Docker's binary units)."""
    match = _BYTES.match(str(text))
    if not match:
        raise InvalidArgument(f"invalid size {text!r}: use a number with an optional unit (b, k, m, g)")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()])


def format_bytes(size: int) -> str:
    """"512MiB", "1.5GiB", "1000GiB", "2TiB": about 3 significant digits, never an exponent."""
    for unit, factor in (("PiB", 1 << 50), ("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20),
                         ("KiB", 1 << 10)):
        if size >= factor:
            value = size / factor
            text = f"{value:.{0 if value >= 100 else 1 if value >= 10 else 2}f}"
            return (text.rstrip("0").rstrip(".") if "." in text else text) + unit
    return f"{size}B"


def format_duration(nanos: int) -> str:
    for unit, size in (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6)):
        if nanos >= size and nanos % size == 0:
            return f"{nanos // size}{unit}"
    return f"{nanos / 10**9:g}s"
