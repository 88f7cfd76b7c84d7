"""Log output for `covey container logs` and `covey service logs`: Docker's flags and format."""
import datetime
import sys
import time

from covey.errors import InvalidArgument
from covey.units import parse_duration
from proto import control_pb2, local_pb2


def add_log_flags(parser) -> None:
    parser.add_argument("-f", "--follow", action="store_true")
    parser.add_argument("-n", "--tail", default="all", help="number of lines from the end, or 'all'")
    parser.add_argument("--since", default="", help="a duration ago (10m) or an RFC 3339 time")
    parser.add_argument("-t", "--timestamps", action="store_true")


def tail_of(text: str) -> int:
    """-1 for all."""
    if text == "all":
        return -1
    if not text.isdigit():
        raise InvalidArgument(f"invalid --tail {text!r}: a number of lines, or 'all'")
    return int(text)


def since_of(text: str) -> float:
    """Seconds since the epoch, from an RFC 3339 time or a duration ago; 0 for all."""
    if not text:
        return 0.0
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time() - parse_duration(text) / 1e9


def write(stream: str, when: float, line: str, prefix: str = "", timestamps: bool = False) -> None:
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.write(prefix)  # as Docker: context first, then the time
    if timestamps:
        stamp = datetime.datetime.fromtimestamp(when, datetime.UTC)
        out.write(stamp.isoformat(timespec="microseconds").replace("+00:00", "Z") + " ")
    out.write(line)
    out.flush()


def container_logs(conn, args) -> int:
    request = local_pb2.ContainerLogsRequest(container=args.container, follow=args.follow, tail=tail_of(args.tail),
                                      since=since_of(args.since))
    for line in conn.containers.Logs(request):
        write(line.stream, line.time, line.line, timestamps=args.timestamps)
    return 0


def service_logs(conn, args) -> int:
    """Lines from every node that ran the service, merged by time, each named as Docker
    does (service.slot.task@node); a node that could not answer is named on stderr."""
    request = control_pb2.ServiceLogsRequest(service=args.service, follow=args.follow, tail=tail_of(args.tail),
                                    since=since_of(args.since))
    name = conn.control.GetService(control_pb2.GetServiceRequest(service=args.service)).service.spec.name
    for message in conn.control.ServiceLogs(request):
        for warning in message.warnings:
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        for line in message.lines:
            task = line.task_id if args.no_trunc else line.task_id[:12]
            prefix = f"{name}.{line.slot or line.node_id}.{task}@{line.node_hostname}    | "
            write(line.stream, line.time, line.line, prefix, args.timestamps)
    return 0
