"""Scheduler placement throughput: manager/scheduler/placement.py beside a naive one-task-at-a-time
reference, on 1,000 synthetic nodes (some down, drained or paused, labels, two platforms,
other services already running).

Cases: 10,000 and 100,000 replicas of one service, plain and with constraints plus a
placement preference, and 100,000 tasks as 1,000 services of 100. The naive placer checks
every filter on every node for every task (O(tasks x nodes x filters)); it is timed on the
first --naive-tasks tasks of each case (its cost per task does not fall as tasks land), and
its placements must equal the scheduler's on that prefix.

    python3 tests/bench/bench_scheduler.py [--nodes 1000] [--naive-tasks 1000] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import string
import sys
import time
from pathlib import Path

import benchpaths  # noqa: F401  (first: puts the project on sys.path)

from manager.scheduler.placement import Demand, Load, NodeSet, schedule
from proto import objects_pb2 as pb

CPU, MIB, GIB = 10**9, 1 << 20, 1 << 30
PLAIN = {"nano_cpus": CPU // 20, "memory_bytes": 128 * MIB}
PICKY = {**PLAIN, "constraints": ("node.role==worker", "node.labels.tier!=legacy", "node.platform.arch==amd64"),
         "preferences": ("spread=node.labels.dc",)}


def synthetic_nodes(count: int, seed: int = 7) -> list[pb.Node]:
    rng = random.Random(seed)
    nodes = []
    for i in range(count):
        n = pb.Node(id="".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(25)),
                    role=pb.MANAGER if i < 3 else pb.WORKER)
        n.status.state = pb.NodeStatus.DOWN if rng.random() < 0.02 else pb.NodeStatus.READY
        n.spec.availability = rng.choices([pb.ACTIVE, pb.DRAIN, pb.PAUSE], [98, 1, 1])[0]
        if rng.random() < 0.95:
            n.spec.labels["dc"] = f"dc{i % 4}"
        if rng.random() < 0.1:
            n.spec.labels["tier"] = "legacy"
        d = n.description
        d.hostname = f"node-{i:04d}"
        d.platform.os, d.platform.architecture = "linux", "arm64" if rng.random() < 0.05 else "x86_64"
        big = rng.random() < 0.7
        d.resources.nano_cpus, d.resources.memory_bytes = (16 * CPU, 64 * GIB) if big else (8 * CPU, 32 * GIB)
        nodes.append(n)
    return nodes


def base_load(nodes: list[pb.Node]) -> Load:
    """Five tasks of other services on every node."""
    load = Load()
    for i, n in enumerate(nodes):
        for k in range(5):
            load.add(n.id, Demand(f"other-{(i + k) % 50}", nano_cpus=CPU // 2, memory_bytes=GIB))
    return load


def cases() -> list[tuple[str, list[tuple[Demand, int]]]]:
    return [
        ("10k replicas", [(Demand("web", **PLAIN), 10_000)]),
        ("10k replicas, constraints + spread=dc", [(Demand("web", **PICKY), 10_000)]),
        ("100k replicas", [(Demand("web", **PLAIN), 100_000)]),
        ("100k replicas, constraints + spread=dc", [(Demand("web", **PICKY), 100_000)]),
        ("100k tasks as 1000 services x 100", [(Demand(f"svc-{i}", **PLAIN), 100) for i in range(1000)]),
    ]


# ---------------------------------------------------------------- the naive reference

_EXPR = re.compile(r"^\s*([\w.-]+)\s*(==|!=)\s*(.+?)\s*$")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def naive_attr(node: pb.Node, key: str) -> str:
    if key.startswith("node.labels."):
        return node.spec.labels.get(key[len("node.labels."):], "")
    return {"node.id": node.id, "node.hostname": node.description.hostname,
            "node.role": pb.NodeRole.Name(node.role).lower(), "node.platform.os": node.description.platform.os,
            "node.platform.arch": _ARCH.get(node.description.platform.architecture,
                                            node.description.platform.architecture)}[key]


def naive_static(node: pb.Node, demand: Demand) -> bool:
    if node.status.state != pb.NodeStatus.READY or node.spec.availability != pb.ACTIVE:
        return False
    for expr in demand.constraints:
        key, op, value = _EXPR.match(expr).groups()
        if (naive_attr(node, key).lower() == value.lower()) != (op == "=="):
            return False
    return True


def naive_fits(node: pb.Node, held: dict, demand: Demand) -> bool:
    res = node.description.resources
    return (res.nano_cpus - held["cpu"] >= demand.nano_cpus and res.memory_bytes - held["mem"] >= demand.memory_bytes
            and not held["ports"] & set(demand.host_ports)
            and (not demand.max_replicas or held["svc"].get(demand.service_id, 0) < demand.max_replicas))


def naive_place(demand: Demand, count: int, nodes: list[pb.Node], state: dict) -> list[str]:
    """One task at a time: every filter on every node, then the preference groups, then the node."""
    chosen = []
    for _ in range(count):
        eligible = [n for n in nodes if naive_static(n, demand)]
        open_ = [n for n in eligible if naive_fits(n, state[n.id], demand)]
        if not open_:
            break
        for pref in demand.preferences:
            label = pref.split("=", 1)[1][len("node.labels."):]

            def key(n, label=label):
                return (0, n.spec.labels[label]) if label in n.spec.labels else (1, "")

            tasks = {}
            for n in eligible:
                tasks[key(n)] = tasks.get(key(n), 0) + state[n.id]["svc"].get(demand.service_id, 0)
            best = min({key(n) for n in open_}, key=lambda k: (tasks[k], k))
            eligible = [n for n in eligible if key(n) == best]
            open_ = [n for n in open_ if key(n) == best]
        pick = min(open_, key=lambda n: (state[n.id]["svc"].get(demand.service_id, 0), state[n.id]["tasks"], n.id))
        held = state[pick.id]
        held["cpu"] += demand.nano_cpus
        held["mem"] += demand.memory_bytes
        held["ports"] |= set(demand.host_ports)
        held["svc"][demand.service_id] = held["svc"].get(demand.service_id, 0) + 1
        held["tasks"] += 1
        chosen.append(pick.id)
    return chosen


def naive_state(nodes: list[pb.Node], load: Load) -> dict:
    state = {}
    for n in nodes:
        nl = load.nodes.get(n.id)
        state[n.id] = {"cpu": nl.nano_cpus, "mem": nl.memory_bytes, "ports": set(nl.host_ports),
                       "svc": dict(nl.services), "tasks": nl.tasks}
    return state


# ---------------------------------------------------------------- runs

def prefix(groups: list[tuple[Demand, int]], limit: int) -> list[tuple[Demand, int]]:
    out = []
    for demand, count in groups:
        if limit <= 0:
            break
        out.append((demand, min(count, limit)))
        limit -= count
    return out


def run_fast(groups, nodes) -> tuple[float, list[str], int]:
    load = base_load(nodes)
    start = time.perf_counter()
    node_set = NodeSet(nodes)  # once per pass, as the leader's loop does
    placed, unplaced = [], 0
    for demand, count in groups:
        p = schedule(demand, count, node_set, load)
        placed.extend(p.node_ids)
        unplaced += p.unplaced
    return time.perf_counter() - start, placed, unplaced


def run_naive(groups, nodes) -> tuple[float, list[str]]:
    state = naive_state(nodes, base_load(nodes))
    start = time.perf_counter()
    placed = []
    for demand, count in groups:
        placed.extend(naive_place(demand, count, nodes, state))
    return time.perf_counter() - start, placed


def run_case(name, groups, nodes, naive_tasks) -> dict:
    tasks = sum(count for _, count in groups)
    fast_s, placed, unplaced = run_fast(groups, nodes)
    sample = prefix(groups, naive_tasks or tasks)
    sample_tasks = sum(count for _, count in sample)
    # the scheduler on the same prefix, from the same load, must choose exactly the same nodes
    _, fast_prefix, _ = run_fast(sample, nodes)
    naive_s, naive_placed = run_naive(sample, nodes)
    fast_tps, naive_tps = len(placed) / fast_s, len(naive_placed) / naive_s
    result = {"case": name, "tasks": tasks, "placed": len(placed), "unplaced": unplaced,
              "seconds": round(fast_s, 3), "tasks_per_s": round(fast_tps),
              "naive_tasks_timed": sample_tasks, "naive_seconds": round(naive_s, 3),
              "naive_tasks_per_s": round(naive_tps, 1), "speedup": round(fast_tps / naive_tps, 1),
              "naive_matches": naive_placed == fast_prefix}
    print(f"{name:42} {len(placed):>7} placed in {fast_s:6.2f}s = {fast_tps:>9,.0f} tasks/s | naive "
          f"({sample_tasks} tasks) {naive_tps:>7,.1f} tasks/s | x{fast_tps / naive_tps:,.0f}"
          f"{'' if result['naive_matches'] else ' | NAIVE DIFFERS'}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--naive-tasks", type=int, default=1000, help="tasks the naive placer is timed on; 0: all")
    parser.add_argument("--out", default="/tmp/covey-bench/scheduler.json")
    args = parser.parse_args()
    nodes = synthetic_nodes(args.nodes)
    print(f"{len(nodes)} nodes, Python {sys.version.split()[0]}")
    results = [run_case(name, groups, nodes, args.naive_tasks) for name, groups in cases()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"nodes": len(nodes), "python": sys.version.split()[0], "results": results}, indent=2))
    print(f"result: {out}")
    if not all(r["naive_matches"] for r in results):
        sys.exit("the naive reference placed tasks differently")


if __name__ == "__main__":
    main()
