"""The overlay's kernel driver (overlay/driver.py) on real namespaces: lab hosts on a switch,
one Overlay per host (its host_netns), containers as bare network namespaces, traffic from
sockets opened inside them. Everything carries the lab's per-run prefix and is removed by
name at the end, also on failure."""
import errno
import itertools
import socket
import subprocess
import threading

import pytest

from deploy.lab import Lab
from overlay.api import OverlayError
from overlay.driver import Overlay, encryption_support
from overlay.model import Attachment, Network, Peer, Vip
from overlay.netns import list_netns, netns_path, nft_tables, open_rtnl, remove_netns, run_in_netns

PORT = 7000
CONNECT_TIMEOUT = 2.0   # s: within it a working path connects; a cut one is given this long
IO_TIMEOUT = 5.0        # s: a reply over a working connection
NET1 = Network(id="net1", vni=4097, subnet="10.30.1.0/24", gateway="10.30.1.1")
NET2 = Network(id="net2", vni=4098, subnet="10.30.2.0/24", gateway="10.30.2.1")
IP_MTU_DISCOVER, IP_PMTUDISC_DO = 10, 2  # <linux/in.h>; Python 3.11 lacks the names
INTERNAL = Network(id="int1", vni=4099, subnet="10.30.3.0/24", gateway="10.30.3.1", internal=True)

_suffixes = (f"{a}{b}" for a, b in itertools.product("abcdefgh", "abcdefghij"))


@pytest.fixture(scope="module")
def lab():
    lab = Lab(3, subnet="10.213.0").up()
    try:
        yield lab
    finally:
        for name in list_netns(lab.prefix):  # what a failed remove_all left (the overlays share the prefix)
            remove_netns(name)
        lab.down()


@pytest.fixture
def overlays(lab):
    """make(i): an Overlay on lab host i (0-based), with a prefix of this test's own; all
    removed, by that prefix, at the end."""
    made: list[Overlay] = []
    suffix = next(_suffixes)

    def make(i: int) -> Overlay:
        host = lab.hosts[i]
        overlay = Overlay(f"{lab.prefix}{suffix}{i}", host.addr, host_netns=host.netns)
        made.append(overlay)
        return overlay

    yield make
    for overlay in made:
        overlay.remove_all()
        overlay.close()


class Server:
    """A TCP server inside a namespace: each connection first gets "NAME PEER_IP\\n", then
    an echo of what it sends."""

    def __init__(self, path: str, addr: str, name: str, port: int = PORT):
        self.name = name
        self.sock = run_in_netns(path, lambda: socket.create_server((addr, port)))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn, peer[0]), daemon=True).start()

    def _echo(self, conn: socket.socket, peer: str) -> None:
        with conn:
            conn.sendall(f"{self.name} {peer}\n".encode())
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def servers():
    started: list[Server] = []

    def start(path: str, addr: str, name: str) -> Server:
        started.append(Server(path, addr, name))
        return started[-1]

    yield start
    for server in started:
        server.close()


def connect(path: str, addr: str, port: int = PORT) -> tuple[socket.socket, str, str]:
    """A connection from inside the namespace at `path`; returns it and the server's greeting
    (its name and the peer address it sees)."""
    sock = run_in_netns(path, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect((addr, port))
        sock.settimeout(IO_TIMEOUT)
        name, peer = sock.makefile().readline().split()
    except BaseException:
        sock.close()
        raise
    return sock, name, peer


def hello(path: str, addr: str) -> tuple[str, str]:
    sock, name, peer = connect(path, addr)
    sock.close()
    return name, peer


def unreachable(path: str, addr: str) -> bool:
    try:
        hello(path, addr)
    except OSError:
        return True
    return False


def echoes(sock: socket.socket, payload: bytes = b"still here") -> bool:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        got += sock.recv(65536)
    return got == payload


def udp_ports(path: str) -> set[int]:
    """The UDP ports bound in the namespace at `path` (as /proc shows them to a thread in it)."""
    def read() -> str:
        with open("/proc/thread-self/net/udp") as f:
            return f.read()

    return {int(line.split()[1].split(":")[1], 16) for line in run_in_netns(path, read).splitlines()[1:]}


def container(overlay: Overlay, key: str, *attachments: Attachment) -> str:
    path = overlay.create_endpoint_ns(key)
    overlay.attach(key, list(attachments))
    return path


def two_hosts_on(net: Network, overlays) -> tuple[Overlay, Overlay]:
    a, b = overlays(0), overlays(1)
    for overlay in (a, b):
        overlay.ensure_network(net)
    return a, b


# ---------------------------------------------------------------------- the tests

def test_containers_reach_each_other_across_hosts_over_vxlan(lab, overlays, servers):
    a, b = two_hosts_on(NET1, overlays)
    c1 = container(a, "c1", Attachment(NET1, "10.30.1.2/24"))
    c2 = container(b, "c2", Attachment(NET1, "10.30.1.3/24"))
    a.set_peers(NET1.vni, [Peer("10.30.1.3", lab.hosts[1].addr)])
    b.set_peers(NET1.vni, [Peer("10.30.1.2", lab.hosts[0].addr)])
    servers(c2, "10.30.1.3", "c2")

    assert hello(c1, "10.30.1.3") == ("c2", "10.30.1.2")
    # The VXLAN socket is the host's (as Docker's): the sandbox has no UDP socket of its own.
    assert udp_ports(netns_path(lab.hosts[0].netns)) == {NET1.data_port}
    assert udp_ports(netns_path(a.sandbox_name(NET1.vni))) == set()

    a.set_peers(NET1.vni, [])
    assert unreachable(c1, "10.30.1.3")
    a.set_peers(NET1.vni, [Peer("10.30.1.3", lab.hosts[2].addr)])  # the wrong host: not there
    assert unreachable(c1, "10.30.1.3")
    a.set_peers(NET1.vni, [Peer("10.30.1.3", lab.hosts[1].addr)])
    assert hello(c1, "10.30.1.3") == ("c2", "10.30.1.2")


def test_mtu_is_the_underlay_less_vxlan_and_a_full_frame_crosses(lab, overlays):
    a, b = two_hosts_on(NET1, overlays)
    assert a.underlay_mtu == 1500
    c1 = container(a, "c1", Attachment(NET1, "10.30.1.2/24"))
    c2 = container(b, "c2", Attachment(NET1, "10.30.1.3/24"))
    a.set_peers(NET1.vni, [Peer("10.30.1.3", lab.hosts[1].addr)])
    b.set_peers(NET1.vni, [Peer("10.30.1.2", lab.hosts[0].addr)])
    with open_rtnl(c1) as ipr:
        eth0 = ipr.link("get", ifname="eth0")[0]
    assert (eth0.get("mtu"), eth0.get("address")) == (1450, "02:42:0a:1e:01:02")

    receiver = run_in_netns(c2, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sender = run_in_netns(c1, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    with receiver, sender:
        receiver.bind(("10.30.1.3", PORT))
        receiver.settimeout(IO_TIMEOUT)
        sender.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        sender.connect(("10.30.1.3", PORT))
        full = 1450 - 28  # IP and UDP headers
        with pytest.raises(OSError) as too_big:
            sender.send(b"x" * (full + 1))
        assert too_big.value.errno == errno.EMSGSIZE
        sender.send(b"y" * full)  # DF set: crosses only if the underlay carries 1450 + 50
        assert receiver.recv(65536) == b"y" * full


def test_vip_spreads_connections_and_keeps_established_ones(lab, overlays, servers):
    a, b = two_hosts_on(NET1, overlays)
    client = container(a, "cl", Attachment(NET1, "10.30.1.2/24"))
    local = container(a, "s1", Attachment(NET1, "10.30.1.3/24"))
    remote = container(b, "s2", Attachment(NET1, "10.30.1.4/24"))
    a.set_peers(NET1.vni, [Peer("10.30.1.4", lab.hosts[1].addr)])
    b.set_peers(NET1.vni, [Peer("10.30.1.2", lab.hosts[0].addr), Peer("10.30.1.3", lab.hosts[0].addr)])
    servers(local, "10.30.1.3", "s1")
    servers(remote, "10.30.1.4", "s2")
    vip = "10.30.1.200"

    a.set_vips("cl", [Vip(vip, ("10.30.1.3", "10.30.1.4"))])
    greetings = [hello(client, vip) for _ in range(6)]
    assert {name for name, _ in greetings} == {"s1", "s2"}
    assert {peer for _, peer in greetings} == {"10.30.1.2"}  # the backend sees the caller

    sock, first, _ = connect(client, vip)
    with sock:
        other = {"s1": "10.30.1.4", "s2": "10.30.1.3"}[first]
        a.set_vips("cl", [Vip(vip, (other,))])
        assert echoes(sock)
        assert {hello(client, vip)[0] for _ in range(3)} == {"s1", "s2"} - {first}

    a.set_vips("cl", [Vip(vip)])
    with pytest.raises(ConnectionRefusedError):
        hello(client, vip)
    a.set_vips("cl", [])
    assert f"ip {a.prefix}vip" not in nft_tables(client)


def test_two_networks_are_isolated(lab, overlays, servers):
    a, b = overlays(0), overlays(1)
    for overlay, net in itertools.product((a, b), (NET1, NET2)):
        overlay.ensure_network(net)
    on1 = container(a, "n1", Attachment(NET1, "10.30.1.2/24"))
    on2_local = container(a, "n2", Attachment(NET2, "10.30.2.2/24"))
    on2_remote = container(b, "m2", Attachment(NET2, "10.30.2.3/24"))
    both = container(a, "bo", Attachment(NET1, "10.30.1.9/24"), Attachment(NET2, "10.30.2.9/24"))
    a.set_peers(NET2.vni, [Peer("10.30.2.3", lab.hosts[1].addr)])
    b.set_peers(NET2.vni, [Peer("10.30.2.2", lab.hosts[0].addr), Peer("10.30.2.9", lab.hosts[0].addr)])
    servers(on2_local, "10.30.2.2", "n2")
    servers(on2_remote, "10.30.2.3", "m2")

    assert hello(both, "10.30.2.2") == ("n2", "10.30.2.9")  # the same network works
    assert hello(both, "10.30.2.3") == ("m2", "10.30.2.9")
    assert unreachable(on1, "10.30.2.2")
    assert unreachable(on1, "10.30.2.3")


def test_egress_is_masqueraded_and_internal_networks_have_none(lab, overlays, servers):
    a = overlays(0)
    a.ensure_network(NET1)
    a.ensure_network(INTERNAL)
    outside = lab.hosts[2]
    servers(netns_path(outside.netns), outside.addr, "outside")
    open_net = container(a, "eg", Attachment(INTERNAL, "10.30.3.2/24"), Attachment(NET1, "10.30.1.2/24"))
    closed = container(a, "in", Attachment(INTERNAL, "10.30.3.3/24"))

    assert hello(open_net, outside.addr) == ("outside", lab.hosts[0].addr)
    assert unreachable(closed, outside.addr)
    with open_rtnl(open_net) as ipr:  # the default route is the first non-internal network's
        (route,) = [r for r in ipr.route("dump", family=socket.AF_INET, table=254) if r["dst_len"] == 0]
        assert (route.get("gateway"), route.get("oif")) == ("10.30.1.1", ipr.link_lookup(ifname="eth1")[0])


def kernel_state(overlay: Overlay, host_netns: str) -> dict[str, object]:
    """What the kernel holds in every namespace of this prefix (links with their identity,
    pairing and VXLAN settings, addresses, routes, permanent neighbours, static FDB entries,
    nft rules), and the host's prefixed links: what a re-run must leave exactly as it is."""
    state: dict[str, object] = {}
    for name in list_netns(overlay.prefix):
        path = netns_path(name)
        with open_rtnl(path) as ipr:
            state[name] = namespace_state(ipr) + [subprocess.run(
                ["nsenter", f"--net={path}", "nft", "list", "ruleset"], capture_output=True, text=True,
                check=True).stdout]
    with open_rtnl(netns_path(host_netns)) as ipr:
        state["host"] = [link for link in links_of(ipr) if link[0].startswith(overlay.prefix)]
    return state


def links_of(ipr) -> list[tuple]:
    def vxlan(link) -> tuple:
        info = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
        keys = ("IFLA_VXLAN_ID", "IFLA_VXLAN_PORT", "IFLA_VXLAN_LOCAL", "IFLA_VXLAN_LEARNING", "IFLA_VXLAN_PROXY")
        return tuple(info.get(k) for k in keys) if info is not None and info.get("IFLA_VXLAN_ID") else ()

    return in_order((link.get("ifname"), link["index"], link.get("address"), link.get("mtu"), link.get("master"),
                     link.get("link"), link["flags"] & 1, vxlan(link)) for link in ipr.get_links())


def namespace_state(ipr) -> list:
    addrs = in_order((a["index"], a.get("address"), a["prefixlen"]) for a in ipr.get_addr(family=socket.AF_INET))
    routes = in_order((r.get("dst"), r["dst_len"], r.get("gateway"), r.get("oif"))
                      for r in ipr.route("dump", family=socket.AF_INET, table=254))
    neighbours = in_order((n["ifindex"], n.get("dst"), n.get("lladdr"))
                          for n in ipr.get_neighbours(family=socket.AF_INET) if n["state"] & 0x80)
    fdb = in_order((e["ifindex"], e.get("lladdr"), e.get("dst")) for e in ipr.fdb("dump") if e.get("dst"))
    return [links_of(ipr), addrs, routes, neighbours, fdb]


def in_order(rows) -> list:
    return sorted(rows, key=repr)  # rows hold None among strings


def assert_same_state(before: dict[str, object], after: dict[str, object]) -> None:
    assert before.keys() == after.keys()
    diff = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    assert not diff, diff


def test_everything_is_idempotent_and_adopted_by_a_new_driver(lab, overlays, servers):
    a, b = two_hosts_on(NET1, overlays)
    attachments = [Attachment(NET1, "10.30.1.2/24")]
    c1 = container(a, "c1", *attachments)
    c2 = container(b, "c2", Attachment(NET1, "10.30.1.3/24"))
    peers = [Peer("10.30.1.3", lab.hosts[1].addr)]
    a.set_peers(NET1.vni, peers)
    b.set_peers(NET1.vni, [Peer("10.30.1.2", lab.hosts[0].addr)])
    a.set_vips("c1", [Vip("10.30.1.200", ("10.30.1.3",))])
    servers(c2, "10.30.1.3", "c2")
    sock, _, _ = connect(c1, "10.30.1.3")
    before = kernel_state(a, lab.hosts[0].netns)

    a.ensure_network(NET1)
    a.attach("c1", attachments)
    assert a.create_endpoint_ns("c1") == c1
    assert_same_state(before, kernel_state(a, lab.hosts[0].netns))

    again = Overlay(a.prefix, lab.hosts[0].addr, host_netns=lab.hosts[0].netns)
    try:
        assert again.existing() == ({NET1.vni}, {"c1"})
        again.ensure_network(NET1)
        again.attach("c1", attachments)
        again.set_peers(NET1.vni, peers)
        again.set_vips("c1", [Vip("10.30.1.200", ("10.30.1.3",))])
        assert_same_state(before, kernel_state(again, lab.hosts[0].netns))
    finally:
        again.close()
    with sock:
        assert echoes(sock)


def test_remove_all_leaves_nothing_with_the_prefix(lab, overlays):
    a = overlays(0)
    a.ensure_network(NET1)
    a.ensure_network(INTERNAL)
    container(a, "c1", Attachment(NET1, "10.30.1.2/24"))
    a.set_vips("c1", [Vip("10.30.1.200", ("10.30.1.3",))])
    host = netns_path(lab.hosts[0].netns)
    assert len(list_netns(a.prefix)) == 3
    assert f"ip {a.prefix}egress" in nft_tables(host)

    a.remove_network(NET1.id)
    assert a.existing() == ({INTERNAL.vni}, {"c1"})
    a.remove_all()
    assert list_netns(a.prefix) == []
    assert a.existing() == (set(), set())
    with open_rtnl(host) as ipr:
        assert [link.get("ifname") for link in ipr.get_links() if link.get("ifname").startswith(a.prefix)] == []
    assert [t for t in nft_tables(host) if a.prefix in t] == []


def test_bad_input_is_refused_with_the_problem_named(lab, overlays):
    a = overlays(0)
    with pytest.raises(OverlayError, match="gateway 10.9.9.1"):
        a.ensure_network(Network(id="bad", vni=4100, subnet="10.30.9.0/24", gateway="10.9.9.1"))
    with pytest.raises(OverlayError, match="VNI 0"):
        a.ensure_network(Network(id="bad", vni=0, subnet="10.30.9.0/24", gateway="10.30.9.1"))
    with pytest.raises(OverlayError, match="create_endpoint_ns first"):
        a.attach("nope", [Attachment(NET1, "10.30.1.2/24")])
    with pytest.raises(OverlayError, match="endpoint key"):
        a.create_endpoint_ns("../etc")
    a.create_endpoint_ns("c1")
    with pytest.raises(OverlayError, match="not in network net1"):
        a.attach("c1", [Attachment(NET1, "10.30.2.2/24")])
    with pytest.raises(OverlayError, match="ensure_network first"):
        a.attach("c1", [Attachment(NET1, "10.30.1.2/24")])
    with pytest.raises(OverlayError, match="prefix"):
        Overlay("much-too-long-prefix", lab.hosts[0].addr, host_netns=lab.hosts[0].netns)
    with pytest.raises(OverlayError, match="'10.30.1.x' is not an IPv4"):
        a.set_vips("c1", [Vip("10.30.1.x", ())])


def test_encryption_is_refused_on_a_kernel_without_esp_or_wireguard():
    # PLATFORM.md: this kernel has neither (and loads no modules).
    reason = encryption_support()
    assert reason is not None and "no IPsec ESP and no WireGuard" in reason
