"""The overlay's input, as plain data: what the agent's network glue (worker/network.py)
hands the kernel driver (overlay/driver.py) and the embedded DNS (overlay/dns.py).
No protobuf here: overlay imports nothing of the managers or the agent."""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

VXLAN_PORT = 4789
VXLAN_OVERHEAD = 50            # outer IPv4 + UDP + VXLAN + inner Ethernet headers
DNS_ADDR = "127.0.0.11"        # the embedded resolver, in every container (as Docker's)


@dataclass(frozen=True)
class Network:
    """One overlay network as a node programs it."""
    id: str
    vni: int
    subnet: str                # CIDR, e.g. "10.0.1.0/24"
    gateway: str               # address of the sandbox bridge on every node, e.g. "10.0.1.1"
    internal: bool = False     # no egress: no default route, no masquerade
    mtu: int = 0               # 0: the underlay MTU - VXLAN_OVERHEAD
    data_port: int = VXLAN_PORT


@dataclass(frozen=True)
class Peer:
    """A remote endpoint: one static FDB entry (its MAC -> its node) and one permanent
    neighbour entry (its IP -> its MAC) in the network's sandbox."""
    addr: str                  # IP, no prefix length
    host: str                  # underlay IP of the node it runs on

    @property
    def mac(self) -> str:
        return mac_of(self.addr)


@dataclass(frozen=True)
class Attachment:
    """One interface of a container: eth0, eth1... in the order given."""
    network: Network
    addr: str                  # CIDR, e.g. "10.0.1.7/24"

    @property
    def ip(self) -> str:
        return self.addr.split("/")[0]


@dataclass(frozen=True)
class Vip:
    """A service's virtual IP as a container sees it: new connections to `addr` (any
    protocol and port) go to one of `backends` (task IPs), spread per connection."""
    addr: str                  # IP, no prefix length
    backends: tuple[str, ...] = ()


TCP, UDP = "tcp", "udp"
INGRESS_MODE, HOST_MODE = "ingress", "host"


@dataclass(frozen=True)
class PublishedPort:
    """A port this node answers on all its addresses (and 127.0.0.1): new connections to
    `published` go to one of `backends` (task IPs on the ingress network) on `target`.
    Ingress mode: every task of the swarm, and the backend sees this node's ingress address
    unless `preserve_client_ip`; host mode: this node's own tasks, seeing the client."""
    protocol: str              # TCP or UDP
    published: int
    target: int
    backends: tuple[str, ...] = ()
    mode: str = INGRESS_MODE
    preserve_client_ip: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.protocol, self.published)

    @property
    def snat(self) -> bool:
        """Replies come back through this node only if the backend answers its address."""
        return self.mode == INGRESS_MODE and not self.preserve_client_ip


@dataclass
class DnsView:
    """The names one network answers: name -> IPs. Built by the glue from the managers'
    network view: "<service>" (VIP, or task IPs in dnsrr mode), "tasks.<service>", aliases,
    task hostnames and names."""
    network_id: str
    names: dict[str, tuple[str, ...]] = field(default_factory=dict)


def mac_of(ip: str) -> str:
    """The MAC of an endpoint, derived from its IPv4 address as Docker does (02:42:a.b.c.d),
    so that every node agrees on it without being told."""
    packed = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)
