#!/usr/bin/env python3
"""What linearizable reads cost: the latency of ListNodes (what `covey node ls` calls) over
mutual TLS through the leader and through a follower of an in-process swarm of 3 managers
(real Raft on loopback, the product's Raft timings), with the read barrier (the leader's
read index, manager/state/raft/readindex.py) and without it (the stale reads of before).

    python3 tests/bench/bench_reads.py [--calls 300]

Prints median and 99th percentile per case and writes a JSON result (its path is printed).
"""
import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from coveyd.settings import Settings  # noqa: E402
from proto import control_pb2  # noqa: E402
from tests.integration.simkit import Swarm  # noqa: E402


async def latencies(swarm: Swarm, hostname: str, calls: int) -> list[float]:
    await swarm.use(hostname)
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        await swarm.control.ListNodes(control_pb2.ListNodesRequest())
        out.append(time.perf_counter() - started)
    return out


def figures(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2)}


async def measure(calls: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        swarm = Swarm(Path(tmp), settings=Settings(join_timeout=10.0, manager_ready_timeout=15.0))
        async with swarm:
            await swarm.init("m1")
            await swarm.join("m2", "m3", manager=True)
            leader = swarm.leader()
            follower = next(s for s in swarm.nodes.values() if s is not leader)
            results = {}
            for label in ("linearizable", "local (stale) reads"):
                for role, sim in (("leader", leader), ("follower", follower)):
                    await latencies(swarm, sim.hostname, 20)   # warm the channel
                    results[f"{label}, through the {role}"] = figures(await latencies(swarm, sim.hostname, calls))
                for sim in (leader, follower):   # the reads of before: no barrier
                    sim.node.manager.store.read_barrier = _no_barrier
            return results


async def _no_barrier() -> None:
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--out", default="/tmp/covey-bench/reads.json")
    args = parser.parse_args()
    results = asyncio.run(measure(args.calls))
    for case, figs in results.items():
        print(f"ListNodes, {case}: median {figs['median_ms']} ms, p99 {figs['p99_ms']} ms")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
