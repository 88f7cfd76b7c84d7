"""The ingress mesh's cost: requests/s with a new TCP connection per request through the mesh
to a node that runs no task of the service (the connection crosses the overlay) and to the
node that runs it (local DNAT), as ratios to the same server straight on that node's address;
the same again with 1,000 more published services; and the time one node takes to apply a
backend change (set_mesh, one transaction per namespace). A lab of 3 hosts (host 1 runs the
task, host 2 none, host 3 is the client), real namespaces and nftables, a per-run prefix,
everything removed at the end. The client is a Python loop (no wrk on this machine) in
CLIENTS processes; the server is an asyncio one, in its own process.

    python3 tests/bench/bench_mesh.py [--seconds 3] [--changes 200] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from deploy.lab import Lab  # noqa: E402
from overlay.driver import Overlay  # noqa: E402
from overlay.model import TCP, Attachment, Network, Peer, PublishedPort  # noqa: E402
from overlay.netns import netns_path  # noqa: E402

INGRESS = Network(id="ingress", vni=4300, subnet="10.50.0.0/16", gateway="10.50.0.1")
NODE_ADDRS = ["10.50.0.2", "10.50.0.3"]
TASK_IP, OTHER_IP = "10.50.0.10", "10.50.0.11"
TARGET, PUBLISHED, DIRECT = 8000, 8080, 8001
EXTRA_SERVICES = 1000
CLIENTS = 2                 # client processes (this machine has few CPUs)
ROUNDS = 3                  # each rate is the median of its rounds, taken in turn with the direct one
READY_TIMEOUT = 10.0        # s: a server starts listening
RUN_SLACK = 30.0            # s: beyond --seconds, a client run must have ended

SERVER = """
import asyncio, sys
async def main():
    async def answer(reader, writer):
        writer.write(b"ok\\n")
        try:
            await writer.drain()
            await reader.read()       # the client closes first
        except OSError:
            pass
        writer.close()
    servers = [await asyncio.start_server(answer, "0.0.0.0", int(p), backlog=1024) for p in sys.argv[1:]]
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))
asyncio.run(main())
"""

CLIENT = """
import socket, struct, sys, time
LINGER = struct.pack("ii", 1, 0)   # close with a reset: no TIME_WAIT to collide with a reused port
addr, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
done, failed, end = 0, 0, time.monotonic() + seconds
while time.monotonic() < end:
    try:
        with socket.create_connection((addr, port), timeout=2) as s:
            if s.recv(16) == b"ok\\n":
                done += 1
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER)
    except OSError:
        failed += 1
print(done, failed)
"""


LATENCY = """
import socket, struct, sys, time
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
LINGER = struct.pack("ii", 1, 0)
for _ in range(n):
    t0 = time.perf_counter()
    with socket.create_connection((addr, port), timeout=2) as s:
        s.recv(16)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER)
    print(round((time.perf_counter() - t0) * 1e6))
"""
LATENCY_REQUESTS = 1000     # sequential requests per target for the latency percentiles


def in_netns(path: str, *argv: str) -> list[str]:
    return ["nsenter", f"--net={path}", sys.executable, *argv]


def start_server(path: str, *ports: int) -> subprocess.Popen:
    server = subprocess.Popen(in_netns(path, "-c", SERVER, *map(str, ports)), stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    if server.stdout.readline().strip() != "ready":
        server.kill()
        raise RuntimeError("the bench server did not start")
    return server


def rate(client: str, addr: str, port: int, seconds: float) -> float:
    """Requests per second (one connection each) from CLIENTS processes; a failure ends the bench."""
    procs = [subprocess.Popen(in_netns(client, "-c", CLIENT, addr, str(port), str(seconds)), stdout=subprocess.PIPE,
                              text=True) for _ in range(CLIENTS)]
    done = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + RUN_SLACK)
        ok, failed = map(int, out.split())
        if failed:
            raise RuntimeError(f"{failed} failed requests to {addr}:{port}")
        done += ok
    return done / seconds


def rates_in_turn(client: str, targets: dict[str, tuple[str, int]], seconds: float) -> dict[str, float]:
    """The median rate of each target over ROUNDS rounds, the targets taken in turn within a
    round, so that a busy moment of the machine weighs on all of them alike."""
    runs: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(ROUNDS):
        for name, (addr, port) in targets.items():
            runs[name].append(rate(client, addr, port, seconds))
    return {name: statistics.median(values) for name, values in runs.items()}


def latency(client: str, addr: str, port: int) -> dict[str, int]:
    """µs per request (connect, read the answer, close), one at a time: p50 and p90."""
    out = subprocess.run(in_netns(client, "-c", LATENCY, addr, str(port), str(LATENCY_REQUESTS)), check=True,
                         capture_output=True, text=True, timeout=LATENCY_REQUESTS * 2 + RUN_SLACK).stdout
    us = [float(line) for line in out.split()]
    return {"p50": round(pct(us, 50)), "p90": round(pct(us, 90))}


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def web(*backends: str, published: int = PUBLISHED) -> PublishedPort:
    return PublishedPort(TCP, published, TARGET, backends)


def apply_times(overlay: Overlay, node_addr: str, changes: int) -> list[float]:
    """ms per backend change on one node: one task joins, then leaves, in turn."""
    times = []
    for i in range(changes):
        port = web(TASK_IP, OTHER_IP) if i % 2 == 0 else web(TASK_IP)
        t0 = time.perf_counter()
        overlay.set_mesh(INGRESS.vni, node_addr, [port], complete=False)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def bench(seconds: float, changes: int) -> dict:
    lab = Lab(3, subnet="10.215.0").up()
    overlays: list[Overlay] = []
    servers: list[subprocess.Popen] = []
    try:
        for i, host in enumerate(lab.hosts[:2]):
            overlays.append(Overlay(f"{lab.prefix}m{i}", host.addr, host_netns=host.netns))
            overlays[i].ensure_network(INGRESS)
        task = overlays[0].create_endpoint_ns("t1")
        overlays[0].attach("t1", [Attachment(INGRESS, f"{TASK_IP}/16")])
        overlays[0].set_ingress_routes("t1", INGRESS.vni, NODE_ADDRS)
        overlays[1].set_peers(INGRESS.vni, [Peer(TASK_IP, lab.hosts[0].addr), Peer(NODE_ADDRS[0], lab.hosts[0].addr)])
        overlays[0].set_peers(INGRESS.vni, [Peer(NODE_ADDRS[1], lab.hosts[1].addr)])
        for i, overlay in enumerate(overlays):
            overlay.set_mesh(INGRESS.vni, NODE_ADDRS[i], [web(TASK_IP)])
        servers.append(start_server(task, TARGET))
        servers.append(start_server(netns_path(lab.hosts[0].netns), DIRECT))
        client = netns_path(lab.hosts[2].netns)
        with_task, without_task = lab.hosts[0].addr, lab.hosts[1].addr

        rate(client, with_task, PUBLISHED, min(seconds, 1.0))   # warm up: neighbours, conntrack, caches
        targets = {"direct": (with_task, DIRECT), "with_task": (with_task, PUBLISHED),
                   "without_task": (without_task, PUBLISHED)}
        rates = rates_in_turn(client, targets, seconds)
        latencies = {name: latency(client, addr, port) for name, (addr, port) in targets.items()}
        times = apply_times(overlays[1], NODE_ADDRS[1], changes)
        extra = [web(TASK_IP, published=20000 + i) for i in range(EXTRA_SERVICES)]
        t0 = time.perf_counter()
        overlays[1].set_mesh(INGRESS.vni, NODE_ADDRS[1], extra, complete=False)
        add_extra_ms = (time.perf_counter() - t0) * 1000
        many = rates_in_turn(client, {k: targets[k] for k in ("direct", "without_task")}, seconds)
        times_many = apply_times(overlays[1], NODE_ADDRS[1], changes)
        return {
            "seconds_per_run": seconds, "client_processes": CLIENTS, "rounds": ROUNDS,
            "direct_rps": round(rates["direct"]), "mesh_node_with_task_rps": round(rates["with_task"]),
            "mesh_node_without_task_rps": round(rates["without_task"]),
            "ratio_node_with_task": round(rates["with_task"] / rates["direct"], 3),
            "ratio_node_without_task": round(rates["without_task"] / rates["direct"], 3),
            "ratio_node_without_task_with_1000_more_services": round(many["without_task"] / many["direct"], 3),
            "latency_us": latencies,
            "backend_change_ms": {"p50": round(pct(times, 50), 2), "p99": round(pct(times, 99), 2),
                                  "mean": round(statistics.fmean(times), 2), "changes": changes},
            "backend_change_ms_with_1000_more_services": {"p50": round(pct(times_many, 50), 2),
                                                          "p99": round(pct(times_many, 99), 2)},
            "add_1000_services_ms": round(add_extra_ms, 1),
        }
    finally:
        for server in servers:
            server.kill()
            server.wait()
        for overlay in overlays:
            overlay.remove_all()
            overlay.close()
        lab.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--out")
    args = parser.parse_args()
    result = bench(args.seconds, args.changes)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
