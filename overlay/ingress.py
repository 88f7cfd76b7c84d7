"""The ingress routing mesh on one node, as nftables scripts and the state they were made
from (docs/design.md, "Ingress routing mesh"). The kernel calls are the driver's.

- Host namespace, table `<prefix>mesh`: connections to a published port on any local address
  (prerouting `fib daddr type local`, and output for the node's own clients, 127.0.0.1 too)
  are DNATed to the ingress sandbox's end of its egress link; 127.0.0.0/8 and sandbox-link
  sources are masqueraded onto that link (route_localnet lets the former leave lo).
- Ingress sandbox, table `<prefix>mesh`: a verdict map (protocol . port -> a chain per
  port, so the cost per connection does not grow with the number of ports) DNATs to the
  backends in turn (`numgen inc`); default mode marks the packet and SNATs it to the node's
  ingress address as it leaves the bridge, so that the reply comes back here.
- Task namespace, table `<prefix>rt`: a connection that came in from a node's ingress
  sandbox (its source MAC is mac_of(the node's ingress address)) gets a connmark naming that
  node; replies carry it as their mark, and a policy route per node sends them back through
  it. So without SNAT (client IP preserved, host mode) the reply still goes through the node
  that has the connection's NAT state, wherever the task runs.

A change is one transaction per namespace holding only what changed: a port's chain is
flushed and refilled, map and set elements are added or deleted one by one.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from overlay.api import OverlayError
from overlay.model import HOST_MODE, INGRESS_MODE, TCP, UDP, PublishedPort, mac_of
from overlay.nft import replace_table

SNAT_MARK = 0x1D5E0001          # packets DNATed by the sandbox that are SNATed as they leave
ROUTE_MARK_BASE = 0x1D600000    # + a node's offset in the ingress subnet: its connmark and table
ROUTE_RULE_PRIORITY = 100       # the reply-route rules, ahead of the main table (32766)
MAX_SUBNET_HOSTS = 1 << 20      # offsets must stay under the next mark's bits
MIN_ESTABLISHED_TIMEOUT = 4 * 3600   # s: below this an idle mesh connection would be dropped
ESTABLISHED_TIMEOUT = 432000         # s: the kernel's own default (5 days), set when lower
CONNTRACK_ESTABLISHED = "net.netfilter.nf_conntrack_tcp_timeout_established"

Key = tuple[str, int]


def check_port(port: PublishedPort) -> PublishedPort:
    """The port, with its backends as IPv4 addresses in order without repeats; a clear error
    for anything that must not reach a script."""
    what = f"published port {port.published}/{port.protocol}"
    if port.protocol not in (TCP, UDP):
        raise OverlayError(f"{what}: protocol must be {TCP} or {UDP}")
    for name, number in (("published", port.published), ("target", port.target)):
        if not 1 <= number <= 65535:
            raise OverlayError(f"{what}: {name} port {number} is outside 1-65535")
    if port.mode not in (INGRESS_MODE, HOST_MODE):
        raise OverlayError(f"{what}: mode must be {INGRESS_MODE} or {HOST_MODE}, not {port.mode!r}")
    backends = tuple(dict.fromkeys(ipv4(b, f"{what}: backend") for b in port.backends))
    if backends == port.backends:
        return port
    return PublishedPort(port.protocol, port.published, port.target, backends, port.mode, port.preserve_client_ip)


def answered(port: PublishedPort) -> bool:
    """Ingress mode answers on every node; host mode only where a task runs."""
    return port.mode == INGRESS_MODE or bool(port.backends)


def chain_of(key: Key) -> str:
    return f"p_{key[0]}_{key[1]}"


def element(key: Key) -> str:
    return f"{key[0]} . {key[1]}"


# ---------------------------------------------------------------------- host namespace

def host_table(name: str, sandbox_addr: str, egress_if: str, link_pool: str, keys: Iterable[Key]) -> str:
    """Published ports DNATed to the sandbox. What goes to it from 127.0.0.0/8 or from a
    sandbox's egress (a container calling a host address: the sandbox would take its own
    address for a martian) is masqueraded to the host's end of the link."""
    target = ipv4(sandbox_addr, "sandbox address")
    pool = ipaddress.IPv4Network(link_pool)
    match = f"fib daddr type local meta l4proto . th dport @ports dnat ip to {target}\n"
    return replace_table(name, (
        f"  set ports {{\n    type inet_proto . inet_service\n{_elements(element(k) for k in keys)}  }}\n"
        "  chain pre {\n    type nat hook prerouting priority -100; policy accept;\n    " + match + "  }\n"
        "  chain out {\n    type nat hook output priority -100; policy accept;\n    " + match + "  }\n"
        "  chain post {\n    type nat hook postrouting priority 100; policy accept;\n"
        f'    oifname "{egress_if}" ip saddr {{ 127.0.0.0/8, {pool} }} masquerade\n  }}\n'))


def host_update(name: str, added: Iterable[Key], removed: Iterable[Key]) -> str:
    lines = [f"delete element ip {name} ports {{ {element(k)} }}\n" for k in sorted(removed)]
    lines += [f"add element ip {name} ports {{ {element(k)} }}\n" for k in sorted(added)]
    return "".join(lines)


# ---------------------------------------------------------------------- ingress sandbox

def port_rule(port: PublishedPort) -> str:
    """The DNAT of one port's new connections (empty: no backend, the sandbox refuses)."""
    if not port.backends:
        return ""
    mark = f"meta mark set {SNAT_MARK:#x} " if port.snat else ""
    if len(port.backends) == 1:
        to = f"{port.backends[0]}:{port.target}"
    else:
        slots = ", ".join(f"{i} : {b} . {port.target}" for i, b in enumerate(port.backends))
        to = f"numgen inc mod {len(port.backends)} map {{ {slots} }}"
    return f"meta l4proto {port.protocol} {mark}dnat ip to {to}"


def snat_rule(bridge: str, node_addr: str) -> str:
    return f'meta mark {SNAT_MARK:#x} oifname "{bridge}" snat ip to {ipv4(node_addr, "node ingress address")}'


def sandbox_table(name: str, bridge: str, egress: str, node_addr: str, ports: Iterable[PublishedPort]) -> str:
    ports = sorted(ports, key=lambda p: p.key)
    verdicts = _elements(f"{element(p.key)} : jump {chain_of(p.key)}" for p in ports)
    chains = "".join(f"  chain {chain_of(p.key)} {{\n" + (f"    {port_rule(p)}\n" if p.backends else "") + "  }\n"
                     for p in ports)
    return replace_table(name, (
        f"  map ports {{\n    type inet_proto . inet_service : verdict\n{verdicts}  }}\n"
        "  chain pre {\n    type nat hook prerouting priority -100; policy accept;\n"
        f'    iifname "{egress}" meta l4proto . th dport vmap @ports\n  }}\n'
        "  chain post {\n    type nat hook postrouting priority 100; policy accept;\n"
        f"    {snat_rule(bridge, node_addr)}\n  }}\n" + chains))


def sandbox_update(name: str, bridge: str, node_addr: str | None, have: dict[Key, PublishedPort],
                   want: Iterable[PublishedPort], removed: Iterable[Key]) -> str:
    """Only what differs from `have`: new ports get a chain and a map element, changed ones
    are flushed and refilled, removed ones go; a new node address rewrites the SNAT."""
    lines = []
    if node_addr is not None:
        lines += [f"flush chain ip {name} post\n", f"add rule ip {name} post {snat_rule(bridge, node_addr)}\n"]
    for key in sorted(k for k in removed if k in have):
        lines += [f"delete element ip {name} ports {{ {element(key)} }}\n",
                  f"flush chain ip {name} {chain_of(key)}\n", f"delete chain ip {name} {chain_of(key)}\n"]
    for port in sorted(want, key=lambda p: p.key):
        chain = chain_of(port.key)
        if port.key not in have:
            lines += [f"add chain ip {name} {chain}\n",
                      f"add element ip {name} ports {{ {element(port.key)} : jump {chain} }}\n"]
        elif have[port.key] == port:
            continue
        else:
            lines.append(f"flush chain ip {name} {chain}\n")
        if port.backends:
            lines.append(f"add rule ip {name} {chain} {port_rule(port)}\n")
    return "".join(lines)


@dataclass
class MeshState:
    """What the driver last wrote for the mesh; `ports` None: unknown (write whole tables)."""
    vni: int
    node_addr: str | None = None
    ports: dict[Key, PublishedPort] | None = None

    def plan(self, ports: Iterable[PublishedPort], removed: Iterable[Key],
             complete: bool) -> tuple[dict[Key, PublishedPort], list[PublishedPort], set[Key]]:
        """The ports wanted after this change, those of them to (re)write, and those to drop."""
        given = {p.key: p for p in (check_port(p) for p in ports)}
        if self.ports is None and not complete:
            raise OverlayError("the mesh has not been set whole on this node yet: a change needs complete=True first")
        have = self.ports or {}
        if complete:
            wanted = dict(given)
        else:
            wanted = {k: p for k, p in have.items() if k not in set(removed)} | given
        wanted = {k: p for k, p in wanted.items() if answered(p)}
        changed = [p for k, p in wanted.items() if have.get(k) != p]
        return wanted, changed, set(have) - set(wanted)


# ---------------------------------------------------------------------- task namespaces

def route_mark(gateway: str, subnet: str) -> int:
    """A node's connmark, fwmark and routing table in a task: from its offset in the subnet."""
    net = ipaddress.IPv4Network(subnet)
    addr = ipaddress.IPv4Address(ipv4(gateway, "node ingress address"))
    if addr not in net:
        raise OverlayError(f"node ingress address {gateway} is not in the ingress subnet {subnet}")
    if net.num_addresses > MAX_SUBNET_HOSTS:
        raise OverlayError(f"ingress subnet {subnet} is larger than the mesh's {MAX_SUBNET_HOSTS} addresses")
    return ROUTE_MARK_BASE + int(addr) - int(net.network_address)


def reply_table(name: str, ifname: str, marks: dict[str, int]) -> str:
    """Mark a new connection by the ingress MAC it came from; its replies carry the mark."""
    return replace_table(name, (
        f"  map nodes {{\n    type ether_addr : mark\n{_elements(_mark_elements(marks))}  }}\n"
        "  chain pre {\n    type filter hook prerouting priority -150; policy accept;\n"
        f'    iifname "{ifname}" ct state new ct mark set ether saddr map @nodes\n  }}\n'
        "  chain out {\n    type route hook output priority -150; policy accept;\n"
        "    ct mark != 0 meta mark set ct mark\n  }\n"))


def reply_update(name: str, have: dict[str, int], want: dict[str, int]) -> str:
    gone = {g: m for g, m in have.items() if want.get(g) != m}
    new = {g: m for g, m in want.items() if have.get(g) != m}
    lines = [f"delete element ip {name} nodes {{ {e} }}\n" for e in _mark_elements(gone, with_marks=False)]
    lines += [f"add element ip {name} nodes {{ {e} }}\n" for e in _mark_elements(new)]
    return "".join(lines)


@dataclass
class ReplyRoutes:
    """A task's reply routes as last written: node ingress address -> mark."""
    ifname: str
    marks: dict[str, int]


def _mark_elements(marks: dict[str, int], with_marks: bool = True) -> list[str]:
    return [f"{mac_of(g)} : {m:#x}" if with_marks else mac_of(g) for g, m in sorted(marks.items())]


def _elements(items: Iterable[str]) -> str:
    items = list(items)
    return f"    elements = {{ {', '.join(items)} }}\n" if items else ""


def ipv4(addr: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(addr))
    except ValueError:
        raise OverlayError(f"{what} {addr!r} is not an IPv4 address") from None
