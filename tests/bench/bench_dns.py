"""Embedded DNS (overlay/dns.py): answer latency p50/p99 and throughput, local and forwarded,
and what serving one more container costs (serve() time, memory).

One Resolver in this process knows one network of --services services ("svc-N" -> VIP,
"tasks.svc-N" -> 3 task IPs) and serves --containers network namespaces (per-run prefix,
removed at the end). A client process (this file with --client) asks from inside the first
namespace over UDP: --queries sequential queries for the latency, the same number with
--window queries in flight for the throughput. Forwarded names go to a dnslib upstream on
127.0.0.1 in this process. Loopback and lab namespaces only.

    python3 tests/bench/bench_dns.py [--services 1000] [--containers 200] [--queries 5000] [--out PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)
from dnslib import DNSRecord
from pyroute2 import netns

from overlay.dns import Resolver, call_in_netns
from overlay.model import DNS_ADDR, DnsView
from tests.support.dnskit import Upstream

CLIENT_TIMEOUT = 2.0     # s: a query unanswered this long counts as lost
WARMUP = 200             # queries before measuring
TASKS_PER_SERVICE = 3
ZONE_NAMES = [f"ext-{i}.test" for i in range(100)]     # what the upstream knows


# --- the client (a separate process, so that it does not share the resolver's GIL) -----------

def client(netns_path: str, names: list[str], count: int, window: int) -> dict:
    sock = call_in_netns(netns_path, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.connect((DNS_ADDR, 53))
    sock.settimeout(CLIENT_TIMEOUT)
    queries = [DNSRecord.question(random.choice(names)).pack() for _ in range(count + WARMUP)]
    for q in queries[:WARMUP]:
        sock.send(q)
        sock.recv(65535)
    latencies, lost = [], 0
    for q in queries[WARMUP:]:
        began = time.perf_counter()
        sock.send(q)
        try:
            while sock.recv(65535)[:2] != q[:2]:
                pass
        except TimeoutError:
            lost += 1
            continue
        latencies.append(time.perf_counter() - began)
    return {"latency": summary(latencies), "lost": lost, **pipelined(sock, queries[WARMUP:], window)}


def pipelined(sock: socket.socket, queries: list[bytes], window: int) -> dict:
    """`window` queries in flight: one more sent per answer received."""
    began, sent, answered = time.perf_counter(), 0, 0
    while sent < min(window, len(queries)):
        sock.send(queries[sent])
        sent += 1
    while answered < sent:
        try:
            sock.recv(65535)
        except TimeoutError:
            break
        answered += 1
        if sent < len(queries):
            sock.send(queries[sent])
            sent += 1
    took = time.perf_counter() - began
    return {"throughput_qps": round(answered / took), "pipelined_lost": len(queries) - answered, "window": window}


def summary(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0}
    cuts = statistics.quantiles(seconds, n=100)
    return {"n": len(seconds), "p50_us": round(cuts[49] * 1e6), "p99_us": round(cuts[98] * 1e6),
            "max_us": round(max(seconds) * 1e6)}


# --- the resolver side ---------------------------------------------------------------------

def network(services: int) -> DnsView:
    names: dict[str, tuple[str, ...]] = {}
    for i in range(services):
        base = 10 * (i + 1)     # 10 addresses per service within 10.1.0.0/16
        names[f"svc-{i}"] = (f"10.1.{base // 256}.{base % 256}",)
        names[f"tasks.svc-{i}"] = tuple(f"10.1.{(base + k) // 256}.{(base + k) % 256}"
                                        for k in range(1, TASKS_PER_SERVICE + 1))
    return DnsView("bench-net", names)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def ask_from_client(netns_path: str, names: list[str], count: int, window: int) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", netns_path, "--queries", str(count), "--window", str(window),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(json.dumps(names).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"the DNS client failed with exit code {proc.returncode}")
    return json.loads(out)


async def bench(args: argparse.Namespace, paths: list[str]) -> dict:
    upstream = await Upstream({name: ["192.0.2.1"] for name in ZONE_NAMES}).start()
    resolver = Resolver([upstream.address])
    view = network(args.services)
    began = time.perf_counter()
    resolver.set_names(view)
    set_names_ms = (time.perf_counter() - began) * 1e3
    rss_before, serve_times = rss_kib(), []
    try:
        for i, path in enumerate(paths):
            began = time.perf_counter()
            await resolver.serve(f"c{i}", path, ["bench-net"])
            serve_times.append(time.perf_counter() - began)
        per_container_kib = (rss_kib() - rss_before) / len(paths)
        services = [f"svc-{i}" for i in range(args.services)]
        results = {
            "vip": await ask_from_client(paths[0], services, args.queries, args.window),
            "tasks": await ask_from_client(paths[0], [f"tasks.{s}" for s in services], args.queries, args.window),
            "forwarded": await ask_from_client(paths[0], list(ZONE_NAMES), args.queries // 5, args.window),
        }
    finally:
        await resolver.close()
        await upstream.stop()
    return {"services": args.services, "containers": len(paths), "set_names_ms": round(set_names_ms, 1),
            "serve": {k.replace("_us", "_ms"): round(v / 1e3, 2) if k.endswith("_us") else v
                      for k, v in summary(serve_times).items()},
            "rss_per_container_kib": round(per_container_kib, 1), **results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--out", default="")
    ap.add_argument("--client", metavar="NETNS_PATH", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        print(json.dumps(client(args.client, json.load(sys.stdin), args.queries, args.window)))
        return
    assert os.geteuid() == 0, "serves DNS inside network namespaces: run as root"
    run_id = f"cvdnsb{uuid.uuid4().hex[:6]}"
    names = [f"{run_id}-{i}" for i in range(args.containers)]
    try:
        for name in names:
            netns.create(name)
        res = asyncio.run(bench(args, [f"/run/netns/{n}" for n in names]))
    finally:
        for name in names:
            if Path(f"/run/netns/{name}").exists():
                netns.remove(name)
    res.update(benchmark="dns", time=time.time(), cpus=os.cpu_count())
    out = Path(args.out or Path(tempfile.gettempdir()) / "covey-bench" / f"dns-{int(time.time())}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(f"embedded DNS, {res['services']} services on one network, {res['containers']} containers served:")
    for kind in ("vip", "tasks", "forwarded"):
        r = res[kind]
        print(f"  {kind:9s} latency p50 {r['latency']['p50_us']} us  p99 {r['latency']['p99_us']} us  "
              f"(n={r['latency']['n']}, lost {r['lost']});  throughput {r['throughput_qps']} q/s "
              f"with {r['window']} in flight (lost {r['pipelined_lost']})")
    s = res["serve"]
    print(f"  serve() one container: p50 {s['p50_ms']} ms  p99 {s['p99_ms']} ms;  "
          f"RSS {res['rss_per_container_kib']} KiB per container;  set_names {res['set_names_ms']} ms")
    print(f"result written to {out}")


if __name__ == "__main__":
    main()
