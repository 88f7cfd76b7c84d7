"""Typed reads of compose values, with errors that carry the path."""
from covey.compose.errors import ComposeError
from covey.errors import InvalidArgument
from covey.units import parse_bytes, parse_duration


def duration(value, path) -> int:
    """Nanoseconds of "1m30s"; a bare number is seconds (as some files write it)."""
    if isinstance(value, bool):
        raise ComposeError(f"invalid duration {value!r}", path=path)
    if isinstance(value, (int, float)):
        return int(value * 10**9)
    try:
        return parse_duration(str(value))
    except InvalidArgument as exc:
        raise ComposeError(str(exc), path=path) from None


def size(value, path) -> int:
    """Bytes of "512m", "1.5g", "1024" (Docker's binary units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return parse_bytes(str(value))
    except InvalidArgument as exc:
        raise ComposeError(str(exc), path=path) from None


def integer(value, path, minimum: int | None = 0) -> int:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
        if number is None:
            raise ValueError
    except (TypeError, ValueError):
        raise ComposeError(f"{value!r} is not a whole number", path=path) from None
    if minimum is not None and number < minimum:
        raise ComposeError(f"{number} is below the minimum of {minimum}", path=path)
    return number


def number(value, path) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise ComposeError(f"{value!r} is not a number", path=path) from None


def boolean(value, path) -> bool:
    if isinstance(value, bool):
        return value
    raise ComposeError(f"{value!r} is not true or false", path=path)


def string_list(value) -> list[str]:
    """A string-or-list field as a list of strings."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [str(value)]


def choice(value, options: dict, path):
    key = str(value).lower() if value is not None else ""
    if key not in options:
        raise ComposeError(f"{value!r} is not one of {', '.join(o for o in options if o)}",
                           path=path)
    return options[key]
