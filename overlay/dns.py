"""The embedded DNS resolver: 127.0.0.11:53 (UDP and TCP) in every container, served by one
asyncio server in coveyd. A socket keeps the network namespace it was created in, so a short
thread enters a container's namespace (setns), opens the two sockets and returns; the loop then
serves them all. Per container the state is two sockets and a small record; names live once
per network.

What a container gets, as Docker's embedded DNS, with these choices:
- A: for each of its networks in order, the name as asked (case-insensitive, trailing dot or
  not); then, in a stack S, "S_<name>" and "tasks.S_<x>" for "tasks.<x>" (an exact name beats
  a stack short name). All the name's IPs, shuffled per answer so that clients spread, AA set.
- A name listed with no IPs (a dnsrr service with no running task): NOERROR, no answers: it
  is a local name, so it is not asked of the outside world.
- TTL: DEFAULT_TTL (10 s), not Docker's 600 s: clients that cache (nginx, the JVM) must follow a
  scale or a reschedule within seconds, which is what the records are for.
- A known name asked for AAAA or any other type: NOERROR, no answers, not forwarded (as Docker:
  a forwarded AAAA could return a stranger's address for a local name).
- PTR for an address on the container's networks: the first name, in the view's order, that
  maps to that address alone (a task's or a service's own name rather than "tasks.x").
- Anything else, single-label names included, is forwarded as Docker does by default (it keeps
  single labels local only when the user sets ndots): from coveyd's own namespace, so a host
  resolver on loopback works; UDP, or TCP when asked over TCP or when the UDP answer is
  truncated; each upstream in turn, `attempts` rounds, `timeout` each; SERVFAIL when all fail.
- A UDP answer bigger than the client's buffer (512, or its EDNS size) goes back truncated
  (TC, question only) so that the client asks again over TCP.
- Packets that do not parse, responses and empty questions are dropped; other opcodes: NOTIMP.
"""
from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import logging
import os
import random
import secrets
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from dnslib import CLASS, PTR, QTYPE, RCODE, RR, A, DNSRecord
from pyroute2 import IPRoute

from overlay.model import DNS_ADDR, DnsView

log = logging.getLogger(__name__)

DNS_PORT = 53
DEFAULT_TTL = 10                # s: see the module docstring
UDP_MIN_PAYLOAD = 512           # bytes a UDP client takes without EDNS (RFC 1035)
TCP_MAX_MESSAGE = 65535         # bytes: a TCP message's 16-bit length prefix
TCP_IDLE_TIMEOUT = 10.0         # s: a client's idle TCP connection is closed after this
MAX_FORWARDS = 1024             # queries in flight to the upstreams; more get SERVFAIL at once
CLONE_NEWNET = 0x40000000
IFF_UP = 0x1
OPCODE_QUERY = 0

T = TypeVar("T")


# --- names ---------------------------------------------------------------------------------

def _norm(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass(frozen=True)
class _Network:
    """One network's names, normalized once: name -> IPs, and address -> PTR name."""
    names: dict[str, tuple[str, ...]]
    ptr: dict[str, str]

    @classmethod
    def of(cls, view: DnsView) -> _Network:
        names: dict[str, tuple[str, ...]] = {}
        sole: dict[str, str] = {}       # address -> first name that maps to it alone
        listed: dict[str, str] = {}     # address -> first name that lists it
        for name, ips in view.names.items():
            for ip in ips:
                _check_ipv4(ip, name, view.network_id)
                listed.setdefault(ip, name.rstrip("."))
                if len(ips) == 1:
                    sole.setdefault(ip, name.rstrip("."))
            names[_norm(name)] = tuple(ips)
        return cls(names, {**listed, **sole})


def _check_ipv4(ip: str, name: str, network_id: str) -> None:
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise ValueError(f"DNS name {name!r} on network {network_id}: {ip!r} is not an IPv4 address") from None


def _candidates(name: str, stack: str) -> Iterator[str]:
    """The names to look up for `name`, best first: as asked, then the stack's long form."""
    yield name
    if stack:
        if name.startswith("tasks."):
            yield f"tasks.{stack}_{name[len('tasks.'):]}"
        else:
            yield f"{stack}_{name}"


def _ptr_address(name: str) -> str | None:
    """"4.3.2.1.in-addr.arpa" -> "1.2.3.4"; None for anything else."""
    labels = name.split(".")
    if len(labels) != 6 or labels[4:] != ["in-addr", "arpa"]:
        return None
    return ".".join(reversed(labels[:4]))


# --- upstreams -----------------------------------------------------------------------------

def parse_upstream(text: str) -> tuple[str, int]:
    """"IP" or "IP:PORT" ("[v6]:PORT" for IPv6) -> (ip, port)."""
    host, port = text, DNS_PORT
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        pass
    try:
        host, _, port_text = text.rpartition(":")
        host, port = host.strip("[]"), int(port_text)
        ipaddress.ip_address(host)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise ValueError(f"upstream DNS server {text!r}: expected IP or IP:PORT") from None
    return host, port


def upstreams_from_resolv_conf(path: str = "/etc/resolv.conf") -> list[str]:
    """The node's own resolvers: the default upstreams."""
    with open(path) as f:
        return [words[1] for line in f if len(words := line.split()) >= 2 and words[0] == "nameserver"]


class _UdpExchange(asyncio.DatagramProtocol):
    """One query to one upstream over UDP: the first reply with our ID."""

    def __init__(self, query_id: bytes):
        self.query_id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if len(data) >= 12 and data[:2] == self.query_id and data[2] & 0x80 and not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:   # e.g. ICMP port unreachable: fail fast
        if not self.reply.done():
            self.reply.set_exception(exc)


async def _ask_udp(upstream: tuple[str, int], query: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET
    transport, exchange = await loop.create_datagram_endpoint(
        lambda: _UdpExchange(query[:2]), remote_addr=upstream, family=family)
    try:
        transport.sendto(query)
        return await exchange.reply
    finally:
        transport.close()


async def _ask_tcp(upstream: tuple[str, int], query: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        writer.write(struct.pack("!H", len(query)) + query)
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = await reader.readexactly(length)
            if reply[:2] == query[:2]:
                return reply
    finally:
        writer.close()


def _is_truncated(reply: bytes) -> bool:
    return bool(reply[2] & 0x02)


# --- sockets in a namespace ----------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    # os.setns exists only from Python 3.12.
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def call_in_netns(netns_path: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread that entered the network namespace at `netns_path`, then
    returned to its own (a thread's namespace is its own: the caller's never changes).
    Sockets `fn` creates stay bound in that namespace."""
    result: list[T] = []
    error: list[BaseException] = []

    def enter_and_call() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
                try:
                    result.append(fn())
                finally:
                    _setns(own)
            finally:
                os.close(target)
        except BaseException as e:  # handed to the caller
            error.append(e)
        finally:
            os.close(own)

    thread = threading.Thread(target=enter_and_call, name="netns-call", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def call_in_netns_async(netns_path: str, fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(call_in_netns, netns_path, fn)


def _bring_lo_up() -> None:
    """In the current thread's namespace: the resolver's address lives on lo."""
    with IPRoute() as ipr:
        (index,) = ipr.link_lookup(ifname="lo")
        if not ipr.get_links(index)[0]["flags"] & IFF_UP:
            ipr.link("set", index=index, state="up")


def _open_listeners() -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets on DNS_ADDR:53 in the current thread's namespace."""
    _bring_lo_up()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for sock in (udp, tcp):
            sock.setblocking(False)
            sock.bind((DNS_ADDR, DNS_PORT))
        tcp.listen(64)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


# --- the server ----------------------------------------------------------------------------

@dataclass
class _Endpoint:
    """One container: where it is, what it sees, and its two listeners."""
    key: str
    netns_path: str
    networks: tuple[str, ...]
    stack: str
    udp: asyncio.DatagramTransport | None = None
    udp_listener: _UdpListener | None = None
    tcp: asyncio.Server | None = None
    conns: set[asyncio.StreamWriter] = field(default_factory=set)


class _UdpListener(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver, endpoint: _Endpoint):
        self.resolver, self.endpoint = resolver, endpoint
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:   # the socket is closed now
        if not self.closed.done():
            self.closed.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.resolver._on_datagram(self.endpoint, data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns %s: udp error %s", self.endpoint.key, exc)


class Resolver:
    """Answers every served container from the names of its networks; forwards the rest.
    Call it from the thread of the loop that serves (set_names and drop_network included)."""

    def __init__(self, upstreams: list[str], timeout: float = 2.0, attempts: int = 2, ttl: int = DEFAULT_TTL):
        if timeout <= 0 or attempts < 1:
            raise ValueError(f"DNS forwarding needs timeout > 0 and attempts >= 1, got {timeout} and {attempts}")
        self.upstreams = [parse_upstream(u) for u in upstreams]
        self.timeout, self.attempts, self.ttl = timeout, attempts, ttl
        self._networks: dict[str, _Network] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        self._forwards: set[asyncio.Task[None]] = set()
        self._changing = asyncio.Lock()     # serve/stop: one socket set per key, never two

    # -- names

    def set_names(self, view: DnsView) -> None:
        self._networks[view.network_id] = _Network.of(view)

    def drop_network(self, network_id: str) -> None:
        self._networks.pop(network_id, None)

    # -- containers

    async def serve(self, key: str, netns_path: str, networks: list[str], stack: str = "") -> None:
        async with self._changing:
            endpoint = self._endpoints.get(key)
            if endpoint and endpoint.netns_path == netns_path:
                endpoint.networks, endpoint.stack = tuple(networks), stack
                return
            if endpoint:        # the container's namespace changed: listen in the new one
                await self._close(self._endpoints.pop(key))
            endpoint = _Endpoint(key, netns_path, tuple(networks), stack)
            await self._listen(endpoint)
            self._endpoints[key] = endpoint
            log.debug("dns %s: serving in %s for %s", key, netns_path, ",".join(networks))

    async def stop(self, key: str) -> None:
        async with self._changing:
            endpoint = self._endpoints.pop(key, None)
            if endpoint:
                await self._close(endpoint)
                log.debug("dns %s: stopped", key)

    async def close(self) -> None:
        for key in list(self._endpoints):
            await self.stop(key)
        for task in list(self._forwards):
            task.cancel()
        await asyncio.gather(*self._forwards, return_exceptions=True)

    def serving(self) -> list[str]:
        return list(self._endpoints)

    async def _listen(self, endpoint: _Endpoint) -> None:
        try:
            udp, tcp = await call_in_netns_async(endpoint.netns_path, _open_listeners)
        except OSError as e:
            raise OSError(e.errno, f"DNS for {endpoint.key}: cannot listen on {DNS_ADDR}:{DNS_PORT} "
                                   f"in {endpoint.netns_path}: {e.strerror or e}") from e
        loop = asyncio.get_running_loop()
        try:
            endpoint.udp, endpoint.udp_listener = await loop.create_datagram_endpoint(
                lambda: _UdpListener(self, endpoint), sock=udp)
            endpoint.tcp = await asyncio.start_server(
                lambda r, w: self._on_connection(endpoint, r, w), sock=tcp)
        except BaseException:
            udp.close()
            tcp.close()
            raise

    async def _close(self, endpoint: _Endpoint) -> None:
        if endpoint.udp and endpoint.udp_listener:
            endpoint.udp.close()
            await endpoint.udp_listener.closed
        for writer in list(endpoint.conns):
            writer.close()
        if endpoint.tcp:
            endpoint.tcp.close()
            await endpoint.tcp.wait_closed()

    # -- transports

    def _on_datagram(self, endpoint: _Endpoint, data: bytes, addr: tuple[str, int]) -> None:
        try:
            self._answer_datagram(endpoint, data, addr)
        except Exception:  # one bad packet must never cost the others their answers
            log.debug("dns %s: dropped a query that failed", endpoint.key, exc_info=True)

    def _answer_datagram(self, endpoint: _Endpoint, data: bytes, addr: tuple[str, int]) -> None:
        request = self._parse(endpoint, data)
        if request is None:
            return
        limit = max(UDP_MIN_PAYLOAD, _edns_payload(request))
        reply = self._answer_here(endpoint, request)
        if reply is not None:
            self._send_udp(endpoint, _fit(reply, request, limit), addr)
        elif len(self._forwards) >= MAX_FORWARDS:
            self._send_udp(endpoint, _failure(request, RCODE.SERVFAIL), addr)
        else:
            task = asyncio.create_task(self._forward_udp(endpoint, request, data, limit, addr))
            self._forwards.add(task)
            task.add_done_callback(self._forwards.discard)

    async def _forward_udp(self, endpoint: _Endpoint, request: DNSRecord, data: bytes, limit: int,
                           addr: tuple[str, int]) -> None:
        reply = await self._forward(endpoint, request, data, over_tcp=False)
        self._send_udp(endpoint, _fit(reply, request, limit), addr)

    @staticmethod
    def _send_udp(endpoint: _Endpoint, reply: bytes, addr: tuple[str, int]) -> None:
        if endpoint.udp and not endpoint.udp.is_closing():
            endpoint.udp.sendto(reply, addr)

    async def _on_connection(self, endpoint: _Endpoint, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        endpoint.conns.add(writer)
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                request = self._parse(endpoint, data)
                if request is None:
                    return
                reply = self._answer_here(endpoint, request)
                if reply is None:
                    reply = await self._forward(endpoint, request, data, over_tcp=True)
                reply = _fit(reply, request, TCP_MAX_MESSAGE)
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except Exception:  # one bad connection must never cost the others their answers
            log.debug("dns %s: closed a connection whose query failed", endpoint.key, exc_info=True)
        finally:
            endpoint.conns.discard(writer)
            writer.close()

    # -- answers

    @staticmethod
    def _parse(endpoint: _Endpoint, data: bytes) -> DNSRecord | None:
        """The query, or None for what is dropped: garbage, responses, no question."""
        try:
            request = DNSRecord.parse(data)
        except Exception as e:  # dnslib raises DNSError, but also whatever a bad field trips

            log.debug("dns %s: dropped a malformed packet (%s)", endpoint.key, e)
            return None
        if request.header.qr or not request.questions:
            log.debug("dns %s: dropped a packet that is no query", endpoint.key)
            return None
        return request

    def _answer_here(self, endpoint: _Endpoint, request: DNSRecord) -> bytes | None:
        """The packed reply from local names, or None when the query must be forwarded."""
        if request.header.opcode != OPCODE_QUERY:
            return _failure(request, RCODE.NOTIMP)
        question = request.q
        if question.qclass != CLASS.IN:
            return None
        name = _norm(str(question.qname))
        if question.qtype == QTYPE.PTR:
            return self._answer_ptr(endpoint, request, name)
        ips = self._lookup(endpoint, name)
        if ips is None:
            return None
        reply = request.reply()
        if question.qtype == QTYPE.A:
            for ip in random.sample(ips, len(ips)):
                reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(ip), ttl=self.ttl))
        log.debug("dns %s: %s -> %s", endpoint.key, question, ips)
        return reply.pack()

    def _lookup(self, endpoint: _Endpoint, name: str) -> tuple[str, ...] | None:
        for candidate in _candidates(name, endpoint.stack):
            for network_id in endpoint.networks:
                network = self._networks.get(network_id)
                if network and (ips := network.names.get(candidate)) is not None:
                    return ips
        return None

    def _answer_ptr(self, endpoint: _Endpoint, request: DNSRecord, name: str) -> bytes | None:
        address = _ptr_address(name)
        for network_id in endpoint.networks if address else ():
            network = self._networks.get(network_id)
            if network and (target := network.ptr.get(address or "")):
                reply = request.reply()
                reply.add_answer(RR(request.q.qname, QTYPE.PTR, rdata=PTR(target + "."), ttl=self.ttl))
                log.debug("dns %s: PTR %s -> %s", endpoint.key, address, target)
                return reply.pack()
        return None

    async def _forward(self, endpoint: _Endpoint, request: DNSRecord, data: bytes, over_tcp: bool) -> bytes:
        """The first upstream's reply (with the client's ID), else SERVFAIL."""
        for _ in range(self.attempts):
            for upstream in self.upstreams:
                query = secrets.token_bytes(2) + data[2:]   # our own ID: a spoofed reply must guess it
                try:
                    async with asyncio.timeout(self.timeout):
                        reply = await (_ask_tcp if over_tcp else _ask_udp)(upstream, query)
                        if not over_tcp and _is_truncated(reply):
                            reply = await _ask_tcp(upstream, query)
                except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                    log.debug("dns %s: upstream %s:%d failed for %s: %r",
                              endpoint.key, *upstream, request.q.qname, e)
                    continue
                log.debug("dns %s: %s forwarded to %s:%d", endpoint.key, request.q.qname, *upstream)
                return data[:2] + reply[2:]
        log.debug("dns %s: %s: every upstream failed", endpoint.key, request.q.qname)
        return _failure(request, RCODE.SERVFAIL)


def _failure(request: DNSRecord, rcode: int) -> bytes:
    reply = request.reply(aa=0)
    reply.header.rcode = rcode
    return reply.pack()


def _edns_payload(request: DNSRecord) -> int:
    """The UDP payload size a client announced with EDNS (the OPT record's class), or 0."""
    return max((rr.rclass for rr in request.ar if rr.rtype == QTYPE.OPT), default=0)


def _fit(reply: bytes, request: DNSRecord, limit: int) -> bytes:
    """`reply`, or when it exceeds `limit` bytes a truncated one (TC, the question only) so that
    the client asks again over TCP."""
    if len(reply) <= limit:
        return reply
    truncated = request.reply(aa=0)
    truncated.header.tc = 1
    return truncated.pack()
