"""Address arithmetic of the allocator, pure: the pools networks are carved from, a network's
usable addresses (gateway, --ip-range, reserved ones), VNIs, and the checks a user's
--subnet / --gateway / --ip-range must pass. No store, no I/O: everything is passed in."""
from __future__ import annotations

import ipaddress
from collections.abc import Container, Iterable
from dataclasses import dataclass

from covey.errors import FailedPrecondition, InvalidArgument
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

DEFAULT_POOL = "10.0.0.0/8"
DEFAULT_SUBNET_SIZE = 24
FIRST_VNI = 4096
LAST_VNI = (1 << 24) - 1
SMALLEST_SUBNET = 29        # a network, a broadcast, a gateway and a few endpoints
DEFAULT_DATA_PORT = 4789

Subnet = ipaddress.IPv4Network
Address = ipaddress.IPv4Address


def parse_subnet(text: str, what: str = "subnet") -> Subnet:
    """A CIDR such as 10.1.0.0/24; InvalidArgument naming `what` otherwise (host bits set too)."""
    try:
        subnet = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid {what} {text!r}: {exc}") from None
    if not isinstance(subnet, Subnet):
        raise InvalidArgument(f"invalid {what} {text!r}: only IPv4 overlays are supported")
    return subnet


def parse_address(text: str, what: str) -> Address:
    try:
        return Address(text.strip())
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: give an IPv4 address") from None


@dataclass(frozen=True)
class Pools:
    """Cluster.network_defaults as the allocator uses it."""
    subnets: tuple[Subnet, ...]
    size: int

    @classmethod
    def of(cls, defaults: pb.NetworkDefaults) -> Pools:
        subnets = tuple(parse_subnet(p, "address pool") for p in defaults.addr_pools or [DEFAULT_POOL])
        return cls(subnets, defaults.subnet_size or DEFAULT_SUBNET_SIZE)


def validate_defaults(defaults: pb.NetworkDefaults) -> None:
    """`swarm init`'s --default-addr-pool, --default-addr-pool-mask-length, --data-path-port."""
    pools = Pools.of(defaults)
    for i, a in enumerate(pools.subnets):
        for b in pools.subnets[i + 1:]:
            if a.overlaps(b):
                raise InvalidArgument(f"address pools {a} and {b} overlap")
    if not 1 <= pools.size <= SMALLEST_SUBNET:
        raise InvalidArgument(f"invalid --default-addr-pool-mask-length {pools.size}: "
                              f"from 1 to {SMALLEST_SUBNET}")
    for pool in pools.subnets:
        if pool.prefixlen > pools.size:
            raise InvalidArgument(f"address pool {pool} is smaller than one /{pools.size} subnet "
                                  "(--default-addr-pool-mask-length)")
    port = defaults.data_path_port
    if port and not 1024 <= port <= 49151:
        raise InvalidArgument(f"invalid --data-path-port {port}: from 1024 to 49151")


def node_addresses(nodes: Iterable[pb.Node]) -> set[Address]:
    """The underlay addresses of the nodes: no overlay subnet may contain one."""
    found = set()
    for node in nodes:
        for text in (node.status.addr, node.manager_status.api_addr.rpartition(":")[0]):
            try:
                found.add(Address(text.strip("[]")))
            except ValueError:
                continue  # empty, IPv6 or a hostname: not in any IPv4 subnet of ours
    return found


def taken_subnets(networks: Iterable[pb.Network]) -> list[Subnet]:
    return [parse_subnet(n.subnet) for n in networks if n.subnet]


def choose_subnet(pools: Pools, taken: list[Subnet], nodes: set[Address]) -> Subnet:
    """The first /size block of the pools that overlaps no network and holds no node address."""
    for pool in pools.subnets:
        for candidate in _free_blocks(pool, pools.size, taken):
            if not any(a in candidate for a in nodes):
                return candidate
    raise FailedPrecondition(f"no free /{pools.size} subnet left in the address pools "
                             f"{', '.join(map(str, pools.subnets))}")


def _free_blocks(pool: Subnet, size: int, taken: list[Subnet]):
    """The blocks of `pool`, skipping past each taken subnet at once (a /8 has 65,536 /24s)."""
    step = 1 << (32 - size)
    start, end = int(pool.network_address), int(pool.broadcast_address)
    clashes = sorted((int(t.network_address), int(t.broadcast_address)) for t in taken if t.overlaps(pool))
    position = start
    for low, high in clashes:
        while position + step - 1 < low:
            yield Subnet((position, size))
            position += step
        if position <= high:
            position = max(position, (high + 1 - start + step - 1) // step * step + start)
    while position + step - 1 <= end:
        yield Subnet((position, size))
        position += step


def next_vni(used: Iterable[int]) -> int:
    taken = set(used)
    for vni in range(FIRST_VNI, LAST_VNI + 1):
        if vni not in taken:
            return vni
    raise FailedPrecondition("no free VXLAN network identifier left")


def check_user_subnet(subnet: Subnet, networks: Iterable[pb.Network], pools: Pools, nodes: set[Address]) -> None:
    """A --subnet may overlap no other network and hold no node address. It may lie in a pool
    (Docker allows it); the pool's own allocations are networks, and so are checked."""
    if subnet.prefixlen > SMALLEST_SUBNET:
        raise InvalidArgument(f"subnet {subnet} is too small: /{SMALLEST_SUBNET} at most")
    for network in networks:
        if network.subnet and subnet.overlaps(parse_subnet(network.subnet)):
            raise InvalidArgument(f"subnet {subnet} overlaps network {network.spec.name} ({network.subnet})")
    for addr in sorted(nodes):
        if addr in subnet:
            raise InvalidArgument(f"subnet {subnet} contains the address of a node ({addr})")


@dataclass(frozen=True)
class AddressRange:
    """The addresses one network hands out: those of its --ip-range (its whole subnet
    otherwise), less its network and broadcast addresses, gateway and reserved addresses.
    Addresses are ints: sets of them stay small and fast."""
    subnet: Subnet
    gateway: Address
    first: int
    last: int
    reserved: frozenset[int]
    capacity: int           # how many addresses it can hand out

    @classmethod
    def of(cls, network: pb.Network) -> AddressRange:
        subnet = parse_subnet(network.subnet)
        config = network.spec.ipam.configs[0] if network.spec.ipam.configs else specs.IPAMConfig()
        pool = parse_subnet(config.range, "ip-range") if config.range else subnet
        reserved = {int(parse_address(a, "reserved address")) for a in config.reserved.values()}
        gateway = parse_address(network.gateway, "gateway") if network.gateway else first_host(subnet)
        first = max(int(pool.network_address), int(subnet.network_address) + 1)
        last = min(int(pool.broadcast_address), int(subnet.broadcast_address) - 1)
        reserved.add(int(gateway))
        inside = sum(1 for r in reserved if first <= r <= last)
        return cls(subnet, gateway, first, last, frozenset(reserved), max(0, last - first + 1 - inside))

    def cidr(self, addr: int) -> str:
        return f"{Address(addr)}/{self.subnet.prefixlen}"

    def ip_of(self, cidr: str) -> int | None:
        """The int of an address given as CIDR, None when it is not one of this subnet."""
        try:
            addr = Address(cidr.split("/")[0])
        except ValueError:
            return None
        return int(addr) if addr in self.subnet else None

    def find_free(self, used: Container[int], after: int) -> int | None:
        """The first address after `after` (wrapping round) that is neither used nor reserved:
        handing them out in turn leaves a freed address unused the longest, as Docker's IPAM
        does, so stale caches elsewhere rarely point at a new holder."""
        span = self.last - self.first + 1
        start = after + 1 if self.first <= after < self.last else self.first
        for offset in range(span):
            addr = self.first + (start - self.first + offset) % span
            if addr not in used and addr not in self.reserved:
                return addr
        return None


def first_host(subnet: Subnet) -> Address:
    return subnet.network_address + 1


def check_user_ipam(subnet: Subnet, gateway_text: str, range_text: str, reserved: Iterable[str]) -> Address:
    """The gateway (given, or the first host) after checking gateway and --ip-range lie in the
    subnet and leave at least one address to hand out."""
    gateway = parse_address(gateway_text, "gateway") if gateway_text else first_host(subnet)
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"gateway {gateway} is not a usable address of subnet {subnet}")
    if range_text:
        ip_range = parse_subnet(range_text, "ip-range")
        if not ip_range.subnet_of(subnet):
            raise InvalidArgument(f"ip-range {ip_range} is not within subnet {subnet}")
    for text in reserved:
        if parse_address(text, "reserved address") not in subnet:
            raise InvalidArgument(f"reserved address {text} is not within subnet {subnet}")
    return gateway
