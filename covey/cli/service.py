"""covey service create / ls / ps / inspect / scale / rm, with Docker's grammar and columns."""
import argparse
import time

from covey.cli.logs import add_log_flags, service_logs
from covey.cli.output import table, to_json
from covey.cli.progress import wait_converged, wait_rollout
from covey.cli.serviceview import FAILURE_ACTION, MOUNT_TYPES, ORDER, RESTART, pretty_service
from covey.errors import InvalidArgument
from covey.units import parse_bytes, parse_duration
from proto import covey_pb2 as pb
from proto import spec_pb2 as spec



def add_rollout_flags(parser) -> None:
    """--update-* and --rollback-*, for create and update (Docker's names)."""
    for kind in ("update", "rollback"):
        parser.add_argument(f"--{kind}-parallelism", type=int)
        parser.add_argument(f"--{kind}-delay")
        parser.add_argument(f"--{kind}-failure-action", choices=sorted(FAILURE_ACTION) if kind == "update"
                            else ["pause", "continue"])
        parser.add_argument(f"--{kind}-monitor")
        parser.add_argument(f"--{kind}-max-failure-ratio", type=float)
        parser.add_argument(f"--{kind}-order", choices=sorted(ORDER))


def apply_rollout_flags(args, service_spec: spec.ServiceSpec) -> None:
    for kind in ("update", "rollback"):
        config = getattr(service_spec, kind)
        flag = lambda name: getattr(args, f"{kind}_{name}")  # noqa: E731
        if flag("parallelism") is not None:
            config.parallelism = flag("parallelism")
        if flag("delay"):
            config.delay_ns = parse_duration(flag("delay"))
        if flag("failure_action"):
            config.failure_action = FAILURE_ACTION[flag("failure_action")]
        if flag("monitor"):
            config.monitor_ns = parse_duration(flag("monitor"))
        if flag("max_failure_ratio") is not None:
            if not 0 <= flag("max_failure_ratio") <= 1:
                raise InvalidArgument(f"--{kind}-max-failure-ratio must be between 0 and 1")
            config.max_failure_ratio = flag("max_failure_ratio")
        if flag("order"):
            config.order = ORDER[flag("order")]


def add_parser(subparsers) -> None:
    service = subparsers.add_parser("service", help="manage services").add_subparsers(dest="service_cmd", required=True)

    create = service.add_parser("create", help="create a service")
    create.add_argument("--name", required=True)
    create.add_argument("--mode", choices=["replicated", "global"], default="replicated")
    create.add_argument("--replicas", type=int)
    create.add_argument("--constraint", action="append", default=[])
    create.add_argument("--placement-pref", action="append", default=[], metavar="spread=node.labels.X")
    create.add_argument("--replicas-max-per-node", type=int, default=0)
    create.add_argument("--reserve-cpu", type=float, default=0.0)
    create.add_argument("--reserve-memory", default="")
    create.add_argument("--limit-cpu", type=float, default=0.0)
    create.add_argument("--limit-memory", default="")
    create.add_argument("-e", "--env", action="append", default=[])
    create.add_argument("--label", action="append", default=[])
    create.add_argument("--mount", action="append", default=[],
                        metavar="type=bind|volume|tmpfs,source=S,target=T[,readonly][,tmpfs-size=N]")
    create.add_argument("--health-cmd", help="a shell command that exits 0 when the task is healthy")
    create.add_argument("--health-interval")
    create.add_argument("--health-timeout")
    create.add_argument("--health-retries", type=int)
    create.add_argument("--health-start-period")
    create.add_argument("--no-healthcheck", action="store_true", help="disable the image's healthcheck")
    create.add_argument("--restart-condition", choices=sorted(RESTART))
    create.add_argument("--restart-delay")
    create.add_argument("--restart-max-attempts", type=int)
    create.add_argument("--restart-window")
    create.add_argument("-d", "--detach", action="store_true", help="return at once, without waiting")
    create.add_argument("--converge-timeout", default="120s", help="how long to wait for the tasks to run")
    add_rollout_flags(create)
    create.add_argument("image")
    create.add_argument("args", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]")  # verbatim, as Docker
    create.set_defaults(run=create_service)

    update = service.add_parser("update", help="change a service: a rolling update")
    update.add_argument("--image")
    update.add_argument("--env-add", action="append", default=[])
    update.add_argument("--env-rm", action="append", default=[])
    update.add_argument("--force", action="store_true", help="redeploy even if nothing changed")
    update.add_argument("-d", "--detach", action="store_true")
    update.add_argument("--converge-timeout", default="300s")
    add_rollout_flags(update)
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


def build_spec(args) -> spec.ServiceSpec:
    s = spec.ServiceSpec(name=args.name)
    s.labels.update(_pairs(args.label, "--label"))
    c = s.task.container
    c.image = args.image
    c.args.extend(args.args)
    c.env.extend(sorted(_check_env(args.env)))
    if args.mode == "global":
        if args.replicas is not None:
            raise InvalidArgument("--replicas can only be used with replicated mode")
        getattr(s, "global").SetInParent()  # `global` is a Python keyword
    else:
        s.replicated.replicas = 1 if args.replicas is None else args.replicas
        if s.replicated.replicas < 0:
            raise InvalidArgument("--replicas must be 0 or more")
    placement = s.task.placement
    placement.constraints.extend(args.constraint)
    for pref in args.placement_pref:
        kind, _, target = pref.partition("=")
        if kind != "spread" or not target:
            raise InvalidArgument(f"invalid placement preference {pref!r}: use spread=node.labels.KEY")
        placement.preferences.add(spread=target)
    placement.max_replicas = args.replicas_max_per_node
    res = s.task.resources
    res.reservations.nano_cpus, res.limits.nano_cpus = int(args.reserve_cpu * 1e9), int(args.limit_cpu * 1e9)
    res.reservations.memory_bytes = parse_bytes(args.reserve_memory) if args.reserve_memory else 0
    res.limits.memory_bytes = parse_bytes(args.limit_memory) if args.limit_memory else 0
    if args.restart_condition or args.restart_delay or args.restart_max_attempts or args.restart_window:
        restart = s.task.restart
        restart.condition = RESTART[args.restart_condition or "any"]
        if args.restart_delay:
            restart.delay_ns = parse_duration(args.restart_delay)
        restart.max_attempts = args.restart_max_attempts or 0
        restart.window_ns = parse_duration(args.restart_window) if args.restart_window else 0
    c.mounts.extend(_mount(text) for text in args.mount)
    _healthcheck(args, c)
    for config in (s.update, s.rollback):
        config.parallelism = 1  # Docker's default: one task at a time
    apply_rollout_flags(args, s)
    return s


def _mount(text: str) -> spec.Mount:
    """Docker's --mount: comma-separated key=value (src/source, dst/destination/target, ...)."""
    mount, kind = spec.Mount(), "volume"
    for field in text.split(","):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if key == "type":
            if value not in MOUNT_TYPES:
                raise InvalidArgument(f"invalid --mount {text!r}: type must be bind, volume or tmpfs")
            kind = value
        elif key in ("source", "src"):
            mount.source = value
        elif key in ("target", "destination", "dst"):
            mount.target = value
        elif key in ("readonly", "ro"):
            mount.read_only = value.lower() not in ("0", "false") if sep else True
        elif key == "tmpfs-size":
            mount.tmpfs_options.size_bytes = parse_bytes(value)
        else:
            raise InvalidArgument(f"invalid --mount {text!r}: unknown field {key!r}")
    mount.type = MOUNT_TYPES[kind]
    if not mount.target.startswith("/"):
        raise InvalidArgument(f"invalid --mount {text!r}: target must be an absolute path")
    if kind == "bind" and not mount.source.startswith("/"):
        raise InvalidArgument(f"invalid --mount {text!r}: a bind source must be an absolute path on the host")
    if kind == "tmpfs" and mount.source:
        raise InvalidArgument(f"invalid --mount {text!r}: a tmpfs has no source")
    return mount


def _healthcheck(args, container: spec.ContainerSpec) -> None:
    if args.no_healthcheck:
        if args.health_cmd:
            raise InvalidArgument("--no-healthcheck conflicts with --health-cmd")
        container.healthcheck.test.append("NONE")
        return
    h = container.healthcheck
    if args.health_cmd:
        h.test.extend(["CMD-SHELL", args.health_cmd])
    for flag in ("interval", "timeout", "start_period"):
        if getattr(args, f"health_{flag}"):
            setattr(h, f"{flag}_ns", parse_duration(getattr(args, f"health_{flag}")))
    if args.health_retries is not None:
        h.retries = args.health_retries


def _pairs(items, flag) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {flag} {item!r}: use KEY=VALUE")
        out[key] = value
    return out


def _check_env(items):
    for item in items:
        if not item or item.startswith("="):
            raise InvalidArgument(f"invalid environment variable {item!r}: use KEY=VALUE")
    return items


def create_service(conn, args) -> int:
    timeout = parse_duration(args.converge_timeout) / 1e9
    service = conn.control.CreateService(pb.CreateServiceRequest(spec=build_spec(args))).service
    print(service.id)
    return 0 if args.detach else wait_converged(conn, service, timeout)


def update_service(conn, args) -> int:
    service = conn.control.GetService(pb.GetServiceRequest(service=args.service)).service
    new = spec.ServiceSpec()
    new.CopyFrom(service.spec)
    container = new.task.container
    if args.image:
        container.image = args.image
    env = {e.partition("=")[0]: e for e in container.env}
    for key in args.env_rm:
        env.pop(key, None)
    env.update({e.partition("=")[0]: e for e in _check_env(args.env_add)})
    del container.env[:]
    container.env.extend(sorted(env.values()))
    if args.force:
        new.task.force_update += 1
    apply_rollout_flags(args, new)
    if new == service.spec:
        print(service.spec.name)
        return 0  # as Docker: nothing to roll out (--force redeploys anyway)
    updated = conn.control.UpdateService(pb.UpdateServiceRequest(
        service=service.id, spec=new, expected_version=service.meta.version)).service
    print(updated.spec.name)
    return 0 if args.detach else wait_rollout(conn, updated, parse_duration(args.converge_timeout) / 1e9)


def rollback_service(conn, args) -> int:
    service = conn.control.UpdateService(pb.UpdateServiceRequest(service=args.service, rollback=True)).service
    print(service.spec.name)
    return 0 if args.detach else wait_rollout(conn, service, parse_duration(args.converge_timeout) / 1e9)


def _mode(service: pb.Service) -> str:
    return "global" if service.spec.WhichOneof("mode") == "global" else "replicated"


def list_services(conn, args) -> int:
    services = conn.control.ListServices(pb.ListServicesRequest()).services
    if args.quiet:
        print("\n".join(s.id for s in services))
        return 0
    if args.format == "json":
        print(to_json(services))
        return 0
    tasks = conn.control.ListTasks(pb.ListTasksRequest()).tasks
    rows = []
    for s in services:
        mine = [t for t in tasks if t.service_id == s.id and t.desired_state <= pb.RUNNING]
        running = sum(1 for t in mine if t.status.state == pb.RUNNING)
        wanted = s.spec.replicated.replicas if _mode(s) == "replicated" else len(mine)
        rows.append([s.id[:12], s.spec.name, _mode(s), f"{running}/{wanted}", s.spec.task.container.image, ""])
    print(table(["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"], rows))
    return 0


def _ago(nanos: int) -> str:
    seconds = max(0, int(time.time() - nanos / 1e9))
    for unit, size in (("hours", 3600), ("minutes", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} seconds ago"


def _state(state: int) -> str:
    return pb.TaskState.Name(state).capitalize()


def list_tasks(conn, args) -> int:
    tasks = conn.control.ListTasks(pb.ListTasksRequest(service=args.service)).tasks
    if args.quiet:
        print("\n".join(t.id for t in tasks))
        return 0
    if args.format == "json":
        print(to_json(tasks))
        return 0
    nodes = {n.id: n.description.hostname for n in conn.control.ListNodes(pb.ListNodesRequest()).nodes}
    trunc = (lambda text, n: text) if args.no_trunc else (lambda text, n: text[:n])
    rows = []
    for t in tasks:
        name = f"{t.service_name}.{t.slot}" if t.slot else f"{t.service_name}.{t.node_id[:25]}"
        error = t.status.err or (t.explanation.text if t.status.state == pb.PENDING else "")
        rows.append([trunc(t.id, 12), name, trunc(t.spec.container.image, 40), nodes.get(t.node_id, ""),
                     _state(t.desired_state), f"{_state(t.status.state)} {_ago(t.status.timestamp_ns)}",
                     error if args.no_trunc or args.explain else trunc(error, 60), ""])
    print(table(["ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR", "PORTS"], rows))
    if args.explain:
        for t in tasks:
            if t.status.state == pb.PENDING and t.explanation.filters:
                print(f"\n{t.service_name}.{t.slot or t.node_id} cannot be placed:")
                for f in t.explanation.filters:
                    print(f"  {f.name}: {f.nodes_excluded} node(s) excluded: {f.reason}")
    return 0


def inspect_services(conn, args) -> int:
    services = [conn.control.GetService(pb.GetServiceRequest(service=ref)).service for ref in args.services]
    if args.pretty:
        shown = [pretty_service(s, conn.control.ListTasks(pb.ListTasksRequest(service=s.id)).tasks) for s in services]
        print("\n\n".join(shown))
        return 0
    print(to_json(services))
    return 0


def scale_services(conn, args) -> int:
    for pair in args.pairs:
        name, sep, count = pair.partition("=")
        if not sep or not count.isdigit():
            raise InvalidArgument(f"invalid scale {pair!r}: use SERVICE=REPLICAS")
        conn.control.ScaleService(pb.ScaleServiceRequest(service=name, replicas=int(count)))
        print(f"{name} scaled to {count}")
    return 0


def remove_services(conn, args) -> int:
    for ref in args.services:
        conn.control.RemoveService(pb.RemoveServiceRequest(service=ref))
        print(ref)
    return 0
