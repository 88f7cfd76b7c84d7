"""The overlay's kernel driver: plain data in (overlay.model), netns, bridges, VXLAN, veths,
FDB and neighbour entries and nftables out. Synchronous, idempotent and declarative; called
from one thread of the agent. One long-lived rtnetlink socket per namespace; nftables
changes are one `nft -f` transaction per namespace.

Per network (VNI) a sandbox namespace "<prefix>n<vni>" holds a bridge (the gateway address)
and a VXLAN device whose UDP socket lives in the host namespace (it is created there, straight
into the sandbox, as Docker's is moved). Unless the network is internal, a veth pair links
the sandbox to the host on a /31 of LINK_POOL, and both sides masquerade: the host never
routes an overlay subnet, so networks cannot meet through it. Containers get a namespace
"<prefix>c<key>" and one veth per network (eth0, eth1...) onto the sandbox's bridge.
"""
from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from overlay import ingress, nft
from overlay.api import OverlayError, SandboxState
from overlay.model import VXLAN_OVERHEAD, Attachment, Network, Peer, PublishedPort, Vip, mac_of
from overlay.netns import (
    create_netns,
    list_netns,
    netns_exists,
    netns_path,
    nft_tables,
    open_rtnl,
    read_sysctl,
    release_nft,
    remove_netns,
    write_sysctl,
)
from overlay.netns import nft as run_nft

MAX_PREFIX = 10
LOOPBACK_INDEX = 1         # in every network namespace
IFNAMSIZ = 15               # longest interface name the kernel takes
VNI_MAX = (1 << 24) - 1
LINK_POOL = "169.254.64.0/18"  # a /31 per network for the sandbox <-> host egress veth pair
BRIDGE, VXLAN, EGRESS = "br0", "vx0", "eg0"   # inside a sandbox, which is ours alone
NUD_NOARP, NUD_PERMANENT, NTF_SELF, IFF_UP = 0x40, 0x80, 0x02, 0x1
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PREFIX = re.compile(r"[a-z][a-z0-9]*")


@dataclass
class _Sandbox:
    vni: int
    name: str
    ipr: IPRoute
    fd: int                        # the namespace, for IFLA_NET_NS_FD
    network: Network | None = None  # as last ensured by this driver
    bridge: int = 0
    vxlan: int = 0
    mtu: int = 0
    peers: dict[str, str] | None = None  # peer IP -> host, as programmed (None: not read yet)


@dataclass
class _Endpoint:
    key: str
    name: str
    ipr: IPRoute
    fd: int
    fresh: bool                     # made by this driver and not attached yet: nothing to check
    attached: tuple[Attachment, ...] | None = None  # as last programmed by this driver
    vip_script: str | None = None
    reply: ingress.ReplyRoutes | None = None        # as last programmed by this driver

    @property
    def path(self) -> str:
        return netns_path(self.name)


class Overlay:
    """The kernel driver; see the module docstring. Every name it creates (namespaces, host
    links, nft tables) starts with `prefix`, so `remove_all` finds all of it."""

    def __init__(self, prefix: str, underlay_addr: str, host_netns: str | None = None,
                 underlay_mtu: int | None = None, link_pool: str = LINK_POOL):
        if not _PREFIX.fullmatch(prefix) or len(prefix) > MAX_PREFIX:
            raise OverlayError(f"overlay prefix {prefix!r} must be 1-{MAX_PREFIX} lowercase letters and "
                               "digits, starting with a letter")
        if host_netns is not None and not netns_exists(host_netns):
            raise OverlayError(f"host network namespace {host_netns!r} does not exist")
        self.prefix = prefix
        self.underlay_addr = str(ipaddress.IPv4Address(underlay_addr))
        self._host_path = netns_path(host_netns) if host_netns else None
        self._host = open_rtnl(self._host_path)
        self._link_pool = ipaddress.IPv4Network(link_pool)
        self.underlay_mtu = underlay_mtu or self._underlay_mtu()
        self._sandboxes: dict[int, _Sandbox] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        self._network_ids: dict[str, int] = {}
        self._slots: dict[int, int] | None = None  # vni -> egress /31 index, read from the host
        self._host_table_ready = False
        self._mesh: ingress.MeshState | None = None

    # ------------------------------------------------------------------ names

    def sandbox_name(self, vni: int) -> str:
        return f"{self.prefix}n{vni}"

    def endpoint_name(self, key: str) -> str:
        return f"{self.prefix}c{key}"

    def _egress_if(self, vni: int) -> str:
        name = f"{self.prefix}e{vni:x}"
        if len(name) > IFNAMSIZ:
            raise OverlayError(f"egress interface name {name!r} is longer than {IFNAMSIZ} characters: "
                               "use a shorter overlay prefix")
        return name

    @property
    def _host_table(self) -> str:
        return f"{self.prefix}egress"

    @property
    def _vip_table(self) -> str:
        return f"{self.prefix}vip"

    @property
    def _sandbox_table(self) -> str:
        return f"{self.prefix}sbx"

    @property
    def _mesh_table(self) -> str:
        return f"{self.prefix}mesh"      # in the host namespace and the ingress sandbox

    @property
    def _reply_table(self) -> str:
        return f"{self.prefix}rt"        # in task namespaces on the ingress network

    # ------------------------------------------------------------------ networks

    def ensure_network(self, net: Network) -> None:
        """The network's sandbox, bridge, VXLAN device and (unless internal) egress, as `net` says."""
        mtu = self._check_network(net)
        sandbox = self._sandbox(net.vni, create=True)
        if sandbox.network == net:
            return
        subnet = ipaddress.IPv4Network(net.subnet)
        sandbox.mtu = mtu
        sandbox.bridge = self._ensure_bridge(sandbox, f"{net.gateway}/{subnet.prefixlen}")
        sandbox.vxlan = self._ensure_vxlan(sandbox, net)
        if net.internal:
            self._remove_egress(sandbox)
        else:
            self._ensure_egress(sandbox)
        sandbox.network = net
        self._network_ids[net.id] = net.vni

    def remove_network(self, network_id_or_vni: str | int) -> None:
        """The sandbox goes, and with it the network's veths; by id (known to this driver) or VNI."""
        vni = self._vni_of(network_id_or_vni)
        name = self.sandbox_name(vni)
        if vni in self._sandboxes or netns_exists(name):
            sandbox = self._sandbox(vni, create=False)
            # The namespace itself goes asynchronously, later; the VXLAN device (whose VNI and
            # port are taken in the host namespace) and the egress veth must go now.
            for ifname in (VXLAN, EGRESS):
                _delete_link(sandbox.ipr, ifname)
            _close(self._sandboxes.pop(vni).ipr, sandbox.fd)
        _delete_link(self._host, self._egress_if(vni))
        if self._slots is not None:
            self._slots.pop(vni, None)
        remove_netns(name)
        if self._mesh is not None and self._mesh.vni == vni:
            self._remove_host_mesh()
        self._network_ids = {k: v for k, v in self._network_ids.items() if v != vni}
        for endpoint in self._endpoints.values():  # their veths on it go with the sandbox
            if endpoint.attached and any(att.network.vni == vni for att in endpoint.attached):
                endpoint.attached = None

    def set_peers(self, vni: int, peers: Iterable[Peer]) -> None:
        """The full set of remote endpoints: only the difference is written. Peers on this node
        (host = underlay_addr) are left out: they are on the bridge already."""
        sandbox = self._sandbox(vni, create=False)
        if not sandbox.vxlan:
            sandbox.vxlan = _index(sandbox.ipr, VXLAN) or 0
        if not sandbox.vxlan:
            raise OverlayError(f"network with VNI {vni} has no VXLAN device: ensure_network first")
        want = {}
        for peer in peers:
            addr, host = _ipv4(peer.addr, "peer address"), _ipv4(peer.host, "peer host")
            if host != self.underlay_addr:  # a local endpoint is on the bridge already
                want[addr] = host
        if sandbox.peers is None:
            sandbox.peers = self._read_peers(sandbox)
        for addr in sandbox.peers.keys() - want.keys():
            self._del_peer(sandbox, addr, sandbox.peers[addr])
        for addr, host in want.items():
            if sandbox.peers.get(addr) != host:
                self._add_peer(sandbox, addr, host)
        sandbox.peers = want

    # ------------------------------------------------------------------ endpoints

    def create_endpoint_ns(self, key: str) -> str:
        """A container's namespace with lo up; its path, for runc to join."""
        return self._endpoint(key, create=True).path

    def attach(self, key: str, attachments: list[Attachment]) -> None:
        """eth0, eth1... in order, onto each network's bridge; an interface that is already right
        is left alone, extra ones go; the default route via the first non-internal gateway."""
        endpoint = self._endpoint(key, create=False)
        wanted = tuple(attachments)
        if endpoint.attached == wanted:
            return
        sandboxes = [self._attachable(endpoint, att) for att in wanted]
        # A namespace this driver just made holds nothing yet: no need to read it.
        links = {} if endpoint.fresh else {link.get("ifname"): link for link in endpoint.ipr.get_links()}
        indexes = [self._attach_one(endpoint, sandbox, f"eth{i}", att, links.get(f"eth{i}"))
                   for i, (att, sandbox) in enumerate(zip(wanted, sandboxes, strict=True))]
        for name, link in links.items():
            if re.fullmatch(r"eth\d+", name or "") and int(name[3:]) >= len(wanted):
                _ignore_missing(endpoint.ipr.link, "del", index=link["index"])
        self._set_default_route(endpoint, wanted, indexes)
        endpoint.attached, endpoint.fresh = wanted, False

    def set_vips(self, key: str, vips: list[Vip]) -> None:
        """The container's VIP table, replaced in one transaction (none: the table goes)."""
        endpoint = self._endpoint(key, create=False)
        script = nft.vip_table(self._vip_table, vips) if vips else nft.delete_table(self._vip_table)
        if script != endpoint.vip_script:
            run_nft(endpoint.path, script)
            endpoint.vip_script = script

    def remove_endpoint_ns(self, key: str) -> None:
        _check_key(key)
        if key in self._endpoints or netns_exists(self.endpoint_name(key)):
            endpoint = self._endpoint(key, create=False)
            # Its veths now, not when the namespace goes: their sandbox ends free the names.
            for link in endpoint.ipr.get_links():
                if re.fullmatch(r"eth\d+", link.get("ifname") or ""):
                    _ignore_missing(endpoint.ipr.link, "del", index=link["index"])
            _close(self._endpoints.pop(key).ipr, endpoint.fd)
        remove_netns(self.endpoint_name(key))

    # ------------------------------------------------------------------ the ingress mesh

    def set_mesh(self, vni: int, node_addr: str, ports: Iterable[PublishedPort],
                 removed: Iterable[tuple[str, int]] = (), complete: bool = True) -> None:
        """This node answers `ports` through the ingress network's sandbox (overlay.ingress),
        as `node_addr` (its own ingress address, on the sandbox's bridge with mac_of(it)).
        complete: `ports` are all there are; else they are the changed ones, and `removed`
        (protocol, published) the ones that go. One nft transaction per namespace, holding
        only what changed."""
        sandbox = self._sandbox(vni, create=False)
        net = sandbox.network
        if net is None:
            raise OverlayError(f"network with VNI {vni} has no sandbox made by this driver: ensure_network first")
        if net.internal:
            raise OverlayError(f"network {net.id} is internal: the ingress mesh needs its egress link")
        node_addr = self._check_node_addr(net, node_addr)
        mesh = self._mesh if self._mesh is not None and self._mesh.vni == vni else ingress.MeshState(vni)
        wanted, changed, dropped = mesh.plan(ports, removed, complete)
        self._mesh, have, mesh.ports = mesh, mesh.ports, None   # unknown until written: rewritten whole
        new_addr = node_addr if mesh.node_addr != node_addr else None
        if new_addr is not None:
            self._set_node_addr(sandbox, net, node_addr)
        if have is None:
            self._write_mesh(sandbox, node_addr, wanted)
        else:
            script = ingress.sandbox_update(self._mesh_table, BRIDGE, new_addr, have, changed, dropped)
            if script:
                run_nft(netns_path(sandbox.name), script)
            script = ingress.host_update(self._mesh_table, wanted.keys() - have.keys(), dropped)
            if script:
                run_nft(self._host_path, script)
        mesh.ports, mesh.node_addr = wanted, node_addr

    def set_ingress_routes(self, key: str, vni: int, node_addrs: Iterable[str]) -> None:
        """In a task's namespace: replies to connections that came from a node's ingress
        sandbox go back through that node (its connmark, fwmark and routing table)."""
        endpoint = self._endpoint(key, create=False)
        position = next((i for i, att in enumerate(endpoint.attached or ()) if att.network.vni == vni), None)
        if position is None:
            raise OverlayError(f"endpoint {key!r} is not attached to the network with VNI {vni} by this driver: "
                               "attach first")
        att = (endpoint.attached or ())[position]
        ifname = f"eth{position}"
        want = {ingress.ipv4(a, "node ingress address"): 0 for a in node_addrs}
        want = {a: ingress.route_mark(a, att.network.subnet) for a in want}
        reply = endpoint.reply
        if reply is None or reply.ifname != ifname:
            run_nft(endpoint.path, ingress.reply_table(self._reply_table, ifname, want))
            have = self._read_reply_marks(endpoint)
        else:
            script = ingress.reply_update(self._reply_table, reply.marks, want)
            if script:
                run_nft(endpoint.path, script)
            have = set(reply.marks.values())
        self._set_reply_rules(endpoint, ifname, have, want)
        endpoint.reply = ingress.ReplyRoutes(ifname, want)

    # ------------------------------------------------------------------ the whole node

    def sandbox_state(self, vni: int) -> SandboxState:
        """The sandbox of `vni` as this driver last programmed it (no kernel read)."""
        sandbox = self._sandboxes.get(vni)
        if sandbox is None:
            return SandboxState(self.sandbox_name(vni), programmed=False)
        mesh = self._mesh if self._mesh is not None and self._mesh.vni == vni else None
        return SandboxState(sandbox.name, True, None if sandbox.peers is None else dict(sandbox.peers),
                            mesh.node_addr if mesh else None, tuple((mesh.ports or {}).values()) if mesh else ())

    def existing(self) -> tuple[set[int], set[str]]:
        """VNIs of sandboxes and keys of endpoint namespaces with this prefix, for adoption."""
        vnis, keys = set(), set()
        for name in list_netns(self.prefix):
            kind, rest = name[len(self.prefix):len(self.prefix) + 1], name[len(self.prefix) + 1:]
            if kind == "n" and rest.isdigit():
                vnis.add(int(rest))
            elif kind == "c" and _KEY.fullmatch(rest):
                keys.add(rest)
        return vnis, keys

    def remove_all(self) -> None:
        """Everything with this prefix, in the kernel: the node leaves (and tests clean up)."""
        vnis, keys = self.existing()
        for key in keys:
            self.remove_endpoint_ns(key)
        for vni in vnis:
            self.remove_network(vni)
        for link in self._host.get_links():
            if (link.get("ifname") or "").startswith(self.prefix):
                _ignore_missing(self._host.link, "del", index=link["index"])
        tables = nft_tables(self._host_path)
        for table in (self._host_table, self._mesh_table):
            if f"ip {table}" in tables:
                run_nft(self._host_path, nft.delete_table(table))
        self._slots, self._host_table_ready, self._network_ids, self._mesh = None, False, {}, None

    def close(self) -> None:
        release_nft([self._host_path, *(netns_path(s.name) for s in self._sandboxes.values()),
                     *(e.path for e in self._endpoints.values())])
        for sandbox in self._sandboxes.values():
            _close(sandbox.ipr, sandbox.fd)
        for endpoint in self._endpoints.values():
            _close(endpoint.ipr, endpoint.fd)
        self._sandboxes.clear()
        self._endpoints.clear()
        self._host.close()

    # ------------------------------------------------------------------ sandbox parts

    def _sandbox(self, vni: int, create: bool) -> _Sandbox:
        sandbox = self._sandboxes.get(vni)
        if sandbox is not None:
            return sandbox
        name = self.sandbox_name(vni)
        if not netns_exists(name):
            if not create:
                raise OverlayError(f"network with VNI {vni} has no sandbox on this node: ensure_network first")
            create_netns(name)
        ipr, fd = _open(name)
        sandbox = self._sandboxes[vni] = _Sandbox(vni, name, ipr, fd)
        return sandbox

    def _ensure_bridge(self, sandbox: _Sandbox, gateway: str) -> int:
        ipr = sandbox.ipr
        _lo_up(ipr)
        index = _index(ipr, BRIDGE)
        if index is None:
            ipr.link("add", ifname=BRIDGE, kind="bridge", mtu=sandbox.mtu)
            index = _must_index(ipr, BRIDGE)
        ipr.link("set", index=index, mtu=sandbox.mtu, state="up")
        _ensure_addr(ipr, index, gateway)
        return index

    def _ensure_vxlan(self, sandbox: _Sandbox, net: Network) -> int:
        ipr = sandbox.ipr
        index = _index(ipr, VXLAN)
        if index is not None and not self._vxlan_matches(ipr, index, net):
            ipr.link("del", index=index)
            sandbox.peers, index = None, None
        if index is None:
            # Created from the host's socket straight into the sandbox: the device's UDP
            # socket belongs to the namespace it was created from (the underlay's).
            self._host.link("add", ifname=VXLAN, kind="vxlan", vxlan_id=net.vni, vxlan_port=net.data_port,
                            vxlan_local=self.underlay_addr, vxlan_learning=0, vxlan_proxy=1,
                            mtu=sandbox.mtu, net_ns_fd=sandbox.fd)
            index = _index(ipr, VXLAN)
        ipr.link("set", index=index, master=sandbox.bridge, mtu=sandbox.mtu, state="up")
        return _must_index(ipr, VXLAN)

    def _vxlan_matches(self, ipr: IPRoute, index: int, net: Network) -> bool:
        info = ipr.link("get", index=index)[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
        return (info is not None and info.get("IFLA_VXLAN_ID") == net.vni
                and info.get("IFLA_VXLAN_PORT") == net.data_port
                and info.get("IFLA_VXLAN_LOCAL") == self.underlay_addr)

    def _ensure_egress(self, sandbox: _Sandbox) -> None:
        self._ensure_host_table()
        host_if = self._egress_if(sandbox.vni)
        host_addr, sandbox_addr = self._egress_addrs(sandbox.vni)
        host_index = _index(self._host, host_if)
        if host_index is None:
            stale = _index(sandbox.ipr, EGRESS)
            if stale is not None:
                sandbox.ipr.link("del", index=stale)
            self._host.link("add", ifname=host_if, kind="veth", peer={"ifname": EGRESS, "net_ns_fd": sandbox.fd})
            host_index = _index(self._host, host_if)
        _ensure_addr(self._host, host_index, f"{host_addr}/31")
        self._host.link("set", index=host_index, state="up")
        egress = _index(sandbox.ipr, EGRESS)
        _ensure_addr(sandbox.ipr, egress, f"{sandbox_addr}/31")
        sandbox.ipr.link("set", index=egress, state="up")
        sandbox.ipr.route("replace", dst="0.0.0.0/0", gateway=host_addr, oif=egress)
        write_sysctl(netns_path(sandbox.name), "net.ipv4.ip_forward", "1")
        run_nft(netns_path(sandbox.name), nft.sandbox_table(self._sandbox_table, EGRESS))

    def _remove_egress(self, sandbox: _Sandbox) -> None:
        host_index = _index(self._host, self._egress_if(sandbox.vni))
        if host_index is not None:
            self._host.link("del", index=host_index)
        if f"ip {self._sandbox_table}" in nft_tables(netns_path(sandbox.name)):
            run_nft(netns_path(sandbox.name), nft.delete_table(self._sandbox_table))
        if self._slots is not None:
            self._slots.pop(sandbox.vni, None)

    def _ensure_host_table(self) -> None:
        if not self._host_table_ready:
            run_nft(self._host_path, nft.host_table(self._host_table, f"{self.prefix}e*", str(self._link_pool)))
            write_sysctl(self._host_path, "net.ipv4.ip_forward", "1")
            self._host_table_ready = True

    def _egress_addrs(self, vni: int) -> tuple[str, str]:
        """The host's and the sandbox's address on the network's egress /31: the slot the host
        already has for it, else the lowest free one."""
        slots = self._read_slots() if self._slots is None else self._slots
        self._slots = slots
        if vni not in slots:
            used = set(slots.values())
            free = next((i for i in range(self._link_pool.num_addresses // 2) if i not in used), None)
            if free is None:
                raise OverlayError(f"no free egress link in {self._link_pool}: too many networks on this node")
            slots[vni] = free
        base = self._link_pool.network_address + 2 * slots[vni]
        return str(base), str(base + 1)

    def _read_slots(self) -> dict[int, int]:
        slots = {}
        stem = f"{self.prefix}e"
        for link in self._host.get_links():
            name = link.get("ifname") or ""
            if not name.startswith(stem):
                continue
            for addr in self._host.get_addr(index=link["index"], family=socket.AF_INET):
                ip = ipaddress.IPv4Address(addr.get("address"))
                if ip in self._link_pool and re.fullmatch(r"[0-9a-f]+", name[len(stem):]):
                    slots[int(name[len(stem):], 16)] = (int(ip) - int(self._link_pool.network_address)) // 2
        return slots

    # ------------------------------------------------------------------ mesh parts

    def _check_node_addr(self, net: Network, node_addr: str) -> str:
        addr = ingress.ipv4(node_addr, "node ingress address")
        subnet = ipaddress.IPv4Network(net.subnet)
        if ipaddress.IPv4Address(addr) not in subnet or addr == net.gateway:
            raise OverlayError(f"node ingress address {addr} is not a free host address of {net.id}'s "
                               f"subnet {net.subnet}")
        return addr

    def _set_node_addr(self, sandbox: _Sandbox, net: Network, node_addr: str) -> None:
        """The node's ingress address on the bridge, whose MAC becomes mac_of(it): what other
        nodes' tasks see as the source MAC of this node's mesh connections, and what they
        send replies to. Any other address of the subnet but the gateway goes."""
        ipr, prefixlen = sandbox.ipr, ipaddress.IPv4Network(net.subnet).prefixlen
        bridge = _must_index(ipr, BRIDGE)
        ipr.link("set", index=bridge, address=mac_of(node_addr))
        for addr in ipr.get_addr(index=bridge, family=socket.AF_INET):
            if addr.get("address") not in (net.gateway, node_addr):
                _ignore_missing(ipr.addr, "del", index=bridge, address=addr.get("address"),
                                prefixlen=addr["prefixlen"])
        _ensure_addr(ipr, bridge, f"{node_addr}/{prefixlen}")

    def _write_mesh(self, sandbox: _Sandbox, node_addr: str, ports: dict[tuple[str, int], PublishedPort]) -> None:
        """Both tables whole (first use, or after a restart: conntrack keeps the NAT of
        established connections), the sysctls 127.0.0.1 and long-lived connections need."""
        sandbox_path = netns_path(sandbox.name)
        _, sandbox_addr = self._egress_addrs(sandbox.vni)
        host_if = self._egress_if(sandbox.vni)
        run_nft(sandbox_path, ingress.sandbox_table(self._mesh_table, BRIDGE, EGRESS, node_addr, ports.values()))
        run_nft(self._host_path, ingress.host_table(self._mesh_table, sandbox_addr, host_if,
                                                     str(self._link_pool), ports))
        write_sysctl(self._host_path, f"net.ipv4.conf.{host_if}.route_localnet", "1")
        for path in (self._host_path, sandbox_path):
            if int(read_sysctl(path, ingress.CONNTRACK_ESTABLISHED)) < ingress.MIN_ESTABLISHED_TIMEOUT:
                write_sysctl(path, ingress.CONNTRACK_ESTABLISHED, str(ingress.ESTABLISHED_TIMEOUT))

    def _remove_host_mesh(self) -> None:
        if f"ip {self._mesh_table}" in nft_tables(self._host_path):
            run_nft(self._host_path, nft.delete_table(self._mesh_table))
        self._mesh = None

    def _read_reply_marks(self, endpoint: _Endpoint) -> set[int]:
        """The marks of the reply-route rules a namespace holds (a mark names its gateway)."""
        return {int(rule.get("fwmark")) for rule in endpoint.ipr.get_rules(family=socket.AF_INET)
                if rule.get("priority") == ingress.ROUTE_RULE_PRIORITY and rule.get("fwmark")}

    def _set_reply_rules(self, endpoint: _Endpoint, ifname: str, have: set[int], want: dict[str, int]) -> None:
        """One rule and one table (a default route via the node) per node, by the difference."""
        ipr, index = endpoint.ipr, _must_index(endpoint.ipr, ifname)
        keep = have & set(want.values())
        for mark in have - keep:
            _ignore_missing(ipr.rule, "del", fwmark=mark, table=mark, priority=ingress.ROUTE_RULE_PRIORITY)
            _ignore_missing(ipr.route, "del", dst="0.0.0.0/0", table=mark)
        for addr, mark in want.items():
            if mark not in keep:
                ipr.route("replace", dst="0.0.0.0/0", gateway=addr, oif=index, table=mark)
                ipr.rule("add", fwmark=mark, table=mark, priority=ingress.ROUTE_RULE_PRIORITY)

    # ------------------------------------------------------------------ peers

    def _read_peers(self, sandbox: _Sandbox) -> dict[str, str]:
        """What the kernel has: permanent neighbours on the VXLAN device and their FDB entries
        (a neighbour without one maps to "", so that it is fixed or removed)."""
        ipr, index = sandbox.ipr, sandbox.vxlan
        hosts = {e.get("lladdr"): e.get("dst") for e in ipr.fdb("dump", ifindex=index)
                 if e.get("dst") and e.get("lladdr") != "00:00:00:00:00:00"}
        return {n.get("dst"): hosts.get(n.get("lladdr"), "") or ""
                for n in ipr.get_neighbours(ifindex=index, family=socket.AF_INET)
                if n["state"] & NUD_PERMANENT}

    def _add_peer(self, sandbox: _Sandbox, addr: str, host: str) -> None:
        mac = mac_of(addr)
        sandbox.ipr.fdb("replace", ifindex=sandbox.vxlan, lladdr=mac, dst=host,
                        state=NUD_PERMANENT | NUD_NOARP, flags=NTF_SELF)
        sandbox.ipr.neigh("replace", ifindex=sandbox.vxlan, dst=addr, lladdr=mac, state=NUD_PERMANENT)

    def _del_peer(self, sandbox: _Sandbox, addr: str, host: str) -> None:
        ipr, mac = sandbox.ipr, mac_of(addr)
        _ignore_missing(ipr.neigh, "del", ifindex=sandbox.vxlan, dst=addr, lladdr=mac)
        if host:
            _ignore_missing(ipr.fdb, "del", ifindex=sandbox.vxlan, lladdr=mac, dst=host)

    # ------------------------------------------------------------------ endpoint parts

    def _endpoint(self, key: str, create: bool) -> _Endpoint:
        endpoint = self._endpoints.get(key)
        if endpoint is not None:
            return endpoint
        _check_key(key)
        name = self.endpoint_name(key)
        fresh = not netns_exists(name)
        if fresh:
            if not create:
                raise OverlayError(f"endpoint {key!r} has no namespace: create_endpoint_ns first")
            create_netns(name)
        ipr, fd = _open(name)
        _lo_up(ipr)
        endpoint = self._endpoints[key] = _Endpoint(key, name, ipr, fd, fresh)
        return endpoint

    def _attachable(self, endpoint: _Endpoint, att: Attachment) -> _Sandbox:
        """The network's sandbox, ready; and the attachment checked."""
        net = att.network
        iface = ipaddress.IPv4Interface(att.addr)
        if iface.network != ipaddress.IPv4Network(net.subnet):
            raise OverlayError(f"endpoint {endpoint.key!r}: address {att.addr} is not in network "
                               f"{net.id}'s subnet {net.subnet}")
        sandbox = self._sandbox(net.vni, create=False)
        if sandbox.network is None:  # adopted: program (or check) it from this network
            self.ensure_network(net)
        return sandbox

    def _attach_one(self, endpoint: _Endpoint, sandbox: _Sandbox, ifname: str, att: Attachment,
                    link: Any) -> int:
        """The interface's index, made (or left as it is when right)."""
        iface = ipaddress.IPv4Interface(att.addr)
        mac, peer_name = mac_of(att.ip), "ve" + iface.ip.packed.hex()
        if link is not None:
            if self._attached_ok(endpoint, sandbox, link, peer_name, mac, iface):
                return int(link["index"])
            endpoint.ipr.link("del", index=link["index"])
        # One request: the pair, its sandbox end on the bridge and up (pyroute2 cannot set
        # the flags of the peer end).
        create = dict(ifname=peer_name, kind="veth", mtu=sandbox.mtu, master=sandbox.bridge, state="up",
                      peer={"ifname": ifname, "address": mac, "mtu": sandbox.mtu, "net_ns_fd": endpoint.fd})
        try:
            sandbox.ipr.link("add", **create)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise
            _delete_link(sandbox.ipr, peer_name)  # a stale end of an endpoint gone earlier
            sandbox.ipr.link("add", **create)
        index = _must_index(endpoint.ipr, ifname)
        endpoint.ipr.link("set", index=index, state="up")
        endpoint.ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        return index

    def _attached_ok(self, endpoint: _Endpoint, sandbox: _Sandbox, link: Any, peer_name: str, mac: str,
                     iface: ipaddress.IPv4Interface) -> bool:
        """An existing interface is left alone (a restart must not cut connections) when it
        is up with the right MAC, MTU and address, and paired with the right sandbox port."""
        peer = _link(sandbox.ipr, peer_name)
        if (peer is None or link.get("address") != mac or link.get("mtu") != sandbox.mtu
                or not link["flags"] & IFF_UP
                or peer.get("link") != link["index"] or link.get("link") != peer["index"]
                or peer.get("master") != sandbox.bridge):
            return False
        addrs = {(a.get("address"), a["prefixlen"]) for a in endpoint.ipr.get_addr(index=link["index"])}
        return (str(iface.ip), iface.network.prefixlen) in addrs

    def _set_default_route(self, endpoint: _Endpoint, attachments: tuple[Attachment, ...],
                           indexes: list[int]) -> None:
        """Via the first non-internal network's gateway; none if every network is internal."""
        ipr = endpoint.ipr
        first = next((i for i, att in enumerate(attachments) if not att.network.internal), None)
        want = None if first is None else (attachments[first].network.gateway, indexes[first])
        current = [] if endpoint.fresh else [
            (r.get("gateway"), r.get("oif")) for r in ipr.route("dump", family=socket.AF_INET, table=254)
            if r["dst_len"] == 0]
        if want is None:
            if current:
                ipr.route("del", dst="0.0.0.0/0", table=254)
        elif current != [want]:
            ipr.route("replace", dst="0.0.0.0/0", gateway=want[0], oif=want[1])

    # ------------------------------------------------------------------ checks

    def _check_network(self, net: Network) -> int:
        """The network's MTU; a clear error for anything the kernel would refuse or misuse."""
        if not 1 <= net.vni <= VNI_MAX:
            raise OverlayError(f"network {net.id}: VNI {net.vni} is outside 1-{VNI_MAX}")
        try:
            subnet = ipaddress.IPv4Network(net.subnet)
            gateway = ipaddress.IPv4Address(net.gateway)
        except ValueError as exc:
            raise OverlayError(f"network {net.id}: {exc}") from None
        if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
            raise OverlayError(f"network {net.id}: gateway {net.gateway} is not a host address of {net.subnet}")
        if not 1 <= net.data_port <= 65535:
            raise OverlayError(f"network {net.id}: data port {net.data_port} is not a UDP port")
        mtu = net.mtu or self.underlay_mtu - VXLAN_OVERHEAD
        if not 576 <= mtu <= 65535:
            raise OverlayError(f"network {net.id}: MTU {mtu} is outside 576-65535")
        if not net.internal:
            self._egress_if(net.vni)
        return mtu

    def _vni_of(self, network_id_or_vni: str | int) -> int:
        if isinstance(network_id_or_vni, int):
            return network_id_or_vni
        if network_id_or_vni in self._network_ids:
            return self._network_ids[network_id_or_vni]
        if network_id_or_vni.isdigit():
            return int(network_id_or_vni)
        raise OverlayError(f"network {network_id_or_vni!r} is unknown to this driver: remove it by its VNI")

    def _underlay_mtu(self) -> int:
        for addr in self._host.get_addr(family=socket.AF_INET, address=self.underlay_addr):
            return int(self._host.link("get", index=addr["index"])[0].get("mtu"))
        raise OverlayError(f"underlay address {self.underlay_addr} is on no interface of the host namespace")


def encryption_support() -> str | None:
    """None if this kernel can encrypt an overlay (IPsec ESP or WireGuard is built in or
    loaded), else why not. Read from /sys/module and /proc/kallsyms: nothing is loaded."""
    if Path("/sys/module/wireguard").exists() or Path("/sys/module/esp4").exists():
        return None
    try:
        symbols = Path("/proc/kallsyms").read_text()
    except OSError as exc:
        return f"cannot tell whether this kernel has IPsec ESP or WireGuard ({exc})"
    if re.search(r" (esp_output|esp4_rcv_cb|wg_packet_send_staged_packets)\b", symbols):
        return None
    xfrm = "with" if " xfrm_init" in symbols else "without"
    return (f"this kernel ({os.uname().release}) has no IPsec ESP and no WireGuard ({xfrm} XFRM): "
            "an encrypted overlay network cannot be carried on this node")


# ---------------------------------------------------------------------- netlink helpers

def _open(name: str) -> tuple[IPRoute, int]:
    path = netns_path(name)
    return open_rtnl(path), os.open(path, os.O_RDONLY)


def _close(ipr: IPRoute, fd: int) -> None:
    ipr.close()
    os.close(fd)


def _link(ipr: IPRoute, ifname: str) -> Any:
    try:
        return ipr.link("get", ifname=ifname)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise


def _index(ipr: IPRoute, ifname: str) -> int | None:
    link = _link(ipr, ifname)
    return None if link is None else int(link["index"])


def _must_index(ipr: IPRoute, ifname: str) -> int:
    index = _index(ipr, ifname)
    if index is None:
        raise OverlayError(f"interface {ifname} vanished while being set up")
    return index


def _lo_up(ipr: IPRoute) -> None:
    ipr.link("set", index=LOOPBACK_INDEX, state="up")


def _delete_link(ipr: IPRoute, ifname: str) -> None:
    index = _index(ipr, ifname)
    if index is not None:
        _ignore_missing(ipr.link, "del", index=index)


def _ensure_addr(ipr: IPRoute, index: int | None, cidr: str) -> None:
    iface = ipaddress.IPv4Interface(cidr)
    have = {(a.get("address"), a["prefixlen"]) for a in ipr.get_addr(index=index, family=socket.AF_INET)}
    if (str(iface.ip), iface.network.prefixlen) not in have:
        ipr.addr("add", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)


def _ignore_missing(call: Any, *args: Any, **kwargs: Any) -> None:
    try:
        call(*args, **kwargs)
    except NetlinkError as exc:
        if exc.code not in (errno.ENOENT, errno.ENODEV, errno.ESRCH):
            raise


def _ipv4(addr: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(addr))
    except ValueError:
        raise OverlayError(f"{what} {addr!r} is not an IPv4 address") from None


def _check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise OverlayError(f"endpoint key {key!r} must be letters, digits, '_', '.' or '-'")
