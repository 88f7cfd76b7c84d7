"""covey container ls / inspect / logs: the containers on this node (like `docker ps` there)."""
import datetime
import sys
import time

from covey.cli.output import table, to_json
from covey.units import parse_duration
from proto import covey_pb2 as pb


def add_parser(subparsers) -> None:
    container = subparsers.add_parser("container", help="the containers on this node").add_subparsers(
        dest="container_cmd", required=True)

    ls = container.add_parser("ls", help="list containers")
    ls.add_argument("-a", "--all", action="store_true", help="also the ones that are not running")
    ls.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.set_defaults(run=list_containers)

    inspect = container.add_parser("inspect", help="show a container in detail")
    inspect.add_argument("container", metavar="CONTAINER")
    inspect.set_defaults(run=inspect_container)

    logs = container.add_parser("logs", help="show a container's output")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--tail", default="all", help="number of lines from the end, or 'all'")
    logs.add_argument("--since", default="", help="a duration ago (10m) or an RFC 3339 time")
    logs.add_argument("-t", "--timestamps", action="store_true")
    logs.add_argument("container", metavar="CONTAINER")
    logs.set_defaults(run=container_logs)


def _ago(seconds: float) -> str:
    delta = max(0, time.time() - seconds)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if delta >= size:
            return f"{int(delta // size)} {unit} ago"
    return f"{int(delta)} seconds ago"


def _status(c: pb.ContainerSummary) -> str:
    if c.status == "running":
        text = f"Up {_ago(c.started_at)[:-4]}"
        return f"{text} ({c.health})" if c.health else text
    if c.exited:
        return f"Exited ({c.exit_code}) {_ago(c.finished_at)}" + (" (OOM killed)" if c.oom_killed else "")
    return c.status.capitalize()


def list_containers(conn, args) -> int:
    containers = conn.containers.List(pb.ListContainersRequest(all=args.all)).containers
    if args.quiet:
        print("\n".join(c.id for c in containers))
    elif args.format == "json":
        print(to_json(containers))
    else:
        rows = [[c.id[:25], c.image, '"' + " ".join(c.command)[:20] + '"', _ago(c.created_at), _status(c), c.name]
                for c in containers]
        print(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"], rows))
    return 0


def inspect_container(conn, args) -> int:
    print(conn.containers.Inspect(pb.InspectContainerRequest(container=args.container)).json)
    return 0


def _since(text: str) -> float:
    if not text:
        return 0.0
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() - parse_duration(text) / 1e9


def container_logs(conn, args) -> int:
    tail = -1 if args.tail == "all" else int(args.tail)
    request = pb.ContainerLogsRequest(container=args.container, follow=args.follow, tail=tail,
                                      since=_since(args.since))
    for line in conn.containers.Logs(request):
        out = sys.stdout if line.stream == "stdout" else sys.stderr
        if args.timestamps:
            stamp = datetime.datetime.fromtimestamp(line.time, datetime.timezone.utc)
            out.write(stamp.isoformat(timespec="microseconds").replace("+00:00", "Z") + " ")
        out.write(line.line)
        out.flush()
    return 0
