"""Watch a swarm through a fault: a background thread asks one manager for the nodes and one
service's tasks (what `covey node ls` / `covey service ps` show) every POLL seconds, and keeps
every answer with its time. Checks then look at every sample, so that what must never happen
(a healthy node shown Down, a slot running twice) is caught even if it lasted one sample.

It calls the manager in-process through the CLI's own client (covey.cli.client, the node's
unix socket): a `covey` process takes ~0.5 s to start, too slow to sample a 2 s blip.

    with Sampler(via_host.socket, "web") as sampler:
        lab.cut(host)
        view = wait_until(lambda: sampler.first_since(t0, View.has_leader), 15, what="a leader")
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from covey.cli import client
from covey.errors import CoveyError
from proto import control_pb2
from proto import objects_pb2 as pb

POLL = 0.1          # s between two samples
CALL_TIMEOUT = 2.0  # s: a manager that takes longer to answer counts as not answering


@dataclass(frozen=True)
class View:
    """One answer of the manager: the nodes by hostname and the service's tasks."""
    at: float  # time.monotonic() when it arrived
    nodes: dict[str, pb.Node]
    tasks: list[pb.Task]

    def hostname(self, node_id: str) -> str:
        return next((h for h, n in self.nodes.items() if n.id == node_id), node_id)

    def leader(self) -> str | None:
        return next((h for h, n in self.nodes.items() if n.manager_status.leader), None)

    def down(self) -> set[str]:
        return {h for h, n in self.nodes.items() if n.status.state == pb.NodeStatus.DOWN}

    def running(self) -> list[pb.Task]:
        """Tasks whose last reported state is RUNNING (also those told to stop)."""
        return [t for t in self.tasks if t.status.state == pb.RUNNING]

    def on(self, hostname: str) -> set[str]:
        """IDs of the tasks RUNNING on `hostname` that the managers want running."""
        return {t.id for t in self.running() if t.desired_state <= pb.RUNNING
                and self.hostname(t.node_id) == hostname}

    def serving(self, slots: range, off: str) -> bool:
        """Every slot has a wanted task RUNNING on a node other than `off`."""
        served = {t.slot for t in self.running() if t.desired_state <= pb.RUNNING
                  and self.hostname(t.node_id) != off}
        return set(slots) <= served

    def doubled(self, stale_on: str) -> list[str]:
        """Slots running twice: two wanted RUNNING tasks, or two RUNNING tasks on nodes other
        than `stale_on` (whose stale task may still show RUNNING while it is cut off)."""
        out = []
        for slot in sorted({t.slot for t in self.tasks}):
            running = [t for t in self.running() if t.slot == slot]
            wanted = [t for t in running if t.desired_state <= pb.RUNNING]
            elsewhere = [t for t in running if self.hostname(t.node_id) != stale_on]
            if len(wanted) > 1 or len(elsewhere) > 1:
                out.append(f"slot {slot}: {[(t.id, self.hostname(t.node_id)) for t in running]}")
        return out


class Sampler:
    def __init__(self, socket: Path, service: str, interval: float = POLL):
        self.service, self.interval = service, interval
        self._conn = client.connect(f"unix://{socket}", None)
        self.views: list[View] = []
        self.misses = 0  # samples the manager did not answer (no leader, or too slow)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.channel.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                nodes = self._conn.control.ListNodes(control_pb2.ListNodesRequest(), timeout=CALL_TIMEOUT).nodes
                tasks = self._conn.control.ListTasks(control_pb2.ListTasksRequest(service=self.service),
                                                     timeout=CALL_TIMEOUT).tasks
                self.views.append(View(time.monotonic(), {n.description.hostname: n for n in nodes}, list(tasks)))
            except (grpc.RpcError, CoveyError):   # CoveyError: the client's deadline passed
                self.misses += 1
            self._stop.wait(self.interval)

    def latest(self) -> View | None:
        return self.views[-1] if self.views else None

    def since(self, t0: float) -> list[View]:
        return [v for v in list(self.views) if v.at >= t0]

    def first_since(self, t0: float, predicate: Callable[[View], object]) -> View | None:
        """The first view at or after `t0` for which `predicate` holds (for wait_until)."""
        return next((v for v in self.since(t0) if predicate(v)), None)
