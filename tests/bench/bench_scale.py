#!/usr/bin/env python3
"""Scheduling throughput of a real swarm: real managers (1 or 3, Raft, dispatcher,
orchestrator, scheduler) in this process, and --nodes simulated nodes: each a real
coveyd.node.Node that joins with a token, holds its own mTLS session with the leader,
heartbeats, follows its assignments and reports status, with the simulated executor
(worker/executor/simulated.py) instead of runc.

The nodes run in --agent-procs separate processes (default 2, all on this machine): with
1,000 agents in the managers' own process the managers would share one core with them and
the figure would measure the agents; in one process of their own, 100,000 tasks starting
at once kept that process's event loop seconds late (its heartbeats with it). Managers are
drained: every task goes to a simulated node.

For each --tasks count N, one service of N replicas is created through the control API;
printed: tasks/s from the create call to every task ASSIGNED and to every task RUNNING
(as reported by the nodes), beside the pure scheduler call on the same nodes measured in the
same run (manager/scheduler/placement.py schedule(), as tests/bench/bench_scheduler.py times it), and
the ratio. A count that does not finish within --case-timeout is reported as how far it got.

    python3 tests/bench/bench_scale.py [--nodes 1000] [--managers 1] [--tasks 10000]
                                       [--tasks 100000] [--agent-procs 2] [--heartbeat 5]
                                       [--case-timeout 300] [--out PATH]

Default: 1,000 nodes, 10,000 tasks. 100,000 tasks is a flag (--tasks 10000 --tasks 100000):
it takes far longer than the default run. Every phase is bounded (joining 600 s, --settle,
--case-timeout per count); what did not finish is printed as how far it got, with how late
the managers' event loop ran. Always printed: how many times a node was marked Down meanwhile.
No node is lost here, so each one is a false detection (heartbeats the leader handled too late:
the node's tasks are then replaced elsewhere). The heartbeat period is the product's default
unless --heartbeat says otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchpaths import REPO  # first: puts the project on sys.path

from coveyd.node import Node  # noqa: E402
from coveyd.settings import Settings  # noqa: E402
from manager.scheduler import placement  # noqa: E402
from manager.state.store import RaftTimings  # noqa: E402
from proto import control_pb2, local_pb2
from proto import objects_pb2 as pb
from tests.support.builders import service_spec  # noqa: E402
from tests.support.looplag import LoopLag  # noqa: E402
from tests.support.poll import until  # noqa: E402
from worker.agent import AgentSettings  # noqa: E402
from worker.executor.simulated import SimulatedExecutor  # noqa: E402

SETUP_TIMEOUT = 600.0
TEARDOWN_TIMEOUT = 60.0


def settings() -> Settings:
    """Docker's periods, with RPC timeouts that allow for 1,000 agents on one core."""
    return Settings(join_timeout=120.0, manager_ready_timeout=60.0, shutdown_timeout=0.0,
                    raft=RaftTimings(write_timeout=120.0),
                    agent=AgentSettings(connect_timeout=60.0, rpc_timeout=60.0, backoff_initial=0.5,
                                        backoff_max=5.0, status_batch=0.1))


# ---------------------------------------------------------------- the simulated nodes (child process)

async def agent_host(args) -> None:
    """Join `count` nodes, say so on stdout, run until stdin closes."""
    s = settings()
    base = Path(args.dir)
    nodes: list[Node] = []
    limit = asyncio.Semaphore(32)
    joined = 0

    async def one(i: int) -> None:
        nonlocal joined
        node = Node(base / f"n{i:05d}", f"sim-{i:05d}", s, SimulatedExecutor())
        nodes.append(node)
        async with limit:
            for attempt in range(5):
                try:
                    await node.join(local_pb2.SwarmJoinRequest(token=args.token, remote_addr=args.manager,
                                                        advertise_addr="127.0.0.1"))
                    break
                except Exception as exc:
                    if attempt == 4:
                        raise
                    print(f"  join of sim-{i:05d} failed ({exc}); again", flush=True)
                    node.state.erase()
        joined += 1

    async def watch(lag: LoopLag) -> None:
        while True:
            await asyncio.sleep(15)
            print(f"  agents {args.first}-{args.first + args.count - 1}: {joined} joined; their event loop "
                  f"late by up to {lag.take():.2f}s", flush=True)

    watcher = asyncio.create_task(watch(LoopLag()))
    await asyncio.gather(*(one(i) for i in range(args.first, args.first + args.count)))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)   # until the parent goes
    watcher.cancel()
    os._exit(0)   # the parent removes the files; no goodbye to the managers


# ---------------------------------------------------------------- the managers (this process)

class Tracker:
    """Follows task events in the leader's store: when every slot of a service has had a task
    ASSIGNED (or later), and when every slot has had a task RUNNING. Slots, not tasks: a task
    replaced meanwhile (its node marked Down) counts once for its slot."""

    def __init__(self, store, service_name: str, count: int, start: float):
        self.store, self.service_name, self.count, self.start = store, service_name, count, start
        self.assigned: set[int] = set()
        self.running: set[int] = set()
        self.tasks: set[str] = set()  # every task of the service seen (more than count: replacements)
        self.assigned_at = self.running_at = None
        self.marked_down = 0          # nodes marked Down meanwhile (their heartbeats came too late)
        self._node_states: dict[str, int] = {}
        self.done = asyncio.Event()
        self._queue = store.subscribe()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            event = await self._queue.get()
            if isinstance(event.obj, pb.Node):  # count transitions to Down, not every write while Down
                now = event.obj.status.state
                if now == pb.NodeStatus.DOWN and self._node_states.get(event.id) != now:
                    self.marked_down += 1
                self._node_states[event.id] = now
            if not isinstance(event.obj, pb.Task) or event.obj.service_name != self.service_name:
                continue
            self.tasks.add(event.id)
            state = event.obj.status.state
            if state >= pb.ASSIGNED:
                self.assigned.add(event.obj.slot)
                if self.assigned_at is None and len(self.assigned) == self.count:
                    self.assigned_at = time.perf_counter() - self.start
            if state == pb.RUNNING:
                self.running.add(event.obj.slot)
                if len(self.running) == self.count:
                    self.running_at = time.perf_counter() - self.start
                    self.done.set()

    def close(self) -> None:
        self._task.cancel()
        self.store.unsubscribe(self._queue)


def leader_of(managers: list[Node]) -> Node:
    return next(m for m in managers if m.manager is not None and m.manager.store.is_leader())


def pure_scheduler(store, spec, count: int) -> float:
    """Seconds for manager/scheduler/placement.py alone to place `count` tasks of the spec on the swarm's
    nodes as they are (one group, one pass: what the leader's scheduler does for them)."""
    demand = placement.Demand.from_service(pb.Service(id="baseline", spec=spec))
    nodes = store.nodes.list()
    start = time.perf_counter()
    placed = placement.schedule(demand, count, placement.NodeSet(nodes), placement.Load())
    took = time.perf_counter() - start
    assert len(placed.node_ids) == count, placed
    return took


async def run_case(control, managers, count: int, timeout: float) -> dict:
    store = leader_of(managers).manager.store
    name = f"bench-{count}"
    spec = service_spec(name, "registry.local/bench:v1", replicas=count)
    baseline_s = pure_scheduler(store, spec, count)
    start = time.perf_counter()
    tracker = Tracker(store, name, count, start)
    await control.CreateService(control_pb2.CreateServiceRequest(spec=spec))
    try:
        await asyncio.wait_for(tracker.done.wait(), timeout)
    except TimeoutError:
        pass
    tracker.close()
    elapsed = time.perf_counter() - start
    result = {"tasks": count, "baseline_scheduler_s": round(baseline_s, 3),
              "baseline_scheduler_tasks_per_s": round(count / baseline_s),
              "assigned_s": tracker.assigned_at, "running_s": tracker.running_at,
              "assigned_count": len(tracker.assigned), "running_count": len(tracker.running),
              "tasks_created": len(tracker.tasks),
              "elapsed_s": round(elapsed, 1), "finished": tracker.running_at is not None}
    if tracker.assigned_at:
        result["assigned_tasks_per_s"] = round(count / tracker.assigned_at)
        result["ratio_assigned_to_scheduler"] = round(baseline_s / tracker.assigned_at, 4)
    if tracker.running_at:
        result["running_tasks_per_s"] = round(count / tracker.running_at)
        result["ratio_running_to_scheduler"] = round(baseline_s / tracker.running_at, 4)
    result["nodes_marked_down"] = tracker.marked_down
    result["nodes_down_at_end"] = sum(1 for n in store.nodes.list() if n.status.state == pb.NodeStatus.DOWN)
    return result


async def remove(control, name: str) -> None:
    """RemoveService; again when it conflicts with task updates still coming in."""
    import grpc
    for _ in range(50):
        try:
            return await control.RemoveService(control_pb2.RemoveServiceRequest(service=name))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ABORTED:
                raise
            await asyncio.sleep(0.2)


def report(r: dict) -> None:
    n = r["tasks"]
    base = f"pure scheduler {r['baseline_scheduler_tasks_per_s']:,} tasks/s ({r['baseline_scheduler_s']:.3f}s)"
    if r["assigned_s"]:
        a = (f"all ASSIGNED in {r['assigned_s']:.1f}s = {r['assigned_tasks_per_s']:,} tasks/s "
             f"(x{r['ratio_assigned_to_scheduler']:.3f} of the pure scheduler)")
    else:
        a = f"ASSIGNED: only {r['assigned_count']:,} of {n:,} slots after {r['elapsed_s']}s"
    if r["running_s"]:
        b = (f"all RUNNING in {r['running_s']:.1f}s = {r['running_tasks_per_s']:,} tasks/s "
             f"(x{r['ratio_running_to_scheduler']:.4f})")
    else:
        b = f"RUNNING: only {r['running_count']:,} of {n:,} slots after {r['elapsed_s']}s (gave up)"
    print(f"{n:>7,} tasks: {a}; {b}; {base}", flush=True)
    print(f"         the managers' event loop was late by up to {r['loop_lag_max_s']:.2f}s")
    print(f"         nodes falsely marked Down: {r['nodes_marked_down']} (no node was lost: each is a node "
          f"whose heartbeats came too late), {r['nodes_down_at_end']} Down at the end; "
          f"{r['tasks_created']:,} tasks made for the {n:,} slots")


async def main_async(args) -> dict:
    from tests.integration.simkit import Swarm
    work = Path(tempfile.mkdtemp(prefix="scale-", dir=args.work_dir))
    swarm = Swarm(work / "managers", heartbeat=args.heartbeat, settings=settings())
    hosts: list[subprocess.Popen] = []
    lag = None
    result: dict = {"nodes": args.nodes, "managers": args.managers, "agent_procs": args.agent_procs,
                    "heartbeat_flag_s": args.heartbeat, "python": sys.version.split()[0], "cpus": os.cpu_count()}
    try:
        t = time.perf_counter()
        await swarm.init("m1")
        if args.managers > 1:
            await swarm.join(*[f"m{i}" for i in range(2, args.managers + 1)], manager=True)
        for name in list(swarm.nodes):
            await swarm.update_node(name, availability=pb.DRAIN)
        token = (await swarm.control.JoinToken(control_pb2.JoinTokenRequest(role=pb.WORKER))).token
        managers = [sim.node for sim in swarm.nodes.values()]
        per = -(-args.nodes // args.agent_procs)
        for i in range(args.agent_procs):
            first, count = i * per, min(per, args.nodes - i * per)
            hosts.append(subprocess.Popen(
                [sys.executable, __file__, "--agent-host", "--first", str(first), "--count", str(count),
                 "--manager", swarm.nodes["m1"].node.membership.advertise_addr, "--token", token,
                 "--dir", str(work / f"agents{i}")],
                stdin=subprocess.PIPE, text=True, cwd=REPO))
        store = leader_of(managers).manager.store
        result["heartbeat_s"] = swarm.heartbeat_period()

        shown = [time.monotonic()]
        lag = LoopLag()
        result["setup_loop_lag_max_s"] = 0.0

        def nodes(state=None):
            return sum(1 for n in store.nodes.list() if n.role == pb.WORKER and
                       (state is None or n.status.state == state))

        def progress():
            if time.monotonic() - shown[0] > 15:
                worst = lag.take()
                result["setup_loop_lag_max_s"] = max(result["setup_loop_lag_max_s"], round(worst, 2))
                print(f"  {nodes()} of {args.nodes} nodes joined, {nodes(pb.NodeStatus.READY)} Ready after "
                      f"{time.perf_counter() - t:.0f}s (managers' event loop late by up to {worst:.2f}s)", flush=True)
                shown[0] = time.monotonic()
        await until(lambda: progress() or nodes() >= args.nodes, SETUP_TIMEOUT, f"{args.nodes} nodes joined", 0.5)
        result["joined_s"] = round(time.perf_counter() - t, 1)
        try:    # then every one Ready at the same time, or go on after --settle and say how many are
            await until(lambda: progress() or nodes(pb.NodeStatus.READY) >= args.nodes, args.settle, "", 0.5)
        except TimeoutError:
            pass
        result["ready_at_start"] = nodes(pb.NodeStatus.READY)
        result["setup_s"] = round(time.perf_counter() - t, 1)
        print(f"{args.nodes} simulated nodes joined over mTLS in {result['joined_s']}s, "
              f"{result['ready_at_start']} Ready at {result['setup_s']}s; "
              f"{args.managers} manager(s), heartbeat {result['heartbeat_s']:g}s "
              f"({'--heartbeat' if args.heartbeat else 'the default'}), {os.cpu_count()} CPUs, "
              f"Python {result['python']}", flush=True)
        result["cases"] = []
        for i, count in enumerate(args.tasks):
            lag.take()
            r = await run_case(swarm.control, managers, count, args.case_timeout)
            r["loop_lag_max_s"] = round(lag.take(), 2)
            report(r)
            result["cases"].append(r)
            write_result(result, args.out)          # now: the managers may take long to wind down
            if i + 1 < len(args.tasks):
                await remove(swarm.control, f"bench-{count}")
    finally:
        if lag is not None:
            lag.close()
        for host in hosts:
            host.kill()
            host.wait()
        try:   # a leader with a backlog of Raft entries to apply can take minutes to stop
            await asyncio.wait_for(asyncio.shield(swarm.close()), TEARDOWN_TIMEOUT)
        except TimeoutError:
            print(f"the managers did not stop within {TEARDOWN_TIMEOUT:g}s (still applying their "
                  "backlog): exiting without them", flush=True)
            shutil.rmtree(work, ignore_errors=True)
            os._exit(0)
        shutil.rmtree(work, ignore_errors=True)
    return result


def write_result(result: dict, path: str) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"result: {out}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--managers", type=int, default=1, choices=(1, 3))
    parser.add_argument("--tasks", type=int, action="append", help="tasks of one service (repeatable); default 10000")
    parser.add_argument("--agent-procs", type=int, default=2, help="processes the simulated nodes run in")
    parser.add_argument("--heartbeat", type=float, help="seconds (default: the product's default period)")
    parser.add_argument("--case-timeout", type=float, default=300.0, help="seconds per task count")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds to wait, once every node joined, for all of them to be Ready at once")
    parser.add_argument("--work-dir", default="/tmp/covey-bench")
    parser.add_argument("--out", default="/tmp/covey-bench/scale.json")
    # the child processes that hold the simulated nodes
    parser.add_argument("--agent-host", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--manager", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent_host:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        asyncio.run(agent_host(args))
        return 0
    args.tasks = [n for n in args.tasks or [10_000] if n > 0]   # --tasks 0: only join the nodes
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
