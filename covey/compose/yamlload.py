"""Read YAML as Docker reads it (go-yaml v3 rules), keeping the line of every path.

PyYAML follows YAML 1.1, where `yes`/`no`/`on`/`off` are booleans and `80:80` is a
base-60 integer; Docker keeps those as strings. Legacy octal (`0440`) stays octal, since
file modes are written that way.
"""
import re
from dataclasses import dataclass, field

import yaml

from covey.compose.errors import ComposeError


class ResetTag:
    """`!reset`: the merge removes the value from earlier files."""
    def __init__(self, value=None):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, ResetTag) and other.value == self.value


class OverrideTag:
    """`!override`: the merge replaces the value from earlier files instead of merging."""
    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, OverrideTag) and other.value == self.value


class _Loader(yaml.SafeLoader):
    yaml_implicit_resolvers: dict = {}


_RESOLVERS = [
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int",
     r"^(?:[-+]?(?:0|[1-9][0-9_]*)|[-+]?0[0-7_]+|0o[0-7_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?0b[01_]+)$",
     "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ("tag:yaml.org,2002:merge", r"^<<$", "<"),
]
for _tag, _regexp, _first in _RESOLVERS:
    _Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


def _construct_int(loader, node):
    text = loader.construct_scalar(node).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if text.startswith("0o"):
        return sign * int(text[2:], 8)
    if text.startswith(("0x", "0b")):
        return sign * int(text, 0)
    if len(text) > 1 and text.startswith("0"):
        return sign * int(text, 8)
    return sign * int(text)


def _construct_float(loader, node):
    text = loader.construct_scalar(node).replace("_", "").lower()
    return float(text.replace(".inf", "inf").replace(".nan", "nan"))


def _construct_mapping(loader, node, deep=False):
    seen: dict[object, int] = {}  # key -> the line it is defined on
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ComposeError("a mapping key must be a scalar", line=key_node.start_mark.line + 1) from None
        if key in seen:
            raise ComposeError(f"mapping key {key!r} already defined at line {seen[key]}",
                               line=key_node.start_mark.line + 1)
        seen[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    return {loader.construct_object(k, deep=True): loader.construct_object(v, deep=True)
            for k, v in node.value}


def _construct_reset(loader, node):
    return ResetTag()


def _construct_override(loader, node):
    if isinstance(node, yaml.MappingNode):
        return OverrideTag(_construct_mapping(loader, node))
    if isinstance(node, yaml.SequenceNode):
        return OverrideTag(loader.construct_sequence(node, deep=True))
    return OverrideTag(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("!reset", _construct_reset)
_Loader.add_constructor("!override", _construct_override)


@dataclass
class Document:
    """One parsed compose file: its data and the line of each path in it."""
    name: str                      # what errors call it: a path, or "-" for stdin
    data: dict
    lines: dict = field(default_factory=dict)

    def line_of(self, path) -> int | None:
        """The line of the deepest known prefix of `path`."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


def decode(raw: bytes, name: str) -> str:
    """Text of a compose file: UTF-8, or UTF-16/32 when a BOM says so."""
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                       (b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"),
                       (b"\xfe\xff", "utf-16-be")):
        if raw.startswith(bom):
            raw, encoding = raw[len(bom):], codec
            break
    else:
        encoding = "utf-8"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ComposeError(f"not valid {encoding.upper()} text (byte {exc.start})", file=name) from None


MAX_DEPTH = 64
MAX_NODES = 200_000


def _record_lines(node, path, lines, depth=0):
    """Line of every path under `node` (merge keys are flattened by then).

    Also the guard against alias bombs and recursive aliases, which every later
    walk over the data would otherwise expand."""
    if depth > MAX_DEPTH:
        raise ComposeError(f"nesting deeper than {MAX_DEPTH} levels (a recursive alias?)",
                           line=node.start_mark.line + 1)
    if len(lines) > MAX_NODES:
        raise ComposeError(f"more than {MAX_NODES} values once aliases are expanded")
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            sub = path + (key_node.value,)
            lines.setdefault(sub, key_node.start_mark.line + 1)
            _record_lines(value_node, sub, lines, depth + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = path + (index,)
            lines.setdefault(sub, item.start_mark.line + 1)
            _record_lines(item, sub, lines, depth + 1)


def parse(text: str, name: str) -> Document:
    """Parse one compose file; an empty file is an empty mapping."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except ComposeError as exc:
        raise ComposeError(exc.message, file=name, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ComposeError(f"invalid YAML: {problem}", file=name,
                           line=mark.line + 1 if mark else None) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ComposeError(f"invalid YAML: {exc}", file=name) from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ComposeError(f"top-level object must be a mapping, not {type_name(data)}", file=name,
                           line=1)
    lines: dict = {}
    try:
        _record_lines(node, (), lines)
    except ComposeError as exc:
        raise ComposeError(exc.message, file=name, line=exc.line) from None
    return Document(name, data, lines)


def type_name(value) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)
