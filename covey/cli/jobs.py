"""Jobs in the CLI: Docker's REPLICAS column for them and the wait for completion."""
import sys
import time
from dataclasses import dataclass

from proto import control_pb2
from proto import objects_pb2 as pb

MODES = {"replicated_job": "replicated job", "global_job": "global job"}


def is_job(service: pb.Service) -> bool:
    return service.spec.WhichOneof("mode") in MODES


@dataclass
class JobProgress:
    running: int
    desired: int     # tasks that should run now (Docker's DesiredTasks)
    completed: int
    total: int       # completions wanted (a global job: one per node it was given to)

    def column(self) -> str:
        """Docker's `service ls` REPLICAS for a job, e.g. `0/1 (1/1 completed)`."""
        return f"{self.running}/{self.desired} ({self.completed}/{self.total} completed)"


def progress(service: pb.Service, tasks: list[pb.Task]) -> JobProgress:
    """How far the job's current run is (its tasks of the current spec version)."""
    current = [t for t in tasks if t.service_id == service.id and t.spec_version == service.spec_version]
    running = sum(1 for t in current if t.status.state == pb.RUNNING)
    if service.spec.WhichOneof("mode") == "replicated_job":
        job = service.spec.replicated_job
        completed = len({t.slot for t in current if t.status.state == pb.COMPLETE})
        total = job.total_completions
        desired = min(job.max_concurrent or total, total - completed)
    else:
        completed = len({t.node_id for t in current if t.status.state == pb.COMPLETE})
        total = len({t.node_id for t in current})
        desired = total - completed
    return JobProgress(running, desired, completed, total)


def wait_completed(conn, service: pb.Service, timeout: float, poll: float = 0.3) -> int:
    """Wait until the job's current run has completed every time; 1 if not in time."""
    deadline = time.monotonic() + timeout
    while True:
        current = conn.control.GetService(control_pb2.GetServiceRequest(service=service.id)).service
        tasks = conn.control.ListTasks(control_pb2.ListTasksRequest(service=service.id)).tasks
        done = progress(current, tasks)
        if done.total and done.completed == done.total:
            print(f"job complete: {done.completed} out of {done.total} tasks")
            return 0
        if time.monotonic() > deadline:
            errors = sorted({t.status.err for t in tasks if t.status.err and t.spec_version == current.spec_version})
            print(f"Error: job {current.spec.name} did not complete in time ({done.column()})"
                  + "".join(f"\n  {e}" for e in errors), file=sys.stderr)
            return 1
        time.sleep(poll)  # a CLI polling its manager, not a test
