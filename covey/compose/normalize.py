"""Bring a merged compose model to one canonical shape, resolving what needs the
client: env files, relative paths, `KEY`-only environment entries, references.

After this, every list-or-mapping field is a mapping, ports and service volumes are in
long form, commands are lists, and every name a service uses is declared.
"""
import os
import shlex
from pathlib import Path

from covey.compose.envfile import read_env_file
from covey.compose.errors import ComposeError
from covey.compose.merge import mapping_for, to_mapping
from covey.compose.ports import normalize_ports
from covey.compose.volumes import normalize_service_volume

_RESOURCES = ("networks", "volumes", "secrets", "configs")


class Context:
    """What normalizing needs: where relative paths start, variables, error locations."""
    def __init__(self, workdir: Path, env: dict, locate=None):
        self.workdir = workdir
        self.env = env
        self.locate = locate or (lambda path: (None, None))
        self.warnings: list[str] = []

    def error(self, message: str, path) -> ComposeError:
        file, line = self.locate(tuple(path))
        return ComposeError(message, file=file, path=path, line=line)

    def resolve(self, path: str) -> str:
        """A host path on this client, absolute (relative ones start at the first file)."""
        expanded = os.path.expanduser(path)
        return os.path.normpath(self.workdir / expanded)


def _as_str(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _str_mapping(value) -> dict:
    return {str(k): _as_str(v) for k, v in to_mapping(value).items()}


def normalize(data: dict, ctx: Context) -> dict:
    out = {k: v for k, v in data.items() if k not in ("version", "services") + _RESOURCES}
    for kind in _RESOURCES:
        out[kind] = {name: _resource(kind, name, spec, ctx)
                     for name, spec in (data.get(kind) or {}).items()}
    services = {}
    for name, spec in (data.get("services") or {}).items():
        spec = spec or {}
        if spec.get("profiles"):
            ctx.warnings.append(f"service {name!r} skipped: it belongs to profiles "
                                f"{', '.join(map(str, spec['profiles']))}, and none is active")
            continue
        services[name] = spec
    out["services"] = {name: _service(name, spec, ctx) for name, spec in services.items()}
    _check_references(out, ctx)
    return out


def _resource(kind: str, name: str, spec, ctx: Context) -> dict:
    spec = dict(spec or {})
    path = (kind, name)
    external = spec.get("external")
    if isinstance(external, dict):          # v3's `external: {name: x}`
        if spec.get("name") and external.get("name") and spec["name"] != external["name"]:
            raise ctx.error("conflicting names in name and external.name", path + ("external",))
        spec["name"] = spec.get("name") or external.get("name") or name
        external = spec["external"] = True
    if external:
        for key in ("driver", "driver_opts", "labels", "ipam", "file", "environment", "content"):
            if spec.get(key) and not (kind == "networks" and key == "driver"):
                raise ctx.error(f'conflicting parameters "external" and "{key}" specified for '
                                f'{kind[:-1]} "{name}"', path + (key,))
    if "labels" in spec:
        spec["labels"] = _str_mapping(spec["labels"])
    if "driver_opts" in spec:
        spec["driver_opts"] = {str(k): _as_str(v) for k, v in (spec["driver_opts"] or {}).items()}
    if kind in ("secrets", "configs") and not external:
        _secret_source(kind, name, spec, ctx)
    return spec


def _secret_source(kind: str, name: str, spec: dict, ctx: Context) -> None:
    if spec.get("file"):
        spec["file"] = ctx.resolve(str(spec["file"]))
    if spec.get("environment"):
        var = str(spec["environment"])
        if var not in ctx.env:
            raise ctx.error(f"environment variable {var} is not set", (kind, name, "environment"))


def _service(name: str, spec: dict, ctx: Context) -> dict:
    path = ("services", name)
    spec = dict(spec)
    env = {}
    if "env_file" in spec:
        env.update(_env_files(spec.pop("env_file"), path + ("env_file",), ctx))
    for key, value in _str_mapping(spec.get("environment")).items():
        env[key] = value
    env = {k: (ctx.env.get(k) if v is None else v) for k, v in env.items()}
    if env or "environment" in spec:
        spec["environment"] = env
    for key in ("labels", "sysctls", "annotations"):
        if key in spec:
            spec[key] = _str_mapping(spec[key])
    if "extra_hosts" in spec:
        spec["extra_hosts"] = {str(k): _as_str(v)
                               for k, v in mapping_for(("extra_hosts",), spec["extra_hosts"]).items()}
    for key in ("command", "entrypoint"):
        if isinstance(spec.get(key), str):
            spec[key] = _split(spec[key], path + (key,), ctx)
    if "ports" in spec:
        spec["ports"] = _located(lambda: normalize_ports(spec["ports"], path + ("ports",)), ctx)
    if "volumes" in spec:
        spec["volumes"] = [_located(lambda v=v, i=i: normalize_service_volume(v, path + ("volumes", i), ctx), ctx)
                           for i, v in enumerate(spec["volumes"] or [])]
    for key in ("secrets", "configs"):
        if key in spec:
            spec[key] = [{"source": v} if isinstance(v, str) else dict(v) for v in spec[key] or []]
    for key in ("networks", "depends_on"):
        if key in spec:
            spec[key] = _named_mapping(key, spec[key])
    if isinstance(spec.get("deploy"), dict):
        spec["deploy"] = _deploy(spec["deploy"])
    elif "deploy" in spec and spec["deploy"] is None:
        del spec["deploy"]
    if isinstance(spec.get("healthcheck"), dict) and isinstance(spec["healthcheck"].get("test"), str):
        spec["healthcheck"] = {**spec["healthcheck"],
                               "test": ["CMD-SHELL", spec["healthcheck"]["test"]]}
    return spec


def _located(func, ctx: Context):
    """Run a helper that raises path-only errors, adding the file and line."""
    try:
        return func()
    except ComposeError as exc:
        if exc.file:
            raise
        raise ctx.error(exc.message, exc.path) from None


def _split(text: str, path, ctx: Context) -> list:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ctx.error(f"cannot split {text!r} into words: {exc}", path) from None


def _named_mapping(key: str, value) -> dict:
    result = {}
    for name, options in mapping_for((key,), value).items():
        if key == "depends_on":
            options = {"condition": "service_started", "required": True, **(options or {})}
        result[name] = dict(options) if options else {}
    return result


def _deploy(deploy: dict) -> dict:
    deploy = dict(deploy)
    if "labels" in deploy:
        deploy["labels"] = _str_mapping(deploy["labels"])
    return deploy


def _env_files(value, path, ctx: Context) -> dict:
    entries = [value] if isinstance(value, str) else list(value or [])
    env: dict = {}
    for i, entry in enumerate(entries):
        entry = {"path": entry} if isinstance(entry, str) else dict(entry)
        file = ctx.resolve(str(entry.get("path", "")))
        if not os.path.exists(file) and entry.get("required") is False:
            continue
        try:
            env.update(read_env_file(file, ctx.env, raw=entry.get("format") == "raw"))
        except ComposeError as exc:
            if exc.line:
                raise
            raise ctx.error(f"env file {file}: {exc.message}", path + (i,)) from None
    return env


def _check_references(model: dict, ctx: Context) -> None:
    for name, spec in model["services"].items():
        path = ("services", name)
        for dep in list(spec.get("depends_on") or {}):
            if dep not in model["services"]:   # Docker ignores depends_on; we warn and go on
                ctx.warnings.append(f"service {name!r} depends on undefined service {dep!r}: "
                                    f"the dependency is ignored")
                del spec["depends_on"][dep]
        for net in spec.get("networks") or {}:
            if net not in model["networks"] and net != "default":
                raise ctx.error(f"service {name!r} refers to undefined network {net!r}",
                                path + ("networks", net))
        for i, vol in enumerate(spec.get("volumes") or []):
            if vol.get("type") == "volume" and vol.get("source") and vol["source"] not in model["volumes"]:
                raise ctx.error(f"service {name!r} refers to undefined volume {vol['source']!r}",
                                path + ("volumes", i))
        for kind in ("secrets", "configs"):
            for i, ref in enumerate(spec.get(kind) or []):
                if ref.get("source") not in model[kind]:
                    raise ctx.error(f"service {name!r} refers to undefined {kind[:-1]} "
                                    f"{ref.get('source')!r}", path + (kind, i))
