"""What addresses are in use, per network: derived from the store, never stored itself, so
that nothing can leak. A task holds the addresses in Task.networks while `holds_addresses`
says so; a service holds its Service.virtual_ips while it exists. The leader keeps this
index in memory (built from the store, kept current from its events) so that a pass costs
what changed, not the size of the swarm."""
from __future__ import annotations

from collections.abc import Iterable

from manager.allocator.ipam import AddressRange
from proto import objects_pb2 as pb


def holds_addresses(task: pb.Task) -> bool:
    """Whether a task's addresses are still its own: while its container may exist with them
    or may yet be started. That is, unless the managers no longer want it running (desired
    SHUTDOWN or later) and either it has finished (its node reported the container exited,
    and tears its endpoint down) or it was never sent to a node (it never will be: only
    tasks wanted running are scheduled). A finished task still wanted running (waiting for
    its restart delay, or restart condition none) keeps them: its container still exists."""
    if task.desired_state <= pb.RUNNING:
        return True
    return pb.ASSIGNED <= task.status.state < pb.COMPLETE


def wants_addresses(task: pb.Task) -> bool:
    """A task the allocator has still to give its addresses (and move to PENDING)."""
    return task.status.state == pb.NEW and task.desired_state <= pb.RUNNING


def task_key(task_id: str) -> str:
    return "task " + task_id


def service_key(service_id: str) -> str:
    return "service " + service_id


def node_key(node_id: str) -> str:
    return "node " + node_id


class Allocations:
    """Per network: its range and its used addresses (addr -> holder); per holder (a task or
    a service): what it holds. Also which tasks wait for addresses and which services'
    VIPs are to be looked at, so that a pass need not scan everything."""

    def __init__(self, networks: Iterable[pb.Network] = ()):
        self.networks: dict[str, pb.Network] = {}
        self.ranges: dict[str, AddressRange] = {}
        self.used: dict[str, dict[int, str]] = {}
        self.held: dict[str, list[tuple[str, int]]] = {}
        self.cursor: dict[str, int] = {}     # network ID -> the address handed out last
        self.waiting: set[str] = set()       # IDs of tasks that want addresses
        self.services_to_check: set[str] = set()
        self.nodes_to_check: set[str] = set()   # nodes without their address on the ingress network
        self.ingress_id: str | None = None
        for network in networks:
            self.add_network(network)

    @classmethod
    def build(cls, networks: Iterable[pb.Network], services: Iterable[pb.Service],
              tasks: Iterable[pb.Task], nodes: Iterable[pb.Node] = ()) -> Allocations:
        index = cls(networks)
        for node in nodes:
            index.refresh_node(node.id, node)
        for service in services:
            index.refresh_service(service.id, service)
        for task in tasks:
            index.refresh_task(task.id, task)
        return index

    def add_network(self, network: pb.Network) -> None:
        self.networks[network.id] = network
        self.ranges[network.id] = AddressRange.of(network)
        self.used.setdefault(network.id, {})
        if network.spec.ingress:
            self.ingress_id = network.id

    # ------------------------------------------------------------ what the store says

    def refresh_task(self, task_id: str, task: pb.Task | None) -> None:
        """Hold what the stored task (None: deleted) holds, and nothing else."""
        key = task_key(task_id)
        self.release(key)
        self.waiting.discard(task_id)
        if task is None:
            return
        if wants_addresses(task):
            self.waiting.add(task_id)
        if holds_addresses(task):
            for attachment in task.networks:
                self._hold_cidr(key, attachment.network_id, attachment.addr)

    def refresh_service(self, service_id: str, service: pb.Service | None) -> None:
        key = service_key(service_id)
        self.release(key)
        self.services_to_check.discard(service_id)
        if service is None:
            return
        self.services_to_check.add(service_id)
        for vip in service.virtual_ips:
            self._hold_cidr(key, vip.network_id, vip.addr)

    def refresh_node(self, node_id: str, node: pb.Node | None) -> None:
        """A node holds its address on the ingress network (Node.attachments) while it exists."""
        key = node_key(node_id)
        self.release(key)
        self.nodes_to_check.discard(node_id)
        if node is None:
            return
        for attachment in node.attachments:
            self._hold_cidr(key, attachment.network_id, attachment.addr)
        if self.ingress_id is not None and not any(a.network_id == self.ingress_id for a in node.attachments):
            self.nodes_to_check.add(node_id)
        elif any(a.network_id != self.ingress_id for a in node.attachments):
            self.nodes_to_check.add(node_id)   # one on a network since removed: dropped

    def _hold_cidr(self, key: str, network_id: str, cidr: str) -> None:
        addr_range = self.ranges.get(network_id)
        addr = addr_range.ip_of(cidr) if addr_range else None
        if addr is not None:
            self.hold(key, network_id, addr)

    # ------------------------------------------------------------ holding

    def hold(self, key: str, network_id: str, addr: int) -> None:
        self.used[network_id][addr] = key
        self.held.setdefault(key, []).append((network_id, addr))

    def release(self, key: str) -> None:
        for network_id, addr in self.held.pop(key, ()):
            used = self.used.get(network_id, {})
            if used.get(addr) == key:
                del used[addr]

    def take(self, key: str, network_id: str) -> int | None:
        """A free address of the network, now held by `key`; None when the network is full."""
        addr_range = self.ranges[network_id]
        if len(self.used[network_id]) >= addr_range.capacity:
            return None  # full: no need to look at every address
        addr = addr_range.find_free(self.used[network_id].keys(),
                                    self.cursor.get(network_id, addr_range.first - 1))
        if addr is not None:
            self.hold(key, network_id, addr)
            self.cursor[network_id] = addr
        return addr

    def take_given(self, key: str, network_id: str, cidr: str) -> str | None:
        """The address a spec asks for, now held by `key`; else why it cannot be had."""
        addr_range = self.ranges[network_id]
        addr = addr_range.ip_of(cidr)
        if addr is None or not addr_range.first <= addr <= addr_range.last or addr in addr_range.reserved:
            return f"address {cidr} is not one network {self.networks[network_id].spec.name} hands out"
        if addr in self.used[network_id]:
            return f"address {cidr} on network {self.networks[network_id].spec.name} is in use"
        self.hold(key, network_id, addr)
        return None

    def free_count(self, network_id: str) -> int:
        return self.ranges[network_id].capacity - len(self.used[network_id])

    def free_addresses(self, network_id: str) -> set[int]:
        """Every address the network could hand out now (tests compare these)."""
        r, used = self.ranges[network_id], self.used[network_id]
        return {a for a in range(r.first, r.last + 1) if a not in used and a not in r.reserved}
