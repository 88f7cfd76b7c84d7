"""The nftables scripts of the overlay, as text for one `nft -f -` transaction each. Every
address is checked as an IPv4 address before it is written into a script."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from overlay.api import OverlayError
from overlay.model import Vip


def replace_table(name: str, body: str) -> str:
    """Create-or-keep, delete, create again: the old table goes and the new one comes in the
    same transaction, so no packet sees neither (NAT bindings live in conntrack, not here)."""
    return f"add table ip {name}\ndelete table ip {name}\ntable ip {name} {{\n{body}}}\n"


def delete_table(name: str) -> str:
    return f"add table ip {name}\ndelete table ip {name}\n"


def vip_table(name: str, vips: Iterable[Vip]) -> str:
    """DNAT of new connections to each VIP (any protocol and port) to one of its backends, in
    turn (`numgen inc`), in the caller's own namespace; a VIP with no backend rejects. The nat
    output hook sees the connections the container itself opens."""
    dnat, reject = [], []
    for vip in sorted(vips, key=lambda v: v.addr):
        addr = _ipv4(vip.addr, "VIP")
        backends = list(dict.fromkeys(_ipv4(b, f"backend of VIP {addr}") for b in vip.backends))
        if not backends:
            reject.append(f"    ip daddr {addr} reject\n")
        elif len(backends) == 1:
            dnat.append(f"    ip daddr {addr} dnat to {backends[0]}\n")
        else:
            slots = ", ".join(f"{i} : {b}" for i, b in enumerate(backends))
            dnat.append(f"    ip daddr {addr} dnat to numgen inc mod {len(backends)} map {{ {slots} }}\n")
    return replace_table(name, (
        "  chain vip_nat {\n    type nat hook output priority -100; policy accept;\n"
        + "".join(dnat) + "  }\n"
        "  chain vip_reject {\n    type filter hook output priority 0; policy accept;\n"
        + "".join(reject) + "  }\n"))


def sandbox_table(name: str, egress_if: str) -> str:
    """A sandbox masquerades what leaves through its egress veth: the host never sees (nor
    routes) an overlay address."""
    return replace_table(name, (
        "  chain egress_nat {\n    type nat hook postrouting priority 100; policy accept;\n"
        f'    oifname "{egress_if}" masquerade\n  }}\n'))


def host_table(name: str, egress_glob: str, link_pool: str) -> str:
    """The host masquerades the sandboxes' egress to the underlay, and forwards nothing from
    one sandbox to another: networks stay apart even through the host. Only what the ingress
    mesh DNATed to its sandbox (a published port on a host address) passes."""
    pool = ipaddress.IPv4Network(link_pool)
    return replace_table(name, (
        "  chain egress_nat {\n    type nat hook postrouting priority 100; policy accept;\n"
        f'    ip saddr {pool} oifname != "{egress_glob}" masquerade\n  }}\n'
        "  chain egress_forward {\n    type filter hook forward priority 0; policy accept;\n"
        f'    iifname "{egress_glob}" oifname "{egress_glob}" ct status dnat accept\n'
        f'    iifname "{egress_glob}" oifname "{egress_glob}" drop\n  }}\n'))


def _ipv4(addr: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(addr))
    except ValueError:
        raise OverlayError(f"{what} {addr!r} is not an IPv4 address") from None
