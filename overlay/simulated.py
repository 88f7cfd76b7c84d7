"""A driver that only records what the kernel driver would program, for scale tests with
many simulated nodes in one process. Same methods, same errors for a missing sandbox or
endpoint, and a count of kernel changes (`changes`) so that a test can check that work is
in proportion to what changed."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from overlay import ingress
from overlay.api import OverlayDriver, OverlayError, SandboxState
from overlay.model import Attachment, Network, Peer, PublishedPort, Vip


@dataclass
class SimulatedOverlay:
    prefix: str
    underlay_addr: str
    networks: dict[int, Network] = field(default_factory=dict)
    peers: dict[int, dict[str, str]] = field(default_factory=dict)        # vni -> peer IP -> host
    endpoints: dict[str, tuple[Attachment, ...]] = field(default_factory=dict)
    vips: dict[str, tuple[Vip, ...]] = field(default_factory=dict)
    mesh: ingress.MeshState | None = None
    ingress_routes: dict[str, frozenset[str]] = field(default_factory=dict)   # endpoint -> node addresses
    changes: int = 0  # what the kernel driver would have written: links, entries, transactions
    closed: bool = False

    def ensure_network(self, net: Network) -> None:
        if self.networks.get(net.vni) != net:
            self.networks[net.vni] = net
            self.peers.setdefault(net.vni, {})
            self.changes += 1

    def remove_network(self, network_id_or_vni: str | int) -> None:
        vni = self._vni_of(network_id_or_vni)
        if self.networks.pop(vni, None) is not None:
            self.peers.pop(vni, None)
            self.changes += 1
        if self.mesh is not None and self.mesh.vni == vni:
            self.mesh = None

    def set_peers(self, vni: int, peers: Iterable[Peer]) -> None:
        if vni not in self.networks:
            raise OverlayError(f"network with VNI {vni} has no sandbox on this node: ensure_network first")
        want = {p.addr: p.host for p in peers if p.host != self.underlay_addr}
        have = self.peers[vni]
        self.changes += len(have.keys() - want.keys()) + sum(1 for a, h in want.items() if have.get(a) != h)
        self.peers[vni] = want

    def create_endpoint_ns(self, key: str) -> str:
        if key not in self.endpoints:
            self.endpoints[key] = ()
            self.changes += 1
        return f"/run/netns/{self.prefix}c{key}"

    def attach(self, key: str, attachments: list[Attachment]) -> None:
        self._need_endpoint(key)
        for att in attachments:
            if att.network.vni not in self.networks:
                raise OverlayError(f"network with VNI {att.network.vni} has no sandbox on this node: "
                                   "ensure_network first")
        wanted = tuple(attachments)
        if self.endpoints[key] != wanted:
            self.changes += sum(1 for i, att in enumerate(wanted)
                                if i >= len(self.endpoints[key]) or self.endpoints[key][i] != att) or 1
            self.endpoints[key] = wanted

    def set_vips(self, key: str, vips: list[Vip]) -> None:
        self._need_endpoint(key)
        if self.vips.get(key, ()) != tuple(vips):
            self.vips[key] = tuple(vips)
            self.changes += 1

    def remove_endpoint_ns(self, key: str) -> None:
        if self.endpoints.pop(key, None) is not None:
            self.vips.pop(key, None)
            self.ingress_routes.pop(key, None)
            self.changes += 1

    def set_mesh(self, vni: int, node_addr: str, ports: Iterable[PublishedPort],
                 removed: Iterable[tuple[str, int]] = (), complete: bool = True) -> None:
        if vni not in self.networks:
            raise OverlayError(f"network with VNI {vni} has no sandbox on this node: ensure_network first")
        mesh = self.mesh if self.mesh is not None and self.mesh.vni == vni else ingress.MeshState(vni)
        wanted, changed, dropped = mesh.plan(ports, removed, complete)
        self.changes += len(changed) + len(dropped) + (mesh.node_addr != node_addr)
        mesh.ports, mesh.node_addr = wanted, node_addr
        self.mesh = mesh

    def set_ingress_routes(self, key: str, vni: int, node_addrs: Iterable[str]) -> None:
        self._need_endpoint(key)
        if not any(att.network.vni == vni for att in self.endpoints[key]):
            raise OverlayError(f"endpoint {key!r} is not attached to the network with VNI {vni}: attach first")
        want, have = frozenset(node_addrs), self.ingress_routes.get(key, frozenset())
        self.changes += len(want ^ have)
        self.ingress_routes[key] = want

    def sandbox_state(self, vni: int) -> SandboxState:
        name = f"{self.prefix}n{vni}"
        if vni not in self.networks:
            return SandboxState(name, programmed=False)
        mesh = self.mesh if self.mesh is not None and self.mesh.vni == vni else None
        return SandboxState(name, True, dict(self.peers.get(vni, {})),
                            mesh.node_addr if mesh else None, tuple((mesh.ports or {}).values()) if mesh else ())

    def existing(self) -> tuple[set[int], set[str]]:
        return set(self.networks), set(self.endpoints)

    def remove_all(self) -> None:
        self.changes += len(self.networks) + len(self.endpoints)
        self.networks.clear()
        self.peers.clear()
        self.endpoints.clear()
        self.vips.clear()
        self.ingress_routes.clear()
        self.mesh = None

    def close(self) -> None:
        self.closed = True

    def _need_endpoint(self, key: str) -> None:
        if key not in self.endpoints:
            raise OverlayError(f"endpoint {key!r} has no namespace: create_endpoint_ns first")

    def _vni_of(self, network_id_or_vni: str | int) -> int:
        if isinstance(network_id_or_vni, int):
            return network_id_or_vni
        for vni, net in self.networks.items():
            if net.id == network_id_or_vni:
                return vni
        if network_id_or_vni.isdigit():
            return int(network_id_or_vni)
        raise OverlayError(f"network {network_id_or_vni!r} is unknown to this driver: remove it by its VNI")


if TYPE_CHECKING:  # both drivers satisfy the Protocol the glue holds (checked by mypy)
    from overlay.driver import Overlay

    def _both_are_drivers(kernel: Overlay, simulated: SimulatedOverlay) -> list[OverlayDriver]:
        return [kernel, simulated]
