"""Merge compose files by the Compose Specification's rules (later files win).

Mappings merge key by key; `command`, `entrypoint` and `healthcheck.test` are replaced
whole; list-or-mapping fields (environment, labels, ...) merge as mappings; ports,
volumes, secrets and configs are unique by what they bind, so an override replaces the
entry with the same target; other sequences are appended without duplicates.
`!reset` removes a value and `!override` replaces it without merging.
"""
from covey.compose.ports import normalize_ports, port_key
from covey.compose.yamlload import OverrideTag, ResetTag

_REPLACE = [("services", "*", "command"), ("services", "*", "entrypoint"),
            ("services", "*", "healthcheck", "test"), ("services", "*", "ulimits", "*")]
_AS_MAPPING = [("services", "*", k) for k in ("environment", "labels", "sysctls", "extra_hosts",
                                               "annotations", "networks", "depends_on")] + [
    ("services", "*", "deploy", "labels"), ("services", "*", "build", "args"),
    ("services", "*", "build", "labels"), ("networks", "*", "labels"),
    ("volumes", "*", "labels"), ("secrets", "*", "labels"), ("configs", "*", "labels")]
_UNIQUE = ["ports", "volumes", "secrets", "configs", "expose", "devices", "external_links"]


def _matches(patterns, path) -> bool:
    return any(len(p) == len(path) and all(a == "*" or a == b for a, b in zip(p, path, strict=True))
               for p in patterns)


def to_mapping(value, sep: str = "=") -> dict:
    """A list-or-mapping field as a mapping: ["A=1", "B"] -> {"A": "1", "B": None}."""
    if isinstance(value, dict):
        return dict(value)
    result = {}
    for item in value or []:
        if isinstance(item, str):
            key, found, val = item.partition(sep)
            result[key] = val if found else None
        else:
            result[item] = None
    return result


def _hosts_mapping(value) -> dict:
    """extra_hosts: "host:ip" or "host=ip" (IPv6 addresses hold colons)."""
    if isinstance(value, dict):
        return dict(value)
    result = {}
    for item in value or []:
        sep = "=" if "=" in str(item) else ":"
        host, _, addr = str(item).partition(sep)
        result[host] = addr
    return result


def mapping_for(path, value) -> dict:
    if path[-1] == "extra_hosts":
        return _hosts_mapping(value)
    if path[-1] in ("networks", "depends_on") and isinstance(value, list):
        return {name: None for name in value}
    return to_mapping(value)


def strip_tags(value):
    """The plain data of a value that may hold !override or !reset tags."""
    if isinstance(value, OverrideTag):
        return strip_tags(value.value)
    if isinstance(value, dict):
        return {k: strip_tags(v) for k, v in value.items() if not isinstance(v, ResetTag)}
    if isinstance(value, list):
        return [strip_tags(v) for v in value if not isinstance(v, ResetTag)]
    return value


def _unique_key(field: str, item, index: int):
    if field == "ports":
        if isinstance(item, dict) and "target" in item:
            try:
                return tuple(port_key(p) for p in normalize_ports([item]))
            except (ValueError, TypeError, Exception):
                return ("#", index)
        return (str(item),)
    if field == "volumes":
        if isinstance(item, dict):
            return item.get("target")
        parts = str(item).split(":")
        return parts[1] if len(parts) > 1 else parts[0]
    if field in ("secrets", "configs"):
        if isinstance(item, dict):
            return item.get("target") or item.get("source")
        return item
    return item if isinstance(item, (str, int, float)) else ("#", index)


def _merge_unique(field, base: list, over: list) -> list:
    keyed = {}
    for index, item in enumerate(list(base) + list(over)):
        keyed[_unique_key(field, item, index)] = item   # dict keeps the first position
    return list(keyed.values())


def merge(base, over, path=()):
    """`over` merged onto `base`; neither is changed."""
    if isinstance(over, OverrideTag):
        return strip_tags(over.value)
    if path and (_matches(_REPLACE, path) or base is None):
        return strip_tags(over)
    if path and _matches(_AS_MAPPING, path):
        base, over = mapping_for(path, base), mapping_for(path, over)
    if isinstance(base, dict) and isinstance(over, dict):
        return _merge_mappings(base, over, path)
    if isinstance(base, list) and isinstance(over, list):
        over = strip_tags(over)
        if len(path) == 3 and path[0] == "services" and path[2] in _UNIQUE:
            return _merge_unique(path[2], base, over)
        return base + [v for v in over if v not in base]
    return strip_tags(over)


def _merge_mappings(base: dict, over: dict, path) -> dict:
    if len(path) == 3 and path[0] == "services" and path[2] == "logging":
        if over.get("driver") not in (None, base.get("driver")):
            return strip_tags(over)
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, ResetTag):
            result.pop(key, None)
        elif key in result:
            result[key] = merge(result[key], value, path + (key,))
        else:
            result[key] = strip_tags(value)
    return result


def merge_all(datas: list) -> dict:
    result = strip_tags(datas[0])
    for data in datas[1:]:
        result = merge(result, data)
    return result
