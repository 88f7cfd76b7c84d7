"""Task start with one overlay network attached vs none: what the endpoint costs. A real 3-host
lab swarm (coveyd with --debug, real runc); --tasks one-replica services of each kind, created
one at a time in turn on host2 and removed before the next (so that the node stays the same).
Per task, from the node's own status reports in its log: ACCEPTED -> RUNNING (what the node
spends: prepare, create, start), PREPARING -> READY (the prepare step: namespace, interfaces,
DNS, VIPs, and the container's creation) and READY -> RUNNING; and, from the store, the task
created -> RUNNING. p50 of each, the network's cost as the difference. Two networks: on
`benchnet` one long-lived task keeps the network's sandbox on host2, so that what is measured
is a task's own endpoint (the goal: <= +30 ms at p50); on `coldnet` every task is the node's
only one, so that it also pays for the sandbox (namespace, bridge, VXLAN), made and removed
each time.

    python3 tests/bench/bench_task_start.py [--tasks 20] [--out PATH]
"""
from __future__ import annotations

import argparse
import re

import benchpaths  # noqa: F401  (first: puts the project on sys.path)
from swarmbench import pct, write_result  # noqa: E402

from tests.e2e.swarmtools import REGISTRY, runc_running, swarm_with_registry  # noqa: E402
from tests.e2e.test_overlay import converge, covey  # noqa: E402
from tests.support.poll import wait_until  # noqa: E402

BUSYBOX = f"{REGISTRY}/covey/busybox:1"
NODE = "host2"
WARMUP = 2                  # tasks of each kind not counted: the image pull, first sandbox
GONE_TIMEOUT = 30.0         # s: a removed service's container is gone from the node
REPORT = re.compile(r"task (\S+) ([A-Z]+) at (\d+) ns")
KINDS = {"none": [], "network": ["--network", "benchnet"], "network_first_on_node": ["--network", "coldnet"]}
SPANS = {"accepted_to_running": ("ACCEPTED", "RUNNING"), "preparing_to_ready": ("PREPARING", "READY"),
         "ready_to_running": ("READY", "RUNNING")}


def reports(log_text: str) -> dict[str, dict[str, int]]:
    """task id -> state -> ns, from the node's debug log (the first report of each state)."""
    seen: dict[str, dict[str, int]] = {}
    for task_id, state, ns in REPORT.findall(log_text):
        seen.setdefault(task_id, {}).setdefault(state, int(ns))
    return seen


def start_one(lab, name: str, extra: list[str], remove: bool = True) -> dict:
    """Create a one-task service on NODE and wait for it RUNNING; with `remove`, remove it and
    wait until its container is gone. Its task as stored."""
    covey(lab, "service", "create", "--name", name, *extra, "--constraint", f"node.hostname=={NODE}",
          "-d", BUSYBOX, "sleep", "86400")
    task = converge(lab, name, 1)[0]
    if not remove:
        return task
    covey(lab, "service", "rm", name)
    host = lab.hosts[int(NODE.removeprefix("host")) - 1]
    wait_until(lambda: task["id"] not in runc_running(host), GONE_TIMEOUT, 0.1, f"the container of {name} gone")
    return task


def spans_ms(task: dict, states: dict[str, int]) -> dict[str, float]:
    spans = {name: (states[end] - states[begin]) / 1e6 for name, (begin, end) in SPANS.items()}
    spans["created_to_running"] = (int(task["status"]["timestamp_ns"]) - int(task["meta"]["created_at_ns"])) / 1e6
    return spans


def bench(tasks: int) -> dict:
    with swarm_with_registry(3, coveyd_args=("--debug",)) as lab:
        for network in ("benchnet", "coldnet"):
            covey(lab, "network", "create", "-d", "overlay", network)
        start_one(lab, "anchor", KINDS["network"], remove=False)
        started: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        for i in range(WARMUP + tasks):     # the kinds in turn: a busy moment weighs on all alike
            for kind, extra in KINDS.items():
                task = start_one(lab, f"{kind.replace('_', '-')}-{i}", extra)
                if i >= WARMUP:
                    started[kind].append(task)
        node_reports = reports(lab.hosts[int(NODE.removeprefix("host")) - 1].log_file.read_text())
        p50: dict[str, dict[str, float]] = {}
        for kind, kind_tasks in started.items():
            per_task = [spans_ms(t, node_reports[t["id"]]) for t in kind_tasks]
            p50[kind] = {span: round(pct([s[span] for s in per_task], 50), 1) for span in per_task[0]}
        return {
            "tasks_per_kind": tasks, "node": NODE,
            "p50_ms": p50,
            "network_cost_p50_ms": {kind: {span: round(p50[kind][span] - p50["none"][span], 1) for span in p50["none"]}
                                    for kind in KINDS if kind != "none"},
            "goal_network_cost_ms": 30,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    write_result("task_start", bench(args.tasks), args.out)


if __name__ == "__main__":
    main()
