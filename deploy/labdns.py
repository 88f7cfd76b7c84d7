"""The lab's upstream resolver: answers the A records it is given, NXDOMAIN for any other
name, and forwards nothing. The lab runs it in a namespace of its own and points every
coveyd's embedded DNS at it, so that tests resolve "outside" names without any query
leaving the lab.

    python3 -m deploy.labdns --listen 10.1.0.250 --record egress.lab=10.1.0.3
"""
import argparse
import socketserver
import sys

from dnslib import QTYPE, RCODE, RR, A, DNSRecord


def answer(data: bytes, records: dict[str, str]) -> bytes | None:
    try:
        query = DNSRecord.parse(data)
    except Exception:          # garbage: no answer, as a real resolver drops it
        return None
    reply = query.reply()
    name = str(query.q.qname).rstrip(".").lower()
    if name not in records:
        reply.header.rcode = RCODE.NXDOMAIN
    elif query.q.qtype == QTYPE.A:
        reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(records[name]), ttl=60))
    return reply.pack()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", required=True, help="address to answer on (port 53)")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--record", action="append", default=[], metavar="NAME=IPV4")
    args = parser.parse_args(argv)
    records = dict(r.lower().split("=", 1) for r in args.record)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            reply = answer(data, records)
            if reply is not None:
                sock.sendto(reply, self.client_address)

    with socketserver.UDPServer((args.listen, args.port), Handler) as server:
        print(f"listening on {args.listen}:{args.port} with {len(records)} records", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
