"""Helpers for the embedded DNS tests and bench: a DNS client that asks from inside a network
namespace, and a tiny upstream resolver on the root namespace's loopback (never any other
address) that counts what it was asked."""
from __future__ import annotations

import asyncio
import errno
import socket
import struct
from collections import Counter

from dnslib import QTYPE, RCODE, RR, A, DNSRecord

from overlay.dns import call_in_netns_async
from overlay.model import DNS_ADDR

CLIENT_TIMEOUT = 5.0    # s: a client waits this long for an answer
UPSTREAM_TTL = 60       # s: the TTL of the test upstream's records
BIND_TRIES = 20         # ports tried for the upstream's UDP and TCP listeners


async def ns_socket(netns_path: str, kind: int) -> socket.socket:
    """A non-blocking socket that lives in the namespace at `netns_path`."""
    sock = await call_in_netns_async(netns_path, lambda: socket.socket(socket.AF_INET, kind))
    sock.setblocking(False)
    return sock


async def ask(netns_path: str, name: str, qtype: str = "A", tcp: bool = False) -> DNSRecord:
    """One query to the embedded resolver from inside the namespace."""
    query = DNSRecord.question(name, qtype)
    sock = await ns_socket(netns_path, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    with sock:
        reply = await (exchange_tcp if tcp else exchange_udp)(sock, query.pack())
    record = DNSRecord.parse(reply)
    assert record.header.id == query.header.id, "a reply to another query"
    return record


async def exchange_udp(sock: socket.socket, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (DNS_ADDR, 53))
    await loop.sock_sendall(sock, data)
    return await asyncio.wait_for(loop.sock_recv(sock, 65535), CLIENT_TIMEOUT)


async def exchange_tcp(sock: socket.socket, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, (DNS_ADDR, 53)), CLIENT_TIMEOUT)
    await loop.sock_sendall(sock, struct.pack("!H", len(data)) + data)
    (length,) = struct.unpack("!H", await read_exactly(sock, 2))
    return await read_exactly(sock, length)


async def read_exactly(sock: socket.socket, count: int) -> bytes:
    loop, data = asyncio.get_running_loop(), b""
    while len(data) < count:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, count - len(data)), CLIENT_TIMEOUT)
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def addresses(reply: DNSRecord) -> list[str]:
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


class Upstream:
    """A resolver on 127.0.0.1 (UDP and TCP on one port) with fixed A records; NXDOMAIN for the
    rest. Names in `udp_truncates` answer over UDP with TC set and no records."""

    def __init__(self, zone: dict[str, list[str]], udp_truncates: set[str] = frozenset()):  # type: ignore[assignment]
        self.zone, self.udp_truncates = zone, udp_truncates
        self.asked: Counter[tuple[str, str, str]] = Counter()    # (transport, name, qtype) -> count
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def times_asked(self, name: str, transport: str = "") -> int:
        return sum(n for (t, q, _), n in self.asked.items() if q == name and transport in ("", t))

    async def start(self) -> Upstream:
        loop = asyncio.get_running_loop()
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(upstream.answer(data, "udp"), addr)

        for _ in range(BIND_TRIES):     # the UDP port the kernel picks may be taken for TCP
            self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._on_tcp, "127.0.0.1", self.port)
                return self
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
                self._udp.close()
        raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on 127.0.0.1 in {BIND_TRIES} tries")

    async def stop(self) -> None:
        if self._udp:
            self._udp.close()
        if self._tcp:
            self._tcp.close()
            await self._tcp.wait_closed()

    def answer(self, data: bytes, transport: str) -> bytes:
        query = DNSRecord.parse(data)
        name = str(query.q.qname).rstrip(".").lower()
        self.asked[(transport, name, QTYPE[query.q.qtype])] += 1
        reply = query.reply(aa=0)
        if name not in self.zone:
            reply.header.rcode = RCODE.NXDOMAIN
        elif transport == "udp" and name in self.udp_truncates:
            reply.header.tc = 1
        elif query.q.qtype == QTYPE.A:
            for ip in self.zone[name]:
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(ip), ttl=UPSTREAM_TTL))
        return reply.pack()

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                reply = self.answer(await reader.readexactly(length), "tcp")
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()
