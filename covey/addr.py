"""HOST:PORT, in one place: Covey's default ports, and addresses with IPv6 in brackets.

`10.1.0.1`, `10.1.0.1:4242`, `[fd00::1]:4242` and a bare `fd00::1` all parse; an IPv6
host is written back in brackets whenever a port follows it.
"""
import ipaddress

from covey.errors import InvalidArgument

API_PORT = 4242      # gRPC: control API, dispatcher, CA, log broker
RAFT_PORT_OFFSET = 1  # Raft peer traffic between managers: always the API port + 1


def split(addr: str, default_port: int = API_PORT) -> tuple[str, int]:
    """(host, port) of `addr`; `default_port` when it names none."""
    addr = addr.strip()
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif addr.count(":") == 1:
        host, _, port = addr.partition(":")
    else:
        host, port = addr, ""   # a hostname, an IPv4 address, or a bare IPv6 address
    if port and not port.isdigit():
        raise InvalidArgument(f"invalid address {addr!r}: the port must be a number")
    return host, int(port) if port else default_port


def join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def host_of(addr: str) -> str:
    return split(addr)[0]


def parse_ip_port(text: str, default_port: int, what: str) -> tuple[str, int]:
    """Like split, for what a user gives: the host must be an IP address, the port in range."""
    host, port = split(text, default_port)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: give an IP address, optionally with :PORT") from None
    if not 0 < port < 65535:
        raise InvalidArgument(f"invalid {what} {text!r}: port out of range")
    return host, port


def raft_addr(api_addr: str) -> str:
    """A manager's Raft address, from the API address it advertises."""
    host, port = split(api_addr)
    return join(host, port + RAFT_PORT_OFFSET)


def peer_host(peer: str) -> str:
    """The host of a gRPC peer string: 'ipv4:10.1.0.2:51234' or 'ipv6:%5B::1%5D:51234'."""
    _, _, rest = peer.partition(":")
    return host_of(rest.replace("%5B", "[").replace("%5D", "]"))
