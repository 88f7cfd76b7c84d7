"""Waiting for a service to converge or roll out, as Docker does: in a terminal, one
progress bar per task, redrawn in place; elsewhere, only the outcome."""
import sys
import time

from proto import control_pb2
from proto import objects_pb2 as pb

STEPS = [pb.NEW, pb.PENDING, pb.ASSIGNED, pb.ACCEPTED, pb.PREPARING, pb.READY, pb.STARTING, pb.RUNNING]
BAR = 50
US = pb.UpdateStatus
ENDED = (US.COMPLETED, US.ROLLBACK_COMPLETED, US.PAUSED, US.ROLLBACK_PAUSED)


def is_global(service: pb.Service) -> bool:
    return service.spec.WhichOneof("mode") == "global"


def current_tasks(conn, service: pb.Service) -> list[pb.Task]:
    """The wanted tasks of the service's current spec, newest first per slot or node."""
    tasks = conn.control.ListTasks(control_pb2.ListTasksRequest(service=service.id)).tasks
    return [t for t in tasks if t.desired_state <= pb.RUNNING and t.spec_version == service.spec_version]


def task_lines(service: pb.Service, tasks: list[pb.Task]) -> list[str]:
    """'overall progress: R out of N tasks', then 'i/N: state [=====>   ] error' per task."""
    wanted = len(tasks) if is_global(service) else service.spec.replicated.replicas
    running = sum(1 for t in tasks if t.status.state == pb.RUNNING)
    lines = [f"overall progress: {running} out of {wanted} tasks"]
    newest = {}
    for t in sorted(tasks, key=lambda t: t.meta.created_at_ns):
        newest[t.slot or t.node_id] = t
    for i, key in enumerate(sorted(newest, key=str), 1):
        t = newest[key]
        state = pb.TaskState.Name(t.status.state).lower()
        done = STEPS.index(t.status.state) + 1 if t.status.state in STEPS else 0
        filled = BAR * done // len(STEPS)
        bar = "=" * max(filled - 1, 0) + (">" if filled else "") + " " * (BAR - filled)
        error = f" {t.status.err}" if t.status.err else ""
        lines.append(f"{i}/{wanted}: {state:<10}[{bar}]{error}")
    return lines


class Display:
    """Redraws its lines in place in a terminal; prints nothing elsewhere until `final`."""

    def __init__(self, out=sys.stdout):
        self._out = out
        self._tty = out.isatty()
        self._shown = 0

    def show(self, lines: list[str]) -> None:
        if not self._tty:
            return
        up = f"\x1b[{self._shown}A" if self._shown else ""
        self._out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self._out.flush()
        self._shown = len(lines)

    def final(self, lines: list[str]) -> None:
        """The last state, in a terminal over the bars, elsewhere the overall line only."""
        self.show(lines) if self._tty else print(lines[0], file=self._out)


def wait_converged(conn, service: pb.Service, timeout: float, poll: float = 0.3) -> int:
    """Wait until every wanted task runs the service's current spec; 1 if it does not in time."""
    display, deadline = Display(), time.monotonic() + timeout
    while True:
        tasks = current_tasks(conn, service)
        lines = task_lines(service, tasks)
        running = sum(1 for t in tasks if t.status.state == pb.RUNNING)
        wanted = len(tasks) if is_global(service) else service.spec.replicated.replicas
        if running == wanted and (wanted or not is_global(service)):
            display.final(lines)
            print(f"verify: Service {service.spec.name} converged")
            return 0
        if time.monotonic() > deadline:
            display.final(lines)
            # Every run of this spec that failed, also ones already replaced (their reason
            # is the one the user needs).
            every = conn.control.ListTasks(control_pb2.ListTasksRequest(service=service.id)).tasks
            errors = sorted({t.status.err for t in every if t.status.err and t.spec_version == service.spec_version})
            print(f"Error: {service.spec.name} did not converge in time ({lines[0]})"
                  + "".join(f"\n  {e}" for e in errors), file=sys.stderr)
            return 1
        display.show(lines)
        time.sleep(poll)  # a CLI polling its manager, not a test


def wait_rollout(conn, service: pb.Service, timeout: float, poll: float = 0.5) -> int:
    """Wait until the update (or rollback) ends; 1 unless it completed as asked."""
    wanted = US.ROLLBACK_COMPLETED if service.update_status.state == US.ROLLBACK_STARTED else US.COMPLETED
    display, deadline = Display(), time.monotonic() + timeout
    while True:
        current = conn.control.GetService(control_pb2.GetServiceRequest(service=service.id)).service
        status = current.update_status
        lines = task_lines(current, current_tasks(conn, current))
        if status.state in ENDED:
            done = status.state == wanted and current.spec_version == service.spec_version
            display.final(lines)
            print(status.message, file=sys.stdout if done else sys.stderr)
            return 0 if done else 1
        if time.monotonic() > deadline:
            display.final(lines)
            print(f"Error: {current.spec.name}: the rollout did not finish in time ({status.message})",
                  file=sys.stderr)
            return 1
        display.show(lines)
        time.sleep(poll)  # a CLI polling its manager, not a test
