"""From a task change committed to the data plane updated on EVERY node: a service on an
overlay network scaled 2 -> 3, then the time until each node's embedded DNS answers the new
task in `tasks.<service>` and until its VIP table (nft, in a container's namespace) holds the
new backend. Measured from the RUNNING write in the store (the task's meta.updated_at) and
from the worker's own RUNNING report (its status timestamp, before the store write); the
slowest node of each change counts. And the embedded DNS's answer latency from inside a
container. A real 3-host lab swarm; one probe container per node (global service) asks.
Goal: <= 100 ms p99 to every node.

    python3 tests/bench/bench_dataplane_convergence.py [--changes 20] [--queries 1000] [--out PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time

import benchpaths  # noqa: F401  (first: puts the project on sys.path)
from dnslib import QTYPE, DNSRecord
from swarmbench import summary, task_netns, write_result  # noqa: E402

from tests.e2e.swarmtools import REGISTRY, swarm_with_registry  # noqa: E402
from tests.e2e.test_overlay import converge, covey, host_of, running_tasks, task_ips  # noqa: E402
from tests.support.dnskit import exchange_udp, ns_socket  # noqa: E402

BUSYBOX = f"{REGISTRY}/covey/busybox:1"
SERVICE = "conv"
POLL = 0.002                # s: between two DNS questions of one watcher (a nft listing takes longer)
CHANGE_TIMEOUT = 30.0       # s: a change has reached every node
CLI_TIMEOUT = 60.0          # s: one covey command


def a_records(reply: DNSRecord) -> set[str]:
    return {str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A}


async def ask(sock: socket.socket, name: str) -> set[str]:
    query = DNSRecord.question(name)
    return a_records(DNSRecord.parse(await exchange_udp(sock, query.pack())))


async def vip_listing(netns: str) -> str:
    proc = await asyncio.create_subprocess_exec("nsenter", f"--net={netns}", "nft", "list", "ruleset",
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.decode()


async def watch(netns: str, before: set[str]) -> tuple[str, int, int]:
    """(the new address, when this node's DNS first answered it, when its VIP table first held it)."""
    sock = await ns_socket(netns, socket.SOCK_DGRAM)
    with sock:
        while not (new := await ask(sock, f"tasks.{SERVICE}") - before):
            await asyncio.sleep(POLL)
    dns_ns = time.time_ns()
    (addr,) = new
    while f"{addr}" not in (await vip_listing(netns)).split("map {", 1)[-1]:
        await asyncio.sleep(POLL)
    return addr, dns_ns, time.time_ns()


async def covey_async(lab, *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "covey.cli.main", "-H",
                                                f"unix://{lab.hosts[0].socket}", *args,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    if proc.returncode:
        raise RuntimeError(f"covey {' '.join(args)}: {err.decode().strip()}")


async def one_change(lab, probes: list[str]) -> dict[str, float]:
    """Scale 2 -> 3 while every node's probe watches; ms from the new task's RUNNING to the
    slowest node's DNS and VIP."""
    before = {ip for t in running_tasks(lab, SERVICE) for ip in task_ips(t)}
    watchers = [asyncio.create_task(watch(netns, before)) for netns in probes]
    await covey_async(lab, "service", "scale", f"{SERVICE}=3")
    seen = await asyncio.wait_for(asyncio.gather(*watchers), CHANGE_TIMEOUT)
    (addr,) = {s[0] for s in seen}
    task = next(t for t in running_tasks(lab, SERVICE) if addr in task_ips(t))
    stored, reported = int(task["meta"]["updated_at_ns"]), int(task["status"]["timestamp_ns"])
    dns, vip = max(s[1] for s in seen), max(s[2] for s in seen)
    return {"dns_from_store_ms": (dns - stored) / 1e6, "vip_from_store_ms": (vip - stored) / 1e6,
            "dns_from_report_ms": (dns - reported) / 1e6, "vip_from_report_ms": (vip - reported) / 1e6,
            "report_to_store_ms": (stored - reported) / 1e6}


async def scale_back(lab, probes: list[str]) -> None:
    await covey_async(lab, "service", "scale", f"{SERVICE}=2")
    deadline = time.monotonic() + CHANGE_TIMEOUT
    for netns in probes:
        sock = await ns_socket(netns, socket.SOCK_DGRAM)
        with sock:
            while len(await ask(sock, f"tasks.{SERVICE}")) != 2:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{netns} still answers 3 tasks of {SERVICE}")
                await asyncio.sleep(POLL)


async def dns_latency(netns: str, name: str, queries: int) -> list[float]:
    """µs per question, one at a time, over one socket in the container's namespace."""
    sock = await ns_socket(netns, socket.SOCK_DGRAM)
    times = []
    with sock:
        for _ in range(queries):
            t0 = time.perf_counter()
            if not await ask(sock, name):
                raise RuntimeError(f"no answer for {name}")
            times.append((time.perf_counter() - t0) * 1e6)
    return times


async def measure(lab, probes: list[str], changes: int, queries: int) -> dict:
    runs = []
    for _ in range(changes):
        runs.append(await one_change(lab, probes))
        await scale_back(lab, probes)
    latency = {name: summary(await dns_latency(probes[0], name, queries), 0)
               for name in (SERVICE, f"tasks.{SERVICE}")}
    return {"changes": changes, "nodes": len(probes),
            "slowest_node_ms": {key: summary([r[key] for r in runs]) for key in runs[0]},
            "dns_answer_us": latency, "goal_p99_ms": 100}


def bench(changes: int, queries: int) -> dict:
    with swarm_with_registry(3) as lab:
        covey(lab, "network", "create", "-d", "overlay", "benchnet")
        covey(lab, "service", "create", "--name", SERVICE, "--network", "benchnet", "--replicas", "2",
              "-d", BUSYBOX, "sleep", "86400")
        covey(lab, "service", "create", "--name", "probe", "--network", "benchnet", "--mode", "global",
              "-d", BUSYBOX, "sleep", "86400")
        converge(lab, SERVICE, 2)
        probes = [task_netns(lab, host_of(lab, t["node_id"]), t["id"]) for t in converge(lab, "probe", 3)]
        return asyncio.run(measure(lab, probes, changes, queries))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--out")
    args = parser.parse_args()
    write_result("dataplane_convergence", bench(args.changes, args.queries), args.out)


if __name__ == "__main__":
    main()
