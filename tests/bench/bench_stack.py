#!/usr/bin/env python3
"""`stack deploy` of a 20-service stack, on an in-process swarm (a real manager with Raft,
dispatcher, orchestrator, scheduler and allocator; --workers real agents with the simulated
executor): the time from the DeployStack call to every task RUNNING, then the same files
deployed again (which must change nothing: no task is replaced), and, for comparison in the
same run, the same 20 services created one by one with CreateService (as Docker's client
deploys a stack) to every task RUNNING. Printed, and written as JSON to --out.

    python3 tests/bench/bench_stack.py [--services 20] [--replicas 2] [--workers 3] [--out PATH]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from covey.compose import load_stack
from proto import control_pb2
from proto import objects_pb2 as pb
from tests.integration.simkit import Swarm
from tests.support.poll import until

CASE_TIMEOUT = 120.0   # s: one deploy to every task RUNNING


def compose(services: int, replicas: int, image: str) -> str:
    """A stack of `services` services on the default network and one more network."""
    lines = ["services:"]
    for i in range(services):
        lines += [f"  s{i:02d}:", f"    image: {image}", f"    deploy: {{replicas: {replicas}}}",
                  "    networks: [default, back]"]
    return "\n".join(lines + ["networks:", "  back: {}", ""])


def stack(services: int, replicas: int, name: str, image: str = "lab/app:1"):
    spec, _ = load_stack(["-"], stack_name=name, environ={},
                         stdin=io.BytesIO(compose(services, replicas, image).encode()))
    return spec


async def all_running(swarm: Swarm, prefix: str, count: int) -> list[pb.Task] | None:
    tasks = [t for t in await swarm.tasks() if t.service_name.startswith(prefix)]
    running = [t for t in tasks if t.desired_state == pb.RUNNING and t.status.state == pb.RUNNING]
    return running if len(running) == count == len(tasks) else None


async def timed(call, swarm: Swarm, prefix: str, count: int) -> tuple[float, float, list[pb.Task]]:
    """(seconds the call took, seconds to every task RUNNING, the tasks)."""
    started = time.monotonic()
    await call()
    answered = time.monotonic() - started
    tasks = await until(lambda: all_running(swarm, prefix, count), CASE_TIMEOUT, f"{prefix} all RUNNING")
    return answered, time.monotonic() - started, tasks


async def bench(services: int, replicas: int, workers: int) -> dict:
    count = services * replicas
    with tempfile.TemporaryDirectory(prefix="covey-bench-stack-") as tmp:
        async with Swarm(Path(tmp)) as swarm:
            await swarm.init("m1")
            await swarm.join(*(f"w{i}" for i in range(1, workers + 1)))
            spec = stack(services, replicas, "shop")

            def deploy():
                return swarm.control.DeployStack(control_pb2.DeployStackRequest(spec=spec))
            first_call, first, tasks = await timed(deploy, swarm, "shop_", count)
            again_call, again, tasks_again = await timed(deploy, swarm, "shop_", count)
            replaced = len({t.id for t in tasks} ^ {t.id for t in tasks_again})

            one_by_one = stack(services, replicas, "solo")

            async def create_each():
                for service in one_by_one.services:
                    service.task.ClearField("networks")   # the stack's networks are not there
                    await swarm.control.CreateService(control_pb2.CreateServiceRequest(spec=service))
            _, solo, _ = await timed(create_each, swarm, "solo_", count)
    return {"services": services, "replicas": replicas, "workers": workers,
            "deploy_call_s": round(first_call, 3), "deploy_to_running_s": round(first, 3),
            "unchanged_call_s": round(again_call, 3), "unchanged_tasks_replaced": replaced,
            "create_one_by_one_to_running_s": round(solo, 3),
            "deploy_vs_one_by_one": round(first / solo, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--out", default="/tmp/covey-bench/stack.json")
    args = parser.parse_args()
    result = asyncio.run(bench(args.services, args.replicas, args.workers))
    print(f"stack deploy of {args.services} services x {args.replicas} replicas on {args.workers} workers: "
          f"call {result['deploy_call_s']} s, every task RUNNING after {result['deploy_to_running_s']} s")
    print(f"same files again: call {result['unchanged_call_s']} s, "
          f"{result['unchanged_tasks_replaced']} task(s) replaced")
    print(f"the same services created one by one: every task RUNNING after "
          f"{result['create_one_by_one_to_running_s']} s (stack/one-by-one = {result['deploy_vs_one_by_one']})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
