"""Published ports on the command line, in Docker's grammar: `-p/--publish` (short form
`[PUBLISHED:]TARGET[/PROTOCOL]` with ranges, or long form `published=8080,target=80,
protocol=udp,mode=host`), `--publish-rm`, and their rendering in `service ls` / `service ps`
(`*:8080-8082->80-82/tcp`, consecutive ports collapsed as Docker does). The port syntax itself
is compose's (covey/compose/ports.py): one home for it."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from covey.compose.ports import normalize_long, parse_short
from covey.errors import InvalidArgument
from proto import specs_pb2 as specs

PROTOCOLS = {"tcp": specs.PortConfig.TCP, "udp": specs.PortConfig.UDP, "sctp": specs.PortConfig.SCTP}
MODES = {"ingress": specs.PortConfig.INGRESS, "host": specs.PortConfig.HOST}
LONG_KEYS = ("published", "target", "protocol", "mode", "name")


def parse_publish(text: str) -> list[specs.PortConfig]:
    """One --publish value as the ports it publishes (a range gives one per port)."""
    text = text.strip()
    if "=" in text:
        fields = _long_fields(text)
        if "target" not in fields:
            raise InvalidArgument(f"invalid --publish {text!r}: target= is required")
        if not fields["target"].isdigit():
            raise InvalidArgument(f"invalid --publish {text!r}: target {fields['target']!r} is not a port number")
        ports = normalize_long(fields, ("--publish",))
    else:
        ports = parse_short(text, ("--publish",))
    return [_config(text, p) for p in ports]


def _long_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in LONG_KEYS:
            raise InvalidArgument(f"invalid --publish {text!r}: {part!r} is not one of "
                                  f"{', '.join(k + '=' for k in LONG_KEYS)}")
        fields[name] = value.strip()
    return fields


def _config(text: str, port: dict) -> specs.PortConfig:
    if port["protocol"] not in PROTOCOLS:
        raise InvalidArgument(f"invalid --publish {text!r}: protocol {port['protocol']!r} is not tcp, udp or sctp")
    if port["mode"] not in MODES:
        raise InvalidArgument(f"invalid --publish {text!r}: mode {port['mode']!r} is not ingress or host")
    if not 1 <= port["target"] <= 65535:
        raise InvalidArgument(f"invalid --publish {text!r}: target port {port['target']} is out of range (1-65535)")
    return specs.PortConfig(name=port.get("name", ""), protocol=PROTOCOLS[port["protocol"]],
                            target_port=port["target"], published_port=port.get("published") or 0,
                            publish_mode=MODES[port["mode"]])


def parse_all(texts: Iterable[str]) -> list[specs.PortConfig]:
    return [port for text in texts for port in parse_publish(text)]


def without(ports: Iterable[specs.PortConfig], removals: Iterable[str],
            allocated: Sequence[specs.PortConfig] = ()) -> list[specs.PortConfig]:
    """The ports less those `--publish-rm` names: by published port (`8080`, `8080/udp`), or as
    published (`8080:80`, `8080:80/udp`, a long form); a protocol left out matches tcp, as Docker.
    An automatic port (0 in the spec) answers to the number it was given (`allocated`)."""
    ports = list(ports)
    for text in removals:
        wanted = _removal(text)
        kept = [p for p in ports if not _matches(_numbered(p, allocated), wanted)]
        if len(kept) == len(ports):
            raise InvalidArgument(f"--publish-rm {text}: the service publishes no such port")
        ports = kept
    return ports


def edit(endpoint: specs.EndpointSpec, removals: list[str], additions: list[str],
         allocated: Sequence[specs.PortConfig] = ()) -> None:
    """`service update --publish-rm R --publish-add A`: an added port replaces what publishes
    the same number and protocol, as Docker's does."""
    added = parse_all(additions)
    kept = [p for p in without(endpoint.ports, removals, allocated)
            if not any(p.published_port and (p.published_port, p.protocol) == (a.published_port, a.protocol)
                       for a in added)]
    del endpoint.ports[:]
    endpoint.ports.extend(kept + added)


def _removal(text: str) -> list[specs.PortConfig]:
    if "=" not in text and ":" not in text:
        number, _, protocol = text.partition("/")
        if not number.isdigit():
            raise InvalidArgument(f"invalid --publish-rm {text!r}: give a published port, e.g. 8080 or 8080/udp")
        if (protocol.lower() or "tcp") not in PROTOCOLS:
            raise InvalidArgument(f"invalid --publish-rm {text!r}: protocol {protocol!r} is not tcp, udp or sctp")
        return [specs.PortConfig(published_port=int(number), protocol=PROTOCOLS[protocol.lower() or "tcp"])]
    return parse_publish(text)


def _numbered(port: specs.PortConfig, allocated: Sequence[specs.PortConfig]) -> specs.PortConfig:
    """The spec's port with the number the managers gave it, if it asked for none."""
    if port.published_port:
        return port
    given = next((a for a in allocated if (a.target_port, a.protocol, a.publish_mode) ==
                  (port.target_port, port.protocol, port.publish_mode) and a.published_port), None)
    return given or port


def _matches(port: specs.PortConfig, wanted: list[specs.PortConfig]) -> bool:
    return any(port.published_port == w.published_port and port.protocol == w.protocol
               and (not w.target_port or w.target_port == port.target_port) for w in wanted)


def _protocol(port: specs.PortConfig) -> str:
    return specs.PortConfig.Protocol.Name(port.protocol).lower()


def render(ports: Iterable[specs.PortConfig]) -> str:
    """`*:8080-8082->80-82/tcp, *:9000->90/udp`: consecutive published and target ports of one
    protocol collapse into ranges (Docker's PORTS column). Ports not yet given a number show 0."""
    ordered = sorted(ports, key=lambda p: (_protocol(p), p.published_port, p.target_port))
    groups: list[list[specs.PortConfig]] = []
    for port in ordered:
        last = groups[-1][-1] if groups else None
        if (last is not None and _protocol(last) == _protocol(port) and port.published_port
                and port.published_port == last.published_port + 1 and port.target_port == last.target_port + 1):
            groups[-1].append(port)
        else:
            groups.append([port])
    return ", ".join(_group_text(g) for g in groups)


def _group_text(group: list[specs.PortConfig]) -> str:
    first, last = group[0], group[-1]
    if len(group) == 1:
        return f"*:{first.published_port}->{first.target_port}/{_protocol(first)}"
    return (f"*:{first.published_port}-{last.published_port}->"
            f"{first.target_port}-{last.target_port}/{_protocol(first)}")


def ingress_ports(ports: Iterable[specs.PortConfig]) -> list[specs.PortConfig]:
    """What `service ls` shows: the ports the mesh answers on every node (as Docker)."""
    return [p for p in ports if p.publish_mode == specs.PortConfig.INGRESS]


def endpoint_ports(ports: Iterable[specs.PortConfig]) -> list[dict]:
    """Docker's Endpoint.Ports / Spec.Ports of `service inspect`."""
    return [{"Protocol": _protocol(p), "TargetPort": p.target_port, "PublishedPort": p.published_port,
             "PublishMode": specs.PortConfig.PublishMode.Name(p.publish_mode).lower(),
             **({"Name": p.name} if p.name else {})} for p in ports]
