"""The embedded DNS resolver (overlay/dns.py) in real network namespaces: one Resolver serves
127.0.0.11:53 in two namespaces; clients ask from inside them; unknown names go to a test
upstream on the root namespace's loopback. Namespaces carry a per-run prefix and are removed
by name at the end, also on failure."""
import asyncio
import os
import socket
import time
import uuid

import pytest
from dnslib import RCODE, DNSRecord
from pyroute2 import netns

from overlay.dns import Resolver, call_in_netns
from overlay.model import DNS_ADDR, DnsView
from tests.support.dnskit import CLIENT_TIMEOUT, Upstream, addresses, ask, exchange_tcp, ns_socket

RUN = f"cvdns{uuid.uuid4().hex[:6]}"
TEST_TIMEOUT = 30.0     # s: one scenario, end to end
FORWARD_TIMEOUT = 0.5   # s: the resolver's per-upstream timeout in these tests
ZONE = {"example.test": ["192.0.2.10"], "big.test": [f"192.0.2.{i}" for i in range(1, 61)]}
WEB_VIP, WEB_TASKS = "10.0.1.2", ("10.0.1.3", "10.0.1.4", "10.0.1.5")
DB_TASKS = ("10.0.1.20", "10.0.1.21", "10.0.1.22", "10.0.1.23")
FRONT = DnsView("net-front", {
    "web": (WEB_VIP,), "tasks.web": WEB_TASKS, "web.1.t1": (WEB_TASKS[0],), "web.2.t2": (WEB_TASKS[1],),
    "db": DB_TASKS, "tasks.db": DB_TASKS,
    "st_api": ("10.0.1.30",), "tasks.st_api": ("10.0.1.31", "10.0.1.32"),
})
BACK = DnsView("net-back", {"secret": ("10.0.2.2",), "tasks.secret": ("10.0.2.3",)})


@pytest.fixture(scope="module")
def namespaces():
    names = [f"{RUN}-a", f"{RUN}-b"]
    for name in names:
        netns.create(name)
    yield [f"/run/netns/{name}" for name in names]
    for name in names:
        netns.remove(name)


@pytest.fixture(scope="module")
def run():
    loop = asyncio.new_event_loop()
    yield lambda coro: loop.run_until_complete(asyncio.wait_for(coro, TEST_TIMEOUT))
    loop.close()


@pytest.fixture
def upstream(run):
    server = run(Upstream(ZONE, udp_truncates={"big.test"}).start())
    yield server
    run(server.stop())


@pytest.fixture
def resolver(run, upstream, namespaces):
    """A resolver that knows FRONT and BACK, serving container "a" (on FRONT) in the first
    namespace and container "b" (on BACK) in the second."""
    async def start():
        r = Resolver([upstream.address], timeout=FORWARD_TIMEOUT, attempts=1)
        r.set_names(FRONT)
        r.set_names(BACK)
        await r.serve("a", namespaces[0], ["net-front"])
        await r.serve("b", namespaces[1], ["net-back"])
        return r

    r = run(start())
    yield r
    run(r.close())


def test_a_service_name_is_its_vip_from_inside_the_namespace(run, resolver, namespaces):
    reply = run(ask(namespaces[0], "web"))
    assert addresses(reply) == [WEB_VIP]
    assert reply.header.aa and reply.header.rcode == RCODE.NOERROR
    assert reply.rr[0].ttl == resolver.ttl
    assert addresses(run(ask(namespaces[0], "WEB."))) == [WEB_VIP], "names are case-insensitive"


def test_tasks_name_lists_every_replica(run, resolver, namespaces):
    assert sorted(addresses(run(ask(namespaces[0], "tasks.web")))) == sorted(WEB_TASKS)


def test_multi_address_answers_are_shuffled_across_queries(run, resolver, namespaces):
    async def orders():
        return [tuple(addresses(await ask(namespaces[0], "db"))) for _ in range(60)]

    seen = run(orders())
    assert all(sorted(order) == sorted(DB_TASKS) for order in seen)
    assert {order[0] for order in seen} == set(DB_TASKS), "every replica comes first in some answer"


def test_a_name_on_a_network_the_container_is_not_on_is_forwarded(run, resolver, upstream, namespaces):
    reply = run(ask(namespaces[0], "secret"))
    assert reply.header.rcode == RCODE.NXDOMAIN and not reply.rr
    assert upstream.times_asked("secret") == 1, "the resolver forwarded it, not answered it"
    assert addresses(run(ask(namespaces[1], "secret"))) == ["10.0.2.2"], "the other container sees it"
    assert run(ask(namespaces[1], "web")).header.rcode == RCODE.NXDOMAIN


def test_stack_short_names(run, resolver, upstream, namespaces):
    run(resolver.serve("a", namespaces[0], ["net-front"], stack="st"))
    assert addresses(run(ask(namespaces[0], "api"))) == ["10.0.1.30"]
    assert sorted(addresses(run(ask(namespaces[0], "tasks.api")))) == ["10.0.1.31", "10.0.1.32"]
    assert addresses(run(ask(namespaces[0], "web"))) == [WEB_VIP], "names outside the stack still answer"
    run(resolver.serve("a", namespaces[0], ["net-front"]))
    assert run(ask(namespaces[0], "api")).header.rcode == RCODE.NXDOMAIN, "no stack, no short name"


def test_a_known_name_asked_for_aaaa_is_empty_and_not_forwarded(run, resolver, upstream, namespaces):
    reply = run(ask(namespaces[0], "web", "AAAA"))
    assert reply.header.rcode == RCODE.NOERROR and not reply.rr
    assert upstream.times_asked("web") == 0


def test_ptr_answers_the_name_of_a_known_address(run, resolver, upstream, namespaces):
    def ptr(ip: str) -> DNSRecord:
        return run(ask(namespaces[0], ".".join(reversed(ip.split("."))) + ".in-addr.arpa", "PTR"))

    assert [str(rr.rdata) for rr in ptr(WEB_VIP).rr] == ["web."]
    assert [str(rr.rdata) for rr in ptr(WEB_TASKS[1]).rr] == ["web.2.t2."], "a task's own name, not tasks.web"
    assert ptr("10.0.2.2").header.rcode == RCODE.NXDOMAIN, "an address on another network is forwarded"


def test_unknown_names_are_forwarded_to_the_upstream(run, resolver, upstream, namespaces):
    reply = run(ask(namespaces[0], "example.test"))
    assert addresses(reply) == ["192.0.2.10"] and not reply.header.aa
    assert upstream.times_asked("example.test", "udp") == 1


def test_upstream_down_is_servfail_within_the_timeout(run, namespaces):
    """One upstream that never answers (a bound socket nobody reads) and one that refuses
    (a closed port): SERVFAIL once both had their chance, not before, not much after."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    refusing = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    refusing.bind(("127.0.0.1", 0))
    closed_port = refusing.getsockname()[1]
    refusing.close()

    async def scenario():
        r = Resolver([f"127.0.0.1:{silent.getsockname()[1]}", f"127.0.0.1:{closed_port}"],
                     timeout=FORWARD_TIMEOUT, attempts=2)
        await r.serve("down", namespaces[0], [])
        try:
            began = time.monotonic()
            reply = await ask(namespaces[0], "example.test")
            return reply, time.monotonic() - began
        finally:
            await r.close()

    with silent:
        reply, took = run(scenario())
    assert reply.header.rcode == RCODE.SERVFAIL
    budget = 2 * 2 * FORWARD_TIMEOUT     # attempts x upstreams x timeout
    assert 2 * FORWARD_TIMEOUT <= took < budget + 1.0, f"SERVFAIL after {took:.2f}s"


def test_tcp_queries_and_truncation(run, resolver, upstream, namespaces):
    assert addresses(run(ask(namespaces[0], "web", tcp=True))) == [WEB_VIP]
    assert addresses(run(ask(namespaces[0], "example.test", tcp=True))) == ["192.0.2.10"]
    assert upstream.times_asked("example.test", "tcp") == 1, "a TCP query is forwarded over TCP"

    over_udp = run(ask(namespaces[0], "big.test"))
    assert over_udp.header.tc and not over_udp.rr, "60 records do not fit 512 bytes: truncated"
    assert upstream.times_asked("big.test", "tcp") == 1, "the upstream's truncated UDP answer was retried over TCP"
    assert sorted(addresses(run(ask(namespaces[0], "big.test", tcp=True)))) == sorted(ZONE["big.test"])

    many = tuple(f"10.0.3.{i}" for i in range(1, 101))
    resolver.set_names(DnsView("net-front", {**FRONT.names, "tasks.many": many}))
    assert run(ask(namespaces[0], "tasks.many")).header.tc, "a local answer too big for UDP is truncated"
    assert sorted(addresses(run(ask(namespaces[0], "tasks.many", tcp=True)))) == sorted(many)


def test_garbage_is_dropped_and_the_server_still_answers(run, resolver, namespaces):
    query = DNSRecord.question("web")
    garbage = [b"", b"\x00", os.urandom(11), b"\xff" * 40, query.reply().pack(),  # a response, not a query
               query.pack()[:20], b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c"]  # a pointer loop

    async def udp_scenario():
        loop = asyncio.get_running_loop()
        sock = await ns_socket(namespaces[0], socket.SOCK_DGRAM)
        with sock:
            await loop.sock_connect(sock, (DNS_ADDR, 53))
            for packet in garbage:
                await loop.sock_sendall(sock, packet)
            await loop.sock_sendall(sock, query.pack())
            return DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(sock, 65535), CLIENT_TIMEOUT))

    first = run(udp_scenario())
    assert first.header.id == query.header.id, "the first datagram back answers the good query: garbage got none"
    assert addresses(first) == [WEB_VIP]

    async def tcp_garbage():
        sock = await ns_socket(namespaces[0], socket.SOCK_STREAM)
        with sock:
            await exchange_tcp(sock, os.urandom(30))
    with pytest.raises(ConnectionError):
        run(tcp_garbage())
    assert addresses(run(ask(namespaces[0], "web", tcp=True))) == [WEB_VIP]


def test_set_names_and_drop_network_change_answers_at_once(run, resolver, upstream, namespaces):
    resolver.set_names(DnsView("net-front", {"web": ("10.0.1.99",), "idle": ()}))
    assert addresses(run(ask(namespaces[0], "web"))) == ["10.0.1.99"]
    idle = run(ask(namespaces[0], "idle"))
    assert idle.header.rcode == RCODE.NOERROR and not idle.rr and upstream.times_asked("idle") == 0, \
        "a local name with no running task is empty, not forwarded"
    assert run(ask(namespaces[0], "db")).header.rcode == RCODE.NXDOMAIN, "a name gone from the view is gone"
    resolver.drop_network("net-front")
    assert run(ask(namespaces[0], "web")).header.rcode == RCODE.NXDOMAIN
    assert upstream.times_asked("web") == 1


def test_serve_again_updates_networks_and_stop_closes_the_sockets(run, resolver, namespaces):
    run(resolver.serve("a", namespaces[0], ["net-back", "net-front"]))
    assert addresses(run(ask(namespaces[0], "secret"))) == ["10.0.2.2"], "now on both networks"
    assert addresses(run(ask(namespaces[0], "web"))) == [WEB_VIP]

    run(resolver.stop("a"))
    assert "a" not in resolver.serving()

    def bind_both():
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            with socket.socket(socket.AF_INET, kind) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT, never a listener
                sock.bind((DNS_ADDR, 53))   # EADDRINUSE if the resolver still held it
        return True
    assert call_in_netns(namespaces[0], bind_both)
    with pytest.raises(ConnectionRefusedError):
        run(ask(namespaces[0], "web", tcp=True))
    assert addresses(run(ask(namespaces[1], "secret"))) == ["10.0.2.2"], "the other container is still served"


def test_serve_names_the_problem_when_it_cannot_listen(run, resolver, namespaces):
    with pytest.raises(FileNotFoundError, match=f"/run/netns/{RUN}-missing"):
        run(resolver.serve("x", f"/run/netns/{RUN}-missing", ["net-front"]))
    with pytest.raises(OSError, match=f"DNS for other: .*in {namespaces[0]}: Address already in use"):
        run(resolver.serve("other", namespaces[0], ["net-front"]))   # "a" listens there
    assert sorted(resolver.serving()) == ["a", "b"]
    assert addresses(run(ask(namespaces[0], "web"))) == [WEB_VIP], "the failed serve left a serving"


def test_serve_in_another_namespace_moves_the_listeners(run, resolver, namespaces):
    run(resolver.stop("b"))
    run(resolver.serve("a", namespaces[1], ["net-back"]))
    assert addresses(run(ask(namespaces[1], "secret"))) == ["10.0.2.2"]
    with pytest.raises(ConnectionRefusedError):
        run(ask(namespaces[0], "web", tcp=True))
    assert resolver.serving() == ["a"]
