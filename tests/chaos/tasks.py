"""Tasks on workers that no fault touches must not notice the faults on the managers: from
before the first fault to after the last heal, exactly the same containers run on them.
One stopped or one added would be a task moved off an untouched node, or a slot running
twice (a new leader that rescheduled before it heard from the workers)."""
import threading

from deploy.lab import Host, Lab
from tests.e2e.swarmtools import REGISTRY, runc_running
from tests.support.poll import wait_until

WORKERS = 2
SERVICE = "chaos-tasks"
REPLICAS = 4                 # two per worker
IMAGE = f"{REGISTRY}/covey/busybox:1"
WATCH_PERIOD = 0.2           # s between two looks at what runs on the workers
START_TIMEOUT = 60.0         # s for the service's tasks to run


def running_on(workers: list[Host]) -> frozenset[tuple[str, str]]:
    return frozenset((host.name, container) for host in workers for container in runc_running(host))


def start_tasks(lab: Lab, manager: Host, workers: list[Host]) -> frozenset[tuple[str, str]]:
    """The service whose tasks the watch follows; returns what runs once all do."""
    lab.covey(manager, "service", "create", "--name", SERVICE, "--replicas", str(REPLICAS),
              "--constraint", "node.role==worker", "--detach", IMAGE, "sleep", "1000000")

    def all_running():
        now = running_on(workers)
        return now if len(now) == REPLICAS else None
    return wait_until(all_running, START_TIMEOUT, WATCH_PERIOD, f"{REPLICAS} tasks of {SERVICE} running on the workers")


class TaskWatch(threading.Thread):
    """Looks at the workers' containers until stopped; records every look that differs
    from `expected`."""

    def __init__(self, workers: list[Host], expected: frozenset[tuple[str, str]]):
        super().__init__(daemon=True)
        self.workers, self.expected = workers, expected
        self.looks = 0
        self.deviations: list[str] = []
        self._ended = threading.Event()

    def run(self) -> None:
        while not self._ended.wait(WATCH_PERIOD):
            now = running_on(self.workers)
            self.looks += 1
            if now != self.expected:
                self.deviations.append(f"stopped {sorted(self.expected - now)}, added {sorted(now - self.expected)}")

    def stop(self) -> None:
        self._ended.set()
        self.join()
