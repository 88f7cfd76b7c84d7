"""Variable substitution in compose values, with the Compose Specification's syntax.

    $VAR  ${VAR}  ${VAR:-default}  ${VAR-default}  ${VAR:?error}  ${VAR?error}
    ${VAR:+replacement}  ${VAR+replacement}  $$ (a literal $)

Defaults and replacements may themselves hold substitutions. Only values are
substituted, never keys, as Docker does.
"""
import re

from covey.compose.errors import ComposeError, format_path
from covey.compose.yamlload import OverrideTag, ResetTag

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class _Failure(Exception):
    """A substitution failed; the caller adds file and path."""


class Interpolator:
    def __init__(self, env: dict):
        self.env = env
        self.unset: set[str] = set()   # variables used without a value: one warning each

    def substitute(self, text: str) -> str:
        out, i = [], 0
        while True:
            j = text.find("$", i)
            if j < 0:
                out.append(text[i:])
                return "".join(out)
            out.append(text[i:j])
            i = self._dollar(text, j, out)

    def _dollar(self, text: str, j: int, out: list) -> int:
        """Expand the `$...` at text[j]; return the index after it."""
        nxt = text[j + 1:j + 2]
        if nxt == "$":
            out.append("$")
            return j + 2
        if nxt == "{":
            end = _closing_brace(text, j + 2)
            out.append(self._braced(text[j + 2:end]))
            return end + 1
        match = _NAME.match(text, j + 1)
        if not match:
            raise _Failure(f"invalid interpolation format in {text!r}: a $ must start a variable "
                           f"($VAR or ${{VAR}}); write $$ for a literal $")
        out.append(self._value(match.group()))
        return match.end()

    def _value(self, name: str) -> str:
        if name not in self.env:
            self.unset.add(name)
            return ""
        return self.env[name]

    def _braced(self, body: str) -> str:
        match = _NAME.match(body)
        if not match:
            raise _Failure(f"invalid interpolation format: ${{{body}}} does not start with a "
                           f"variable name")
        name, rest = match.group(), body[match.end():]
        if not rest:
            return self._value(name)
        op = next((o for o in _OPERATORS if rest.startswith(o)), None)
        if op is None:
            raise _Failure(f"invalid interpolation format: unexpected {rest!r} in ${{{body}}}")
        arg = rest[len(op):]
        value = self.env.get(name)
        if value == "" and op.startswith(":"):
            value = None  # the ":" forms take an empty value for a missing one
        if op.endswith("-"):
            return value if value is not None else self.substitute(arg)
        if op.endswith("+"):
            return self.substitute(arg) if value is not None else ""
        if value is None:
            raise _Failure(f"required variable {name} is missing a value"
                           + (f": {self.substitute(arg)}" if arg else ""))
        return value


def _closing_brace(text: str, start: int) -> int:
    """Index of the `}` closing a `${` whose body starts at `start` (nesting allowed)."""
    depth, i = 1, start
    while i < len(text):
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise _Failure(f"invalid interpolation format in {text!r}: a ${{ is never closed")


def interpolate(data, env: dict, doc=None):
    """A copy of `data` with every string value substituted; returns (data, unset names)."""
    interp = Interpolator(env)
    return _walk(data, (), interp, doc), interp.unset


def _walk(value, path, interp, doc):
    if isinstance(value, dict):
        return {k: _walk(v, path + (k,), interp, doc) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, path + (i,), interp, doc) for i, v in enumerate(value)]
    if isinstance(value, (OverrideTag, ResetTag)):
        return type(value)(_walk(value.value, path, interp, doc))
    if isinstance(value, str):
        try:
            return interp.substitute(value)
        except _Failure as exc:
            raise ComposeError(str(exc), file=doc.name if doc else None, path=path,
                               line=doc.line_of(path) if doc else None) from None
    return value


def substitute_string(text: str, env: dict) -> str:
    """One string (used for .env files, which may refer to earlier variables)."""
    try:
        return Interpolator(env).substitute(text)
    except _Failure as exc:
        raise ComposeError(str(exc)) from None


def unset_warnings(names) -> list[str]:
    return [f"the {n} variable is not set: substituting an empty string" for n in sorted(names)]


__all__ = ["interpolate", "substitute_string", "unset_warnings", "format_path"]
