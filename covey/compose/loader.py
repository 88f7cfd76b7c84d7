"""Load compose files: read, interpolate, validate, merge, normalize, convert.

    load_model(files, ...)  -> Loaded (the normalized compose model, for `stack config`)
    load_stack(files, ...)  -> (StackSpec, warnings), for `stack deploy`
"""
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from covey.compose.casting import cast
from covey.compose.compat import swarm_warnings
from covey.compose.convert import convert
from covey.compose.envfile import read_env_file
from covey.compose.errors import ComposeError
from covey.compose.interpolate import interpolate, unset_warnings
from covey.compose.merge import merge_all
from covey.compose.normalize import Context, normalize
from covey.compose.validate import validate_schema
from covey.compose.yamlload import Document, decode, parse

_STACK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass
class Loaded:
    model: dict                        # merged, interpolated, normalized
    warnings: list = field(default_factory=list)
    context: Context | None = None


def _read(name: str, stdin) -> bytes:
    if name == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        return stream.read()
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ComposeError(f"cannot read compose file: {exc.strerror or exc}", file=name) from None


def _environment(workdir: Path, env_files, environ) -> dict:
    """Variables for interpolation: the env files (or `.env` beside the first compose
    file when none is given), overridden by the process environment."""
    base = dict(os.environ if environ is None else environ)
    files = list(env_files) or ([workdir / ".env"] if (workdir / ".env").is_file() else [])
    loaded: dict = {}
    for path in files:
        loaded.update(read_env_file(path, {**base, **loaded}))
    return {**loaded, **base}


def _locator(docs: list[Document]):
    def locate(path):
        for doc in reversed(docs):
            if path in doc.lines:
                return doc.name, doc.lines[path]
        doc = docs[-1]
        return doc.name, doc.line_of(path)
    return locate


def load_model(files, env_files=(), skip_interpolation=False, strict=False, environ=None,
               stdin=None) -> Loaded:
    files = list(files)
    if not files:
        raise ComposeError("no compose file given: use -c FILE (or -c - for stdin)")
    if files.count("-") > 1:
        raise ComposeError("stdin (-) can be read only once")
    workdir = Path.cwd() if files[0] == "-" else Path(files[0]).resolve().parent
    env = _environment(workdir, env_files, environ)
    docs, datas, warnings, unset = [], [], [], set()
    for name in files:
        doc = parse(decode(_read(name, stdin), name), name)
        data = doc.data
        if not skip_interpolation:
            data, missing = interpolate(data, env, doc)
            unset |= missing
        data = cast(data)
        validate_schema(doc, data)
        docs.append(doc)
        datas.append(data)
    warnings += unset_warnings(unset)
    ctx = Context(workdir, env, _locator(docs))
    model = normalize(merge_all(datas), ctx)
    swarm = swarm_warnings(model)
    if strict and swarm:
        raise ComposeError("--strict: " + "; ".join(swarm))
    if not skip_interpolation:
        # the errors a deploy would meet (bad durations, sizes, ...), without reading
        # secret files; skipped with variables left in, which are not values yet
        convert(model, "stack", ctx, read_files=False)
    return Loaded(model, warnings + ctx.warnings + swarm, ctx)


def stack_name_for(loaded: Loaded, stack_name: str | None) -> str:
    name = stack_name or loaded.model.get("name")
    if not name:
        raise ComposeError("a stack name is required: give one, or set `name:` in the compose file")
    name = str(name)
    if not _STACK_NAME.match(name) or len(name) > 63:
        raise ComposeError(f"invalid stack name {name!r}: use letters, digits, '_', '.' and '-', "
                           f"starting with a letter or digit")
    return name


def load_stack(files, env_files=(), skip_interpolation=False, strict=False, stack_name=None,
               environ=None, stdin=None, read_files=True):
    """The StackSpec that `stack deploy` sends, and the warnings to show the user."""
    loaded = load_model(files, env_files, skip_interpolation, strict, environ, stdin)
    spec = convert(loaded.model, stack_name_for(loaded, stack_name), loaded.context, read_files)
    return spec, loaded.warnings


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True                     # anchors were shared objects: print them expanded


def render_yaml(model: dict) -> str:
    return yaml.dump(model, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1000)
