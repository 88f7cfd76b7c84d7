"""Typed fields are strings after interpolation (`replicas: ${N:-3}`): cast them back.

A value that does not parse stays a string, so that the schema reports it with its path.
"""
from collections.abc import Callable

from covey.compose.yamlload import OverrideTag

_TRUE = {"y", "yes", "true", "on"}
_FALSE = {"n", "no", "false", "off"}


def _to_bool(text: str):
    low = text.lower()
    return True if low in _TRUE else False if low in _FALSE else text


def _to_int(text: str):
    try:
        return int(text.strip(), 10)
    except ValueError:
        return text


def _to_mode(text: str):
    """File modes: "0440" is octal, as it would be in YAML."""
    t = text.strip()
    try:
        return int(t[2:], 8) if t.startswith("0o") else int(t, 8) if t.startswith("0") else int(t)
    except ValueError:
        return text


def _to_float(text: str):
    try:
        return float(text)
    except ValueError:
        return text


# path pattern ("*" for any key) -> the cast for the string found there
_Rules = dict[tuple[str, ...], Callable[[str], object]]

_SERVICE: _Rules = {
    ("deploy", "replicas"): _to_int,
    ("deploy", "update_config", "parallelism"): _to_int,
    ("deploy", "update_config", "max_failure_ratio"): _to_float,
    ("deploy", "rollback_config", "parallelism"): _to_int,
    ("deploy", "rollback_config", "max_failure_ratio"): _to_float,
    ("deploy", "restart_policy", "max_attempts"): _to_int,
    ("deploy", "placement", "max_replicas_per_node"): _to_int,
    ("deploy", "resources", "limits", "pids"): _to_int,
    ("healthcheck", "retries"): _to_int,
    ("healthcheck", "disable"): _to_bool,
    ("ports", "*", "target"): _to_int,
    ("secrets", "*", "mode"): _to_mode,
    ("configs", "*", "mode"): _to_mode,
    ("ulimits", "*"): _to_int,
    ("ulimits", "*", "soft"): _to_int,
    ("ulimits", "*", "hard"): _to_int,
    ("volumes", "*", "read_only"): _to_bool,
    ("volumes", "*", "volume", "nocopy"): _to_bool,
    ("volumes", "*", "bind", "create_host_path"): _to_bool,
    ("init",): _to_bool, ("privileged",): _to_bool, ("read_only",): _to_bool,
    ("stdin_open",): _to_bool, ("tty",): _to_bool, ("oom_kill_disable",): _to_bool,
    ("scale",): _to_int, ("pids_limit",): _to_int, ("cpu_shares",): _to_int,
    ("cpu_count",): _to_int, ("cpu_percent",): _to_float, ("oom_score_adj",): _to_int,
}
_TOP: _Rules = {
    ("networks", "*", "external"): _to_bool,
    ("networks", "*", "internal"): _to_bool,
    ("networks", "*", "attachable"): _to_bool,
    ("networks", "*", "enable_ipv6"): _to_bool,
    ("volumes", "*", "external"): _to_bool,
    ("secrets", "*", "external"): _to_bool,
    ("configs", "*", "external"): _to_bool,
}
_RULES: _Rules = {**_TOP, **{("services", "*") + k: f for k, f in _SERVICE.items()}}


def _matches(pattern, path) -> bool:
    return len(pattern) == len(path) and all(p == "*" or p == q for p, q in zip(pattern, path, strict=True))


def cast(data, path=()):
    """A copy of `data` with the typed fields that hold strings converted."""
    if isinstance(data, dict):
        return {k: cast(v, path + (k,)) for k, v in data.items()}
    if isinstance(data, list):
        return [cast(v, path + (i,)) for i, v in enumerate(data)]
    if isinstance(data, OverrideTag):
        return OverrideTag(cast(data.value, path))
    if isinstance(data, str) and len(path) <= 7:
        for pattern, func in _RULES.items():
            if _matches(pattern, path):
                return func(data)
    return data
