"""covey service create / update / rollback / ls / ps / inspect / scale / logs / rm, with Docker's
grammar and columns (the flags that make a spec: covey/cli/serviceflags.py)."""
import json
import time
from collections.abc import Callable

from covey.cli import jobs, ports
from covey.cli.login import registry_auth_for
from covey.cli.logs import add_log_flags, service_logs
from covey.cli.output import table, to_json
from covey.cli.progress import wait_converged, wait_rollout
from covey.cli.serviceflags import add_create_flags, add_update_flags, build_spec, edit_spec, same_ref
from covey.cli.serviceview import endpoint_view, pretty_service, ps_order
from covey.errors import InvalidArgument
from covey.units import parse_duration
from proto import control_pb2
from proto import objects_pb2 as pb

AUTH_HELP = "send my credentials for the image's registry (~/.docker/config.json) to the nodes that pull it"


def add_parser(subparsers) -> None:
    service = subparsers.add_parser("service", help="manage services").add_subparsers(dest="service_cmd", required=True)

    create = service.add_parser("create", help="create a service")
    add_create_flags(create)
    create.add_argument("-d", "--detach", action="store_true", help="return at once, without waiting")
    create.add_argument("--with-registry-auth", action="store_true", help=AUTH_HELP)
    create.add_argument("--converge-timeout", default="120s", help="how long to wait for the tasks to run")
    create.set_defaults(run=create_service)

    update = service.add_parser("update", help="change a service: a rolling update")
    add_update_flags(update)
    update.add_argument("-d", "--detach", action="store_true")
    update.add_argument("--with-registry-auth", action="store_true", help=AUTH_HELP)
    update.add_argument("--converge-timeout", default="300s")
    update.add_argument("service", metavar="SERVICE")
    update.set_defaults(run=update_service)

    rollback = service.add_parser("rollback", help="return a service to its previous spec")
    rollback.add_argument("-d", "--detach", action="store_true")
    rollback.add_argument("--converge-timeout", default="300s")
    rollback.add_argument("service", metavar="SERVICE")
    rollback.set_defaults(run=rollback_service)

    ls = service.add_parser("ls", help="list services")
    ls.add_argument("-q", "--quiet", action="store_true")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.set_defaults(run=list_services)

    ps = service.add_parser("ps", help="list a service's tasks")
    ps.add_argument("--no-trunc", action="store_true")
    ps.add_argument("--explain", action="store_true", help="why pending tasks cannot be placed, in full")
    ps.add_argument("-q", "--quiet", action="store_true")
    ps.add_argument("--format", choices=["table", "json"], default="table")
    ps.add_argument("service", metavar="SERVICE")
    ps.set_defaults(run=list_tasks)

    inspect = service.add_parser("inspect", help="show services in detail")
    inspect.add_argument("--pretty", action="store_true", help="readable text instead of JSON")
    inspect.add_argument("services", nargs="+", metavar="SERVICE")
    inspect.set_defaults(run=inspect_services)

    scale = service.add_parser("scale", help="set the replicas of services")
    scale.add_argument("pairs", nargs="+", metavar="SERVICE=REPLICAS")
    scale.set_defaults(run=scale_services)

    logs = service.add_parser("logs", help="a service's output, gathered from every node that ran it")
    add_log_flags(logs)
    logs.add_argument("--no-trunc", action="store_true")
    logs.add_argument("service", metavar="SERVICE")
    logs.set_defaults(run=service_logs)

    rm = service.add_parser("rm", help="remove services")
    rm.add_argument("services", nargs="+", metavar="SERVICE")
    rm.set_defaults(run=remove_services)


def create_service(conn, args) -> int:
    timeout = parse_duration(args.converge_timeout) / 1e9
    request = control_pb2.CreateServiceRequest(spec=build_spec(args))
    _with_registry_auth(args, request)
    service = conn.control.CreateService(request).service
    print(service.id)
    return 0 if args.detach else _wait(conn, service, timeout, wait_converged)


def _with_registry_auth(args, request) -> None:
    """--with-registry-auth: the user's credentials for the spec's image go with the request."""
    if args.with_registry_auth:
        auth = registry_auth_for(request.spec.task.container.image)
        if auth is not None:
            request.registry_auth.CopyFrom(auth)


def _wait(conn, service: pb.Service, timeout: float, wait) -> int:
    """A job is waited for until it completes; other services until they run (`wait`)."""
    return jobs.wait_completed(conn, service, timeout) if jobs.is_job(service) else wait(conn, service, timeout)


def network_resolver(conn) -> Callable[[str], str]:
    """A network's ID from its ID, name or unique ID prefix (as the managers resolve them);
    an unknown reference as it is, for the managers to refuse by name."""
    networks = conn.control.ListNetworks(control_pb2.ListNetworksRequest()).networks

    def network_id(ref: str) -> str:
        for matches in ([n for n in networks if n.id == ref], [n for n in networks if n.spec.name == ref],
                        [n for n in networks if n.id.startswith(ref)]):
            if matches:
                return matches[0].id if len(matches) == 1 else ref
        return ref
    return network_id


def network_names(conn) -> dict[str, str]:
    return {n.id: n.spec.name for n in conn.control.ListNetworks(control_pb2.ListNetworksRequest()).networks}


def update_service(conn, args) -> int:
    service = conn.control.GetService(control_pb2.GetServiceRequest(service=args.service)).service
    networks_edited = args.network_add or args.network_rm
    new = edit_spec(args, service.spec, network_resolver(conn) if networks_edited else same_ref, service.ports)
    if new == service.spec and not args.with_registry_auth:
        print(service.spec.name)
        return 0  # as Docker: nothing to roll out (--force redeploys anyway)
    request = control_pb2.UpdateServiceRequest(service=service.id, spec=new, expected_version=service.meta.version)
    _with_registry_auth(args, request)
    updated = conn.control.UpdateService(request).service
    print(updated.spec.name)
    if new == service.spec:
        return 0  # new credentials only: kept for the next pulls, nothing rolls out
    return 0 if args.detach else _wait(conn, updated, parse_duration(args.converge_timeout) / 1e9, wait_rollout)


def rollback_service(conn, args) -> int:
    service = conn.control.UpdateService(control_pb2.UpdateServiceRequest(service=args.service, rollback=True)).service
    print(service.spec.name)
    return 0 if args.detach else _wait(conn, service, parse_duration(args.converge_timeout) / 1e9, wait_rollout)


def _mode(service: pb.Service) -> str:
    mode = service.spec.WhichOneof("mode")
    return jobs.MODES.get(mode, "global" if mode == "global" else "replicated")


def list_services(conn, args) -> int:
    services = conn.control.ListServices(control_pb2.ListServicesRequest()).services
    if args.quiet:
        print("\n".join(s.id for s in services))
        return 0
    if args.format == "json":
        print(to_json(services))
        return 0
    tasks = conn.control.ListTasks(control_pb2.ListTasksRequest()).tasks
    rows = []
    for s in services:
        if jobs.is_job(s):
            rows.append([s.id[:12], s.spec.name, _mode(s), jobs.progress(s, tasks).column(),
                         shown_image(s.spec.task.container.image), ""])
            continue
        mine = [t for t in tasks if t.service_id == s.id and t.desired_state <= pb.RUNNING]
        running = sum(1 for t in mine if t.status.state == pb.RUNNING)
        wanted = s.spec.replicated.replicas if _mode(s) == "replicated" else len(mine)
        rows.append([s.id[:12], s.spec.name, _mode(s), f"{running}/{wanted}", shown_image(s.spec.task.container.image),
                     ports.render(ports.ingress_ports(s.ports or s.spec.endpoint.ports))])
    print(table(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], rows))
    return 0


def shown_image(image: str) -> str:
    """An image as Docker's tables show it: a digest pinned behind a tag (stack deploy
    --resolve-image) is left out; a reference by digest alone stays as it is."""
    name, at, _ = image.partition("@")
    return name if at and ":" in name.rsplit("/", 1)[-1] else image


def _ago(nanos: int) -> str:
    seconds = max(0, int(time.time() - nanos / 1e9))
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} seconds ago"


def _state(state: int) -> str:
    return pb.TaskState.Name(state).capitalize()


def list_tasks(conn, args) -> int:
    tasks = ps_order(conn.control.ListTasks(control_pb2.ListTasksRequest(service=args.service)).tasks)
    if args.quiet:
        print("\n".join(t.id for t in tasks))
        return 0
    if args.format == "json":
        print(to_json(tasks))
        return 0
    nodes = {n.id: n.description.hostname for n in conn.control.ListNodes(control_pb2.ListNodesRequest()).nodes}
    trunc = (lambda text, n: text) if args.no_trunc else (lambda text, n: text[:n])
    rows, previous = [], None
    for t in tasks:  # a slot's history under its current task, as Docker does: " \_ web.1"
        name = f"{t.service_name}.{t.slot}" if t.slot else f"{t.service_name}.{t.node_id[:25]}"
        name, previous = (f" \\_ {name}" if name == previous else name), name
        waits = t.status.state in (pb.NEW, pb.PENDING) or t.desired_state == pb.READY  # depends_on holds it
        error = t.status.err or (t.explanation.text if waits else "")
        rows.append([trunc(t.id, 12), name, trunc(shown_image(t.spec.container.image), 40), nodes.get(t.node_id, ""),
                     _state(t.desired_state), f"{_state(t.status.state)} {_ago(t.status.timestamp_ns)}",
                     error if args.no_trunc or args.explain else trunc(error, 60), ports.render(t.host_ports)])
    print(table(["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"], rows))
    if args.explain:
        for t in tasks:
            if t.status.state == pb.NEW and t.explanation.text:  # the allocator's reason
                print(f"\n{t.service_name}.{t.slot or t.node_id} cannot be given its addresses: "
                      f"{t.explanation.text}")
            if t.desired_state == pb.READY and t.explanation.text and t.status.state < pb.COMPLETE:
                print(f"\n{t.service_name}.{t.slot or t.node_id} is not started yet: {t.explanation.text}")
            if t.status.state == pb.PENDING and t.explanation.filters:
                print(f"\n{t.service_name}.{t.slot or t.node_id} cannot be placed:")
                for f in t.explanation.filters:
                    print(f"  {f.name}: {f.nodes_excluded} node(s) excluded: {f.reason}")
    return 0


def inspect_services(conn, args) -> int:
    services = [conn.control.GetService(control_pb2.GetServiceRequest(service=ref)).service for ref in args.services]
    if args.pretty:
        names = network_names(conn)
        shown = [pretty_service(s, conn.control.ListTasks(control_pb2.ListTasksRequest(service=s.id)).tasks, names)
                 for s in services]
        print("\n\n".join(shown))
        return 0
    shown = json.loads(to_json(services))
    for view, s in zip(shown, services, strict=True):
        view["Endpoint"] = endpoint_view(s)
    print(json.dumps(shown, indent=2))
    return 0


def scale_services(conn, args) -> int:
    for pair in args.pairs:
        name, sep, count = pair.partition("=")
        if not sep or not count.isdigit():
            raise InvalidArgument(f"invalid scale {pair!r}: use SERVICE=REPLICAS")
        conn.control.ScaleService(control_pb2.ScaleServiceRequest(service=name, replicas=int(count)))
        print(f"{name} scaled to {count}")
    return 0


def remove_services(conn, args) -> int:
    for ref in args.services:
        conn.control.RemoveService(control_pb2.RemoveServiceRequest(service=ref))
        print(ref)
    return 0
