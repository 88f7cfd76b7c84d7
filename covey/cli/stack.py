"""covey stack config / deploy / ls / services / ps / rm / rollback, with Docker's grammar and
lines. A deploy is one call (one Raft write on the managers); the CLI then waits for every
service it created or changed to converge, with one progress line per service in a terminal."""
import argparse
import sys
import time

from covey import imagepin
from covey.cli import jobs
from covey.cli.login import registry_auths_for
from covey.cli.output import table, to_json
from covey.cli.progress import Display, current_tasks, is_global
from covey.cli.service import list_services, list_tasks
from covey.compose import ComposeError, load_stack
from covey.compose.cli import add_loading_flags, add_stack_config_parser, run_stack_config
from covey.errors import InvalidArgument
from covey.units import parse_duration
from proto import control_pb2
from proto import objects_pb2 as pb

NAMESPACE_LABEL = "com.docker.stack.namespace"
Change = control_pb2.StackChange
VERB = {Change.CREATE: "Creating", Change.UPDATE: "Updating", Change.REMOVE: "Removing"}
DRY_VERB = {Change.CREATE: "Would create", Change.UPDATE: "Would update", Change.REMOVE: "Would remove"}
POLL = 0.5        # s between two looks at the services while waiting (a CLI polling, not a test)
US = pb.UpdateStatus


def add_parser(subparsers) -> None:
    stack = subparsers.add_parser("stack", help="manage stacks").add_subparsers(dest="stack_cmd", required=True)
    config = add_stack_config_parser(stack)
    config.set_defaults(run=lambda conn, args: run_stack_config(args), needs_daemon=False)

    deploy = stack.add_parser("deploy", aliases=["up"], help="deploy a new stack or update an existing one")
    add_loading_flags(deploy)
    deploy.add_argument("--prune", action="store_true", help="remove services no longer in the files")
    deploy.add_argument("--resolve-image", choices=imagepin.MODES, default="always",
                        help="pin image tags to the registry's digests, asked by the manager "
                             "(default always)")
    deploy.add_argument("--with-registry-auth", action="store_true",
                        help="send your registry credentials (covey login) to the nodes that pull the images")
    deploy.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    deploy.add_argument("-d", "--detach", action="store_true", help="return at once, without waiting")
    deploy.add_argument("--converge-timeout", default="300s", help="how long to wait for the services")
    deploy.add_argument("stack", metavar="STACK")
    deploy.set_defaults(run=deploy_stack)

    ls = stack.add_parser("ls", help="list stacks")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.set_defaults(run=list_stacks)

    services = stack.add_parser("services", help="list the services of a stack")
    services.add_argument("-q", "--quiet", action="store_true")
    services.add_argument("--format", choices=["table", "json"], default="table")
    services.add_argument("stack", metavar="STACK")
    services.set_defaults(run=stack_services)

    ps = stack.add_parser("ps", help="list the tasks of a stack")
    ps.add_argument("--no-trunc", action="store_true")
    ps.add_argument("--explain", action="store_true", help="why tasks wait, in full")
    ps.add_argument("-q", "--quiet", action="store_true")
    ps.add_argument("--format", choices=["table", "json"], default="table")
    ps.add_argument("stack", metavar="STACK")
    ps.set_defaults(run=stack_tasks)

    rm = stack.add_parser("rm", aliases=["remove", "down"], help="remove stacks")
    rm.add_argument("stacks", nargs="+", metavar="STACK")
    rm.set_defaults(run=remove_stacks)

    rollback = stack.add_parser("rollback", help="put every object of a stack back to its previous deploy")
    rollback.add_argument("-d", "--detach", action="store_true")
    rollback.add_argument("--converge-timeout", default="300s")
    rollback.add_argument("stack", metavar="STACK")
    rollback.set_defaults(run=rollback_stack)


# ---------------------------------------------------------------- deploy

def deploy_stack(conn, args) -> int:
    try:
        spec, warnings = load_stack(args.compose_files, args.env_files, args.skip_interpolation, args.strict,
                                    stack_name=args.stack)
    except ComposeError as exc:
        raise InvalidArgument(str(exc)) from None
    for warning in warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    auths = registry_auths_for([s.task.container.image for s in spec.services]) if args.with_registry_auth else {}
    answer = conn.control.DeployStack(control_pb2.DeployStackRequest(
        spec=spec, prune=args.prune, dry_run=args.dry_run, resolve_image=args.resolve_image,
        registry_auths=auths))
    for warning in answer.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    print_changes(answer.changes, DRY_VERB if args.dry_run else VERB)
    moved = [c for c in answer.changes if c.kind == "service" and c.action in (Change.CREATE, Change.UPDATE)]
    if not any(c.action != Change.UNCHANGED for c in answer.changes):
        print(f"Stack {spec.name} is up to date: nothing to change")
    if args.dry_run or args.detach or not moved:
        return 0
    return wait_stack(conn, [c.id for c in moved], parse_duration(args.converge_timeout) / 1e9)


def print_changes(changes, verbs: dict) -> None:
    """Docker's lines: `Creating network shop_default`, `Updating service shop_api (id: ...)`."""
    for c in changes:
        if c.action == Change.UNCHANGED:
            continue
        suffix = f" (id: {c.id})" if c.kind == "service" and c.action == Change.UPDATE else ""
        print(f"{verbs[c.action]} {c.kind} {c.name}{suffix}")


def _stack_services(conn, stack: str) -> list[pb.Service]:
    services = conn.control.ListServices(control_pb2.ListServicesRequest()).services
    return [s for s in services if s.spec.labels.get(NAMESPACE_LABEL) == stack]


# ---------------------------------------------------------------- waiting

def service_progress(conn, service: pb.Service, rollback: bool = False) -> tuple[str, str | None]:
    """One line for the service, and its outcome: "converged", "failed: why", or None (not yet).
    A service rolled back (unless a rollback was asked for) or paused failed."""
    if jobs.is_job(service):            # a job converges once it completed every time
        done = jobs.progress(service, conn.control.ListTasks(control_pb2.ListTasksRequest(service=service.id)).tasks)
        finished = bool(done.total) and done.completed == done.total
        return f"{service.spec.name}: {done.column()}", "converged" if finished else None
    tasks = current_tasks(conn, service)
    running = sum(1 for t in tasks if t.status.state == pb.RUNNING)
    wanted = len(tasks) if is_global(service) else service.spec.replicated.replicas
    status = service.update_status
    errors = sorted({t.status.err for t in tasks if t.status.err})
    line = f"{service.spec.name}: {running}/{wanted} running" + (f" ({errors[0]})" if errors else "")
    failing = (US.PAUSED, US.ROLLBACK_PAUSED) if rollback else \
        (US.PAUSED, US.ROLLBACK_PAUSED, US.ROLLBACK_COMPLETED, US.ROLLBACK_STARTED)
    if status.state in failing:
        return line, f"failed: {status.message or US.State.Name(status.state).lower()}"
    rolling = status.state in (US.UPDATING, US.ROLLBACK_STARTED)
    if running == wanted and (wanted or not is_global(service)) and not rolling:
        return line, "converged"
    return line, None


def wait_stack(conn, service_ids: list[str], timeout: float, rollback: bool = False) -> int:
    """Until every service converged; 1, naming the services, if one failed, was rolled back
    or did not converge in time."""
    display, deadline = Display(), time.monotonic() + timeout
    outcome: dict[str, str | None] = {}
    while True:
        services = [conn.control.GetService(control_pb2.GetServiceRequest(service=i)).service for i in service_ids]
        lines = []
        for service in services:
            line, outcome[service.spec.name] = service_progress(conn, service, rollback)
            lines.append(line)
        failed = {n: o for n, o in outcome.items() if o and o.startswith("failed")}
        done = all(outcome.values())
        if done or failed or time.monotonic() > deadline:
            display.show(lines)
            break
        display.show(lines)
        time.sleep(POLL)
    if failed:
        for name, why in sorted(failed.items()):
            print(f"Error: service {name} {why}", file=sys.stderr)
        return 1
    if not done:
        late = sorted(n for n, o in outcome.items() if o is None)
        print(f"Error: service(s) {', '.join(late)} did not converge in time", file=sys.stderr)
        return 1
    for name in sorted(outcome):
        print(f"verify: Service {name} converged")
    return 0


# ---------------------------------------------------------------- ls, services, ps

def list_stacks(conn, args) -> int:
    stacks = conn.control.ListStacks(control_pb2.ListStacksRequest()).stacks
    if args.format == "json":
        print(to_json(stacks))
        return 0
    services = conn.control.ListServices(control_pb2.ListServicesRequest()).services
    counts: dict[str, int] = {}
    for s in services:
        name = s.spec.labels.get(NAMESPACE_LABEL)
        if name:
            counts[name] = counts.get(name, 0) + 1
    print(table(["NAME", "SERVICES"], [[s.spec.name, str(counts.get(s.spec.name, 0))] for s in stacks]))
    return 0


class _StackControl:
    """The control stub with ListServices and ListTasks narrowed to one stack, so that `stack
    services` and `stack ps` are `service ls` and `service ps` over the stack's services."""

    def __init__(self, control, stack: str):
        self._control, self._stack = control, stack

    def __getattr__(self, name):
        return getattr(self._control, name)

    def ListServices(self, request):
        answer = self._control.ListServices(request)
        return control_pb2.ListServicesResponse(
            services=[s for s in answer.services if s.spec.labels.get(NAMESPACE_LABEL) == self._stack])

    def ListTasks(self, request):
        ids = {s.id for s in self.ListServices(control_pb2.ListServicesRequest()).services}
        answer = self._control.ListTasks(request)
        return control_pb2.ListTasksResponse(tasks=[t for t in answer.tasks if t.service_id in ids])


class _StackConnection:
    def __init__(self, conn, stack: str):
        self.control = _StackControl(conn.control, stack)


def _narrowed(conn, stack: str) -> "_StackConnection":
    if not _stack_services(conn, stack):
        raise InvalidArgument(f"nothing found in stack: {stack}")
    return _StackConnection(conn, stack)


def stack_services(conn, args) -> int:
    return list_services(_narrowed(conn, args.stack), args)


def stack_tasks(conn, args) -> int:
    task_args = argparse.Namespace(**{**vars(args), "service": ""})
    return list_tasks(_narrowed(conn, args.stack), task_args)


# ---------------------------------------------------------------- rm, rollback

def remove_stacks(conn, args) -> int:
    for name in args.stacks:
        answer = conn.control.RemoveStack(control_pb2.RemoveStackRequest(stack=name))
        print_changes(answer.changes, VERB)
    return 0


def rollback_stack(conn, args) -> int:
    answer = conn.control.RollbackStack(control_pb2.RollbackStackRequest(stack=args.stack))
    print_changes(answer.changes, VERB)
    moved = [c.id for c in answer.changes if c.kind == "service" and c.action in (Change.CREATE, Change.UPDATE)]
    if args.detach or not moved:
        return 0
    return wait_stack(conn, moved, parse_duration(args.converge_timeout) / 1e9, rollback=True)
