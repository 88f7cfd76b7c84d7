"""Service volumes: the short `[SOURCE:]TARGET[:MODE]` form as the long form."""
from covey.compose.errors import ComposeError

_PROPAGATION = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}
_CONSISTENCY = {"cached", "delegated", "consistent"}


def _is_path(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or source in (".", "..")


def parse_short(text: str, path) -> dict:
    parts = text.split(":")
    if len(parts) > 3 or not all(parts[:2]):
        raise ComposeError(f"invalid volume {text!r}: expected [SOURCE:]TARGET[:MODE]", path=path)
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    source, target = parts[0], parts[1]
    volume = {"type": "bind" if _is_path(source) else "volume", "source": source, "target": target}
    for flag in (parts[2].split(",") if len(parts) == 3 else []):
        _apply_flag(volume, flag, text, path)
    return volume


def _apply_flag(volume: dict, flag: str, text: str, path) -> None:
    if flag in ("ro", "rw"):
        volume["read_only"] = flag == "ro"
    elif flag in ("z", "Z"):
        volume.setdefault("bind", {})["selinux"] = flag
    elif flag == "nocopy" and volume["type"] == "volume":
        volume.setdefault("volume", {})["nocopy"] = True
    elif flag in _PROPAGATION and volume["type"] == "bind":
        volume.setdefault("bind", {})["propagation"] = flag
    elif flag in _CONSISTENCY:
        volume["consistency"] = flag
    else:
        raise ComposeError(f"invalid mode {flag!r} in volume {text!r}", path=path)


def normalize_service_volume(value, path, ctx) -> dict:
    """One service volume in long form, bind sources made absolute on this client."""
    volume = parse_short(value, path) if isinstance(value, str) else dict(value)
    volume["type"] = volume.get("type") or "volume"   # Docker reads an empty type as volume
    if not volume.get("target"):
        raise ComposeError("a volume needs a target path in the container", path=path)
    if volume["type"] == "bind":
        if not volume.get("source"):
            raise ComposeError("a bind mount needs a source path", path=path)
        volume["source"] = ctx.resolve(str(volume["source"]))
    elif volume["type"] not in ("volume", "tmpfs", "npipe", "cluster", "image"):
        raise ComposeError(f"unknown volume type {volume['type']!r}: use bind, volume or tmpfs",
                           path=path + ("type",))
    if volume["type"] == "tmpfs" and volume.get("source"):
        raise ComposeError("a tmpfs mount takes no source", path=path + ("source",))
    return volume
