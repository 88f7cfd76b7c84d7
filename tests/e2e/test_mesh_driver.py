"""The ingress routing mesh (overlay/ingress.py through overlay/driver.py) on real namespaces:
4 lab hosts with one Overlay each, tasks as bare namespaces on two of them, and a client in a
lab namespace of its own on the underlay. No coveyd: the views are given as plain data."""
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from deploy.lab import Lab
from overlay import ingress
from overlay.api import OverlayError
from overlay.driver import Overlay
from overlay.model import HOST_MODE, TCP, UDP, Attachment, Network, Peer, PublishedPort
from overlay.netns import list_netns, netns_path, nft_tables, open_rtnl, read_sysctl, remove_netns, run_in_netns
from tests.support.poll import wait_until

INGRESS = Network(id="ingress", vni=4200, subnet="10.40.0.0/24", gateway="10.40.0.1")
NODE_ADDRS = ["10.40.0.2", "10.40.0.3", "10.40.0.4", "10.40.0.5"]    # each host's ingress address
TASKS = {"t1": (0, "10.40.0.11"), "t2": (1, "10.40.0.12")}           # task -> (host, ingress IP)
TARGET = 8000                                                        # what the tasks listen on
WEB, KEEP, DNS, PINNED = 8080, 8081, 8082, 8083                      # published ports
CONNECT_TIMEOUT = 2.0    # s: within it a working path connects
IO_TIMEOUT = 5.0         # s: a reply over a working connection
APPLY_TIMEOUT = 5.0      # s: a rule change is seen by new connections
REQUESTS_PER_HOST = 6    # numgen inc over 2 backends: both answer within 2
PARALLEL_CONNECTIONS = 200


def web(backends=("10.40.0.11", "10.40.0.12"), published=WEB, preserve=False) -> PublishedPort:
    return PublishedPort(TCP, published, TARGET, tuple(backends), preserve_client_ip=preserve)


def ports_of(host: int) -> list[PublishedPort]:
    local = tuple(ip for h, ip in TASKS.values() if h == host)
    return [web(), web(published=KEEP, preserve=True), PublishedPort(UDP, DNS, TARGET, ("10.40.0.11", "10.40.0.12")),
            PublishedPort(TCP, PINNED, TARGET, local, mode=HOST_MODE)]


class TaskServer:
    """TCP and UDP on TARGET in a task's namespace: each connection (datagram) gets back
    "NAME PEER_IP:PEER_PORT", then TCP echoes what it is sent."""

    def __init__(self, path: str, name: str):
        self.name = name
        self.tcp = run_in_netns(path, lambda: socket.create_server(("0.0.0.0", TARGET), backlog=512))
        self.udp = run_in_netns(path, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        self.udp.bind(("0.0.0.0", TARGET))
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._datagrams, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn, peer), daemon=True).start()

    def _echo(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        with conn:
            conn.sendall(f"{self.name} {peer[0]}:{peer[1]}\n".encode())
            while data := conn.recv(65536):
                conn.sendall(data)

    def _datagrams(self) -> None:
        while True:
            try:
                _, peer = self.udp.recvfrom(2048)
                if peer is None:    # shut down
                    return
                self.udp.sendto(f"{self.name} {peer[0]}:{peer[1]}".encode(), peer)
            except OSError:
                return

    def close(self) -> None:
        for sock in (self.tcp, self.udp):
            try:
                sock.shutdown(socket.SHUT_RDWR)   # wakes the thread blocked on it
            except OSError:                       # ENOTCONN for UDP, after waking it
                pass
            sock.close()


@dataclass
class Mesh:
    lab: Lab
    overlays: list[Overlay]
    client: str                 # the client's namespace path

    @property
    def addrs(self) -> list[str]:
        return [h.addr for h in self.lab.hosts[:4]]

    def host_path(self, i: int) -> str:
        return netns_path(self.lab.hosts[i].netns)

    def set_everywhere(self, ports: list[PublishedPort], removed=()) -> None:
        for overlay in self.overlays:
            overlay.set_mesh(INGRESS.vni, NODE_ADDRS[self.overlays.index(overlay)], ports, removed, complete=False)


@pytest.fixture(scope="module")
def mesh():
    lab = Lab(5, subnet="10.214.0").up()    # hosts 1-4 run overlays; host 5 is the client
    overlays: list[Overlay] = []
    servers: list[TaskServer] = []
    try:
        for i, host in enumerate(lab.hosts[:4]):
            overlay = Overlay(f"{lab.prefix}m{i}", host.addr, host_netns=host.netns)
            overlays.append(overlay)
            overlay.ensure_network(INGRESS)
        for key, (host, ip) in TASKS.items():
            path = overlays[host].create_endpoint_ns(key)
            overlays[host].attach(key, [Attachment(INGRESS, f"{ip}/24")])
            overlays[host].set_ingress_routes(key, INGRESS.vni, NODE_ADDRS)
            servers.append(TaskServer(path, key))
        for i, overlay in enumerate(overlays):
            overlay.set_peers(INGRESS.vni, [Peer(ip, lab.hosts[h].addr) for h, ip in TASKS.values()]
                              + [Peer(a, lab.hosts[n].addr) for n, a in enumerate(NODE_ADDRS)])
            overlay.set_mesh(INGRESS.vni, NODE_ADDRS[i], ports_of(i))
        yield Mesh(lab, overlays, netns_path(lab.hosts[4].netns))
    finally:
        for server in servers:
            server.close()
        for overlay in overlays:
            overlay.remove_all()
            overlay.close()
        for name in list_netns(lab.prefix):  # what a failed remove_all left
            remove_netns(name)
        lab.down()


def connect(path: str, addr: str, port: int) -> tuple[socket.socket, str, str]:
    """A connection from the namespace at `path`; the server's name and the peer it saw."""
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


def hello(path: str, addr: str, port: int = WEB) -> tuple[str, str]:
    sock, name, peer = connect(path, addr, port)
    sock.close()
    return name, peer


def refused(path: str, addr: str, port: int) -> bool:
    try:
        hello(path, addr, port)
    except OSError:
        return True
    return False


def names_via(path: str, addr: str, port: int = WEB) -> set[str]:
    return {hello(path, addr, port)[0] for _ in range(REQUESTS_PER_HOST)}


# ---------------------------------------------------------------------- the tests

def test_every_host_answers_from_both_backends_and_the_backend_sees_the_node(mesh):
    for i, addr in enumerate(mesh.addrs):
        assert names_via(mesh.client, addr) == {"t1", "t2"}, f"through host {i}"
        assert {hello(mesh.client, addr)[1].split(":")[0] for _ in range(2)} == {NODE_ADDRS[i]}, \
            "default mode: the backend sees the ingress address of the node that took the connection"


def test_a_hosts_own_clients_reach_the_mesh_on_127_0_0_1_and_its_address(mesh):
    for i in (0, 2):    # with a task, without one
        host = mesh.host_path(i)
        assert names_via(host, "127.0.0.1") == {"t1", "t2"}
        assert names_via(host, mesh.addrs[i]) == {"t1", "t2"}


def test_containers_reach_published_ports_on_their_own_hosts_address(mesh):
    other = Network(id="apps", vni=4202, subnet="10.42.0.0/24", gateway="10.42.0.1")
    overlay = mesh.overlays[0]
    overlay.ensure_network(other)
    try:
        caller = overlay.create_endpoint_ns("c1")
        overlay.attach("c1", [Attachment(other, "10.42.0.5/24")])
        assert names_via(caller, mesh.addrs[0]) == {"t1", "t2"}, "from another network, through the host"
        assert names_via(caller, mesh.addrs[2]) == {"t1", "t2"}, "and through another host"
        t1 = netns_path(overlay.endpoint_name("t1"))
        assert names_via(t1, mesh.addrs[0]) == {"t1", "t2"}, "a task of the service itself, on its own host"
    finally:
        overlay.remove_endpoint_ns("c1")
        overlay.remove_network(other.vni)


def test_host_mode_answers_only_where_the_task_runs_and_the_task_sees_the_client(mesh):
    client_ip = mesh.lab.hosts[4].addr
    for i, task in ((0, "t1"), (1, "t2")):
        sock, name, peer = connect(mesh.client, mesh.addrs[i], PINNED)
        with sock:
            assert (name, peer) == (task, f"{client_ip}:{sock.getsockname()[1]}")
    for i in (2, 3):
        assert refused(mesh.client, mesh.addrs[i], PINNED), f"host {i} runs no task of the host-mode port"


def test_preserve_mode_shows_the_clients_own_ip_and_port_through_every_node(mesh):
    client_ip = mesh.lab.hosts[4].addr
    for i, addr in enumerate(mesh.addrs):
        seen = set()
        for _ in range(REQUESTS_PER_HOST):
            sock, name, peer = connect(mesh.client, addr, KEEP)
            with sock:
                assert peer == f"{client_ip}:{sock.getsockname()[1]}", f"through host {i}"
                assert echoes(sock), "the task's replies go back through the node that took the connection"
            seen.add(name)
        assert seen == {"t1", "t2"}, f"through host {i}"


def echoes(sock: socket.socket, payload: bytes = b"still here") -> bool:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        got += sock.recv(65536)
    return got == payload


def test_udp_is_answered_through_every_host(mesh):
    for i, addr in enumerate(mesh.addrs):
        names = set()
        for _ in range(REQUESTS_PER_HOST):
            sock = run_in_netns(mesh.client, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            with sock:
                sock.settimeout(IO_TIMEOUT)
                sock.sendto(b"hi", (addr, DNS))
                name, peer = sock.recv(2048).decode().split()
            assert peer.split(":")[0] == NODE_ADDRS[i]
            names.add(name)
        assert names == {"t1", "t2"}, f"through host {i}"


def test_replacing_backends_keeps_an_established_connection(mesh):
    sock, first, _ = connect(mesh.client, mesh.addrs[2], WEB)
    with sock:
        other = {"t1": "10.40.0.12", "t2": "10.40.0.11"}[first]
        try:
            mesh.set_everywhere([web(backends=(other,))])
            assert echoes(sock)
            assert names_via(mesh.client, mesh.addrs[2]) == {"t1", "t2"} - {first}
            assert echoes(sock)
        finally:
            mesh.set_everywhere([web()])
    assert names_via(mesh.client, mesh.addrs[2]) == {"t1", "t2"}


def test_removing_a_port_closes_it_on_every_host(mesh):
    extra = 8090
    mesh.set_everywhere([web(published=extra)])
    for addr in mesh.addrs:
        assert names_via(mesh.client, addr, extra) == {"t1", "t2"}
    mesh.set_everywhere([], removed=[(TCP, extra)])
    for i, addr in enumerate(mesh.addrs):
        assert refused(mesh.client, addr, extra), f"host {i} still answers"
        assert hello(mesh.client, addr) is not None, "the other ports stay"


def test_many_parallel_new_connections_do_not_stall(mesh):
    def one(n: int) -> str:
        return hello(mesh.client, mesh.addrs[n % 4])[0]

    with ThreadPoolExecutor(64) as pool:
        names = list(pool.map(one, range(PARALLEL_CONNECTIONS)))
    assert len(names) == PARALLEL_CONNECTIONS and set(names) == {"t1", "t2"}


def test_idle_mesh_connections_are_kept_for_hours(mesh):
    overlay = mesh.overlays[2]
    for path in (mesh.host_path(2), netns_path(overlay.sandbox_name(INGRESS.vni))):
        assert int(read_sysctl(path, ingress.CONNTRACK_ESTABLISHED)) >= ingress.MIN_ESTABLISHED_TIMEOUT


def test_a_change_is_one_small_transaction_and_the_tables_are_named_by_the_prefix(mesh):
    overlay = mesh.overlays[3]
    sandbox = netns_path(overlay.sandbox_name(INGRESS.vni))
    assert f"ip {overlay.prefix}mesh" in nft_tables(mesh.host_path(3))
    assert f"ip {overlay.prefix}mesh" in nft_tables(sandbox)
    with open_rtnl(sandbox) as ipr:
        bridge = ipr.link("get", ifname="br0")[0]
        assert bridge.get("address") == "02:42:0a:28:00:05", "the bridge has the node's ingress MAC"
    with pytest.raises(OverlayError, match="not a free host address"):
        overlay.set_mesh(INGRESS.vni, "10.40.0.1", ports_of(3))
    with pytest.raises(OverlayError, match="published port 70000/tcp"):
        overlay.set_mesh(INGRESS.vni, NODE_ADDRS[3], [PublishedPort(TCP, 70000, 80)], complete=False)
    assert names_via(mesh.client, mesh.addrs[3]) == {"t1", "t2"}, "a refused change changed nothing"


def test_a_restarted_driver_takes_the_mesh_over_and_connections_live_on(mesh):
    sock, _, _ = connect(mesh.client, mesh.addrs[2], KEEP)
    with sock:
        for i in (0, 2):
            host = mesh.lab.hosts[i]
            again = Overlay(mesh.overlays[i].prefix, host.addr, host_netns=host.netns)
            try:
                again.ensure_network(INGRESS)
                again.set_mesh(INGRESS.vni, NODE_ADDRS[i], ports_of(i))
                if i == 0:
                    again.attach("t1", [Attachment(INGRESS, f"{TASKS['t1'][1]}/24")])
                    again.set_ingress_routes("t1", INGRESS.vni, NODE_ADDRS)
            finally:
                again.close()
        assert echoes(sock), "tables rewritten whole: conntrack keeps the connection's NAT"
    for i, addr in enumerate(mesh.addrs):
        client_ip = mesh.lab.hosts[4].addr
        sock, _, peer = connect(mesh.client, addr, KEEP)
        with sock:
            assert peer == f"{client_ip}:{sock.getsockname()[1]}" and echoes(sock), f"through host {i}"


def test_remove_all_leaves_nothing_with_the_prefix(mesh):
    host = mesh.lab.hosts[3]
    other = Network(id="ingress2", vni=4201, subnet="10.41.0.0/24", gateway="10.41.0.1")  # the host has 4200
    overlay = Overlay(f"{mesh.lab.prefix}x", host.addr, host_netns=host.netns)
    try:
        overlay.ensure_network(other)
        overlay.create_endpoint_ns("t9")
        overlay.attach("t9", [Attachment(other, "10.41.0.19/24")])
        overlay.set_ingress_routes("t9", other.vni, ["10.41.0.2", "10.41.0.3"])
        overlay.set_mesh(other.vni, "10.41.0.9", [web(backends=("10.41.0.19",), published=9000)])
        assert wait_until(lambda: f"ip {overlay.prefix}mesh" in nft_tables(netns_path(host.netns)), APPLY_TIMEOUT)
        overlay.remove_all()
        assert list_netns(overlay.prefix) == []
        assert [t for t in nft_tables(netns_path(host.netns)) if overlay.prefix in t] == []
        with open_rtnl(netns_path(host.netns)) as ipr:
            assert [link.get("ifname") for link in ipr.get_links()
                    if link.get("ifname").startswith(overlay.prefix)] == []
    finally:
        overlay.remove_all()
        overlay.close()
