"""covey container ls / inspect / logs: the containers on this node (like `docker ps` there)."""
import json
import time

from covey.cli.logs import add_log_flags, container_logs
from covey.cli.output import table, to_json
from proto import local_pb2


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
    add_log_flags(logs)
    logs.add_argument("container", metavar="CONTAINER")
    logs.set_defaults(run=container_logs)


def _ago(seconds: float) -> str:
    delta = max(0, time.time() - seconds)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if delta >= size:
            return f"{int(delta // size)} {unit} ago"
    return f"{int(delta)} seconds ago"


def _status(c: local_pb2.ContainerSummary) -> str:
    if c.status == "running":
        text = f"Up {_ago(c.started_at)[:-4]}"
        return f"{text} ({c.health})" if c.health else text
    if c.exited:
        return f"Exited ({c.exit_code}) {_ago(c.finished_at)}" + (" (OOM killed)" if c.oom_killed else "")
    return c.status.capitalize()


def _command(argv) -> str:
    """Docker's COMMAND: arguments with spaces in single quotes, 20 characters, quoted."""
    text = " ".join(argv[:1] + [f"'{a}'" if " " in a else a for a in argv[1:]])
    return json.dumps(text if len(text) <= 20 else text[:19] + "…", ensure_ascii=False)


def list_containers(conn, args) -> int:
    containers = conn.containers.List(local_pb2.ListContainersRequest(all=args.all)).containers
    if args.quiet:
        print("\n".join(c.id for c in containers))
    elif args.format == "json":
        print(to_json(containers))
    else:
        rows = [[c.id[:25], c.image, _command(list(c.command)), _ago(c.created_at), _status(c), c.name]
                for c in containers]
        print(table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"], rows))
    return 0


def inspect_container(conn, args) -> int:
    print(conn.containers.Inspect(local_pb2.InspectContainerRequest(container=args.container)).json)
    return 0
