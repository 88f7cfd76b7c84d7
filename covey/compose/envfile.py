"""Environment files: `.env`, `--env-file`, and a service's `env_file`.

The dotenv syntax of the Compose Specification: `KEY=VALUE`, an optional `export `,
`#` comments, single quotes (literal), double quotes (escapes, may span lines),
and a bare `KEY` that takes its value from the process environment. Values
may refer to earlier variables (`${A}`) unless single-quoted or raw.
"""
import re

from covey.compose.errors import ComposeError
from covey.compose.interpolate import substitute_string
from covey.compose.yamlload import decode

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$"}


def read_env_file(path, lookup: dict, raw: bool = False) -> dict:
    """Variables of one env file; `lookup` resolves bare keys and `${...}` references."""
    try:
        data = open(path, "rb").read()
    except OSError as exc:
        raise ComposeError(f"cannot read env file: {exc.strerror}", file=str(path)) from None
    return parse_env(decode(data, str(path)), str(path), lookup, raw)


def parse_env(text: str, name: str, lookup: dict, raw: bool = False) -> dict:
    result: dict = {}
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        lineno, line = i + 1, lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        match = _KEY.match(line)
        if not match or (line[match.end():] and line[match.end():].lstrip()[:1] != "="):
            raise ComposeError(f"invalid line {line!r}: expected KEY=VALUE", file=name, line=lineno)
        key, rest = match.group(), line[match.end():].lstrip()
        if not rest:
            if key in lookup:       # a bare KEY: from the environment, else left out
                result[key] = lookup[key]
            continue
        value = rest[1:].lstrip()
        scope = {**lookup, **result}
        if raw:
            result[key] = value
        elif value.startswith("'"):
            result[key], i = _quoted(value, "'", lines, i, name, lineno), _advance(value, "'", lines, i)
        elif value.startswith('"'):
            text_ = _quoted(value, '"', lines, i, name, lineno)
            i = _advance(value, '"', lines, i)
            result[key] = substitute_string(_unescape(text_), scope)
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
            result[key] = _substitute(value, scope, name, lineno)
    return result


def _substitute(value: str, scope: dict, name: str, lineno: int) -> str:
    try:
        return substitute_string(value, scope)
    except ComposeError as exc:
        raise ComposeError(exc.message, file=name, line=lineno) from None


def _quoted(value: str, quote: str, lines: list, i: int, name: str, lineno: int) -> str:
    """The text between the quotes, which may continue on the following lines."""
    body = value[1:]
    while True:
        end = _find_close(body, quote)
        if end >= 0:
            return body[:end]
        if i >= len(lines):
            raise ComposeError(f"unterminated {quote} quote", file=name, line=lineno)
        body += "\n" + lines[i]
        i += 1


def _advance(value: str, quote: str, lines: list, i: int) -> int:
    """Index of the line after a quoted value that started on the line before `i`."""
    body = value[1:]
    while _find_close(body, quote) < 0 and i < len(lines):
        body += "\n" + lines[i]
        i += 1
    return i


def _find_close(body: str, quote: str) -> int:
    i = 0
    while i < len(body):
        if quote == '"' and body[i] == "\\":
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text,
                  flags=re.S)
