"""Port syntax: `[[ip:]published[-end]:]target[-end][/protocol]` and the long form."""
import re

from covey.compose.errors import ComposeError

_SHORT = re.compile(r"^(?:(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9.]+|[0-9a-fA-F:]*::[0-9a-fA-F:]*):)?"
                    r"(?P<pub>\d*)(?:-(?P<pub_end>\d+))?:)?"
                    r"(?P<target>\d+)(?:-(?P<target_end>\d+))?(?:/(?P<proto>[a-zA-Z]+))?$")


def _port(text, what, path):
    value = int(text)
    if not 0 <= value <= 65535:
        raise ComposeError(f"{what} port {value} is out of range (0-65535)", path=path)
    return value


def parse_short(spec, path=()) -> list[dict]:
    """One short port spec as long-form dicts (a range gives one per port)."""
    text = str(spec)
    match = _SHORT.match(text)
    if not match:
        raise ComposeError(f"invalid port {text!r}: expected [[IP:]PUBLISHED:]TARGET[/PROTOCOL]",
                           path=path)
    g = match.groupdict()
    start = _port(g["target"], "target", path)
    end = _port(g["target_end"], "target", path) if g["target_end"] else start
    pub_start = _port(g["pub"], "published", path) if g["pub"] else None
    pub_end = _port(g["pub_end"], "published", path) if g["pub_end"] else pub_start
    if end < start or (pub_start is not None and pub_end < pub_start):
        raise ComposeError(f"invalid port range in {text!r}", path=path)
    if pub_start is not None and end > start and pub_end - pub_start != end - start:
        raise ComposeError(f"port ranges in {text!r} differ in length", path=path)
    protocol = (g["proto"] or "tcp").lower()
    if protocol not in ("tcp", "udp", "sctp"):
        raise ComposeError(f"invalid protocol {g['proto']!r} in port {text!r}", path=path)
    result = []
    for offset in range(end - start + 1):
        port = {"mode": "ingress", "target": start + offset, "protocol": protocol}
        if pub_start is not None:
            # a published range for one target means "any of these": a swarm takes the first
            port["published"] = pub_start + offset
        if g["ip"]:
            port["host_ip"] = g["ip"].strip("[]")
        result.append(port)
    return result


def normalize_long(port: dict, path=()) -> list[dict]:
    """A long-form port with its defaults; `published` may be a range string."""
    result = {"mode": port.get("mode") or "ingress", "target": int(port["target"]),
              "protocol": (port.get("protocol") or "tcp").lower()}
    for key in ("name", "host_ip", "app_protocol"):
        if port.get(key):
            result[key] = port[key]
    published = port.get("published")
    if published in (None, ""):
        return [result]
    text = str(published)
    first = text.split("-", 1)[0]     # a range means "any of these": a swarm takes the first
    if not first.isdigit():
        raise ComposeError(f"invalid published port {text!r}", path=path)
    result["published"] = _port(first, "published", path)
    return [result]


def normalize_ports(ports, path=()) -> list[dict]:
    out = []
    for i, port in enumerate(ports or []):
        sub = tuple(path) + (i,)
        out.extend(normalize_long(port, sub) if isinstance(port, dict) else parse_short(port, sub))
    return out


def port_key(port: dict) -> tuple:
    """What makes two ports the same one when files are merged."""
    return (port.get("host_ip", ""), port.get("published"), port["target"], port["protocol"],
            port["mode"])
