#!/usr/bin/env python3
"""Recovery from a lost host: a real in-process swarm (a manager with Raft, dispatcher,
orchestrator and scheduler; --nodes worker nodes with the simulated executor, each over its
own mTLS session). A service of --replicas tasks runs spread over the workers; the agent of
the worker holding the most tasks is stopped abruptly (its session just ends; no goodbye,
its containers keep running as on a partitioned host). Measured: from that moment to the node
marked Down (detection), and to every one of its tasks' slots RUNNING on another node (as
reported by those nodes: replacement). Then the host returns, the swarm settles, and the next
run begins.

Two configurations, each in a swarm of its own, with the product's settings (no test
shortcuts): its DEFAULT heartbeat period, whose goal is every task running elsewhere within
GOAL_S; then an explicit --heartbeat (as `swarm init --dispatcher-heartbeat`; 0: skip it).
Beside each figure, the heartbeat period in force: a node is Down after 4 periods without
a heartbeat (docs/design.md, "Control plane"), so detection cannot beat about 3.

    python3 tests/bench/bench_host_loss.py [--runs 5] [--heartbeat 1] [--nodes 10]
                                           [--replicas 50] [--out PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from coveyd.settings import Settings  # noqa: E402
from proto import objects_pb2 as pb  # noqa: E402
from tests.integration.simkit import Swarm  # noqa: E402
from tests.support.builders import service_spec  # noqa: E402

RUN_TIMEOUT = 120.0
GOAL_S = 5.0  # a lost node's tasks RUNNING elsewhere, with the default settings


async def recovered(swarm: Swarm, lost_slots: set[int], lost_node: str):
    """Every lost slot has a RUNNING task on another node."""
    running = {t.slot for t in await swarm.live("web")
               if t.status.state == pb.RUNNING and t.node_id != lost_node}
    return lost_slots <= running


async def one_run(swarm: Swarm, replicas: int, i: int) -> dict:
    tasks = await swarm.until(lambda: swarm.converged("web", replicas), RUN_TIMEOUT, "the service converged")
    per_host = swarm.by_host(tasks)
    victim = max(sorted(per_host), key=lambda h: per_host[h])
    victim_id = swarm.nodes[victim].id
    lost = {t.slot for t in tasks if t.node_id == victim_id}
    start = time.perf_counter()
    await swarm.partition(victim)                          # the agent stops, abruptly
    down = await swarm.until(lambda: _down(swarm, victim), RUN_TIMEOUT, f"{victim} Down")
    down_s = time.perf_counter() - start
    await swarm.until(lambda: recovered(swarm, lost, victim_id), RUN_TIMEOUT, "its tasks running elsewhere")
    total_s = time.perf_counter() - start
    assert down.status.message == "heartbeat failure"
    swarm.heal(victim)                                      # back for the next run
    await swarm.until_ready(victim)
    await swarm.until(lambda: swarm.converged("web", replicas), RUN_TIMEOUT, "settled after the return")
    print(f"  run {i + 1}: {victim} held {len(lost)} tasks; Down after {down_s:.2f}s, all running "
          f"elsewhere after {total_s:.2f}s", flush=True)
    return {"host": victim, "tasks_lost": len(lost), "down_s": down_s, "recovered_s": total_s}


async def _down(swarm: Swarm, hostname: str):
    node = await swarm.node(hostname)
    return node if node.status.state == pb.NodeStatus.DOWN else None


async def one_config(args, heartbeat: float | None) -> dict:
    """--runs runs in a new swarm with the product's settings; `heartbeat` None: its default."""
    with tempfile.TemporaryDirectory(prefix="host-loss-", dir=args.work_dir) as tmp:
        async with Swarm(Path(tmp), heartbeat=heartbeat, settings=Settings()) as swarm:
            await swarm.init("m1")
            await swarm.update_node("m1", availability=pb.DRAIN)
            await swarm.join(*[f"w{i}" for i in range(1, args.nodes + 1)])
            await swarm.create(service_spec("web", replicas=args.replicas, restart={"condition": "ANY", "delay": 0}))
            period = swarm.heartbeat_period()
            print(f"{'default settings' if heartbeat is None else f'--heartbeat {heartbeat:g}s'}: 1 manager, "
                  f"{args.nodes} workers (simulated executor, mTLS sessions), {args.replicas} replicas, "
                  f"heartbeat period {period:g}s (Down after 4 periods without one)", flush=True)
            runs = [await one_run(swarm, args.replicas, i) for i in range(args.runs)]
    down, recovered = [r["down_s"] for r in runs], [r["recovered_s"] for r in runs]
    return {"heartbeat_s": period, "heartbeat_flag_s": heartbeat, "nodes": args.nodes, "replicas": args.replicas,
            "runs": runs, "recovered_median_s": statistics.median(recovered), "recovered_max_s": max(recovered),
            "down_median_s": statistics.median(down), "down_max_s": max(down),
            "ratio_to_heartbeat": statistics.median(recovered) / period}


def report(name: str, r: dict) -> None:
    goal = (f"   goal <= {GOAL_S:g}s: {'met' if r['recovered_max_s'] <= GOAL_S else 'MISSED'}"
            if name == "default" else "")
    print(f"{name}: host lost -> all its tasks running elsewhere: median {r['recovered_median_s']:.2f}s, "
          f"max {r['recovered_max_s']:.2f}s over {len(r['runs'])} runs{goal}")
    print(f"{' ' * len(name)}  node marked Down (detection): median {r['down_median_s']:.2f}s, "
          f"max {r['down_max_s']:.2f}s; heartbeat period {r['heartbeat_s']:g}s, "
          f"ratio {r['ratio_to_heartbeat']:.2f}x (detection alone needs 3-4 periods)")


async def main_async(args) -> dict:
    result: dict = {"goal_s": GOAL_S, "default": await one_config(args, None)}
    if args.heartbeat:
        result[f"heartbeat_{args.heartbeat:g}s"] = await one_config(args, args.heartbeat)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--heartbeat", type=float, default=1.0,
                        help="seconds, for the second configuration (0: only the default one)")
    parser.add_argument("--nodes", type=int, default=10, help="workers")
    parser.add_argument("--replicas", type=int, default=50)
    parser.add_argument("--work-dir", default="/tmp/covey-bench")
    parser.add_argument("--out", default="/tmp/covey-bench/host_loss.json")
    args = parser.parse_args()
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    result = asyncio.run(asyncio.wait_for(main_async(args), 2 * args.runs * 3 * RUN_TIMEOUT))
    for name, r in result.items():
        if name != "goal_s":
            report(name, r)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"result: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
