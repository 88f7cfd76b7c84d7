"""covey node ls / inspect / update / rm."""
import datetime

from covey.cli.output import table, to_json
from covey.errors import InvalidArgument
from proto import control_pb2, local_pb2
from proto import objects_pb2 as pb

STATUS = {pb.NodeStatus.UNKNOWN: "Unknown", pb.NodeStatus.DOWN: "Down",
          pb.NodeStatus.READY: "Ready", pb.NodeStatus.DISCONNECTED: "Disconnected"}
AVAILABILITY = {pb.ACTIVE: "Active", pb.PAUSE: "Pause", pb.DRAIN: "Drain"}
AVAILABILITY_NAMES = {name.lower(): value for value, name in AVAILABILITY.items()}
ROLE_NAMES = {"worker": pb.WORKER, "manager": pb.MANAGER}


def manager_status(node: pb.Node) -> str:
    if node.role != pb.MANAGER:
        return ""
    if node.manager_status.leader:
        return "Leader"
    reachability = node.manager_status.reachability
    text = {pb.ManagerStatus.REACHABLE: "Reachable", pb.ManagerStatus.UNREACHABLE: "Unreachable"}.get(
        reachability, "Unknown")
    return f"{text} ({node.manager_status.message})" if node.manager_status.message else text


def add_parser(subparsers) -> None:
    node = subparsers.add_parser("node", help="manage the swarm's nodes").add_subparsers(dest="node_cmd", required=True)

    ls = node.add_parser("ls", help="list nodes")
    ls.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.set_defaults(run=list_nodes)

    inspect = node.add_parser("inspect", help="show nodes in detail")
    inspect.add_argument("--pretty", action="store_true")
    inspect.add_argument("nodes", nargs="+", metavar="NODE")
    inspect.set_defaults(run=inspect_nodes)

    update = node.add_parser("update", help="change a node's availability or labels")
    update.add_argument("--availability", choices=sorted(AVAILABILITY_NAMES))
    update.add_argument("--label-add", action="append", default=[], metavar="KEY=VALUE")
    update.add_argument("--label-rm", action="append", default=[], metavar="KEY")
    update.add_argument("node", metavar="NODE")
    update.set_defaults(run=update_node)

    update.add_argument("--role", choices=["worker", "manager"])

    for verb, role in (("promote", "manager"), ("demote", "worker")):
        change = node.add_parser(verb, help=f"make nodes {role}s")
        change.add_argument("nodes", nargs="+", metavar="NODE")
        change.set_defaults(run=change_role, role=role, verb=verb)

    rm = node.add_parser("rm", help="remove nodes from the swarm")
    rm.add_argument("-f", "--force", action="store_true", help="remove even if the node is not down")
    rm.add_argument("nodes", nargs="+", metavar="NODE")
    rm.set_defaults(run=remove_nodes)


def _self_id(conn) -> str:
    return conn.node.Info(local_pb2.InfoRequest()).node_id if conn.local else ""


def list_nodes(conn, args) -> int:
    nodes = conn.control.ListNodes(control_pb2.ListNodesRequest()).nodes
    if args.quiet:
        print("\n".join(n.id for n in nodes))
    elif args.format == "json":
        print(to_json(nodes))
    else:
        me = _self_id(conn)
        rows = [[n.id + (" *" if n.id == me else ""), n.description.hostname, STATUS[n.status.state],
                 AVAILABILITY[n.spec.availability], manager_status(n), n.description.engine_version]
                for n in nodes]
        print(table(["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"], rows))
    return 0


def _time(nanos: int) -> str:
    return datetime.datetime.fromtimestamp(nanos / 1e9, datetime.UTC).isoformat(timespec="seconds")


def _pretty(node: pb.Node) -> str:
    d = node.description
    lines = [f"ID:\t\t\t{node.id}", f"Hostname:\t\t{d.hostname}",
             f"Joined at:\t\t{_time(node.meta.created_at_ns)}",
             "Status:", f" State:\t\t\t{STATUS[node.status.state]}",
             f" Availability:\t\t{AVAILABILITY[node.spec.availability]}",
             f" Address:\t\t{node.status.addr}"]
    if node.status.message:
        lines.append(f" Message:\t\t{node.status.message}")
    if node.role == pb.MANAGER:
        lines += ["Manager Status:", f" Address:\t\t{node.manager_status.api_addr}",
                  f" Raft Status:\t\t{manager_status(node)}",
                  f" Leader:\t\t{'Yes' if node.manager_status.leader else 'No'}"]
    if node.spec.labels:
        lines.append("Labels:")
        lines += [f" - {k}={v}" for k, v in sorted(node.spec.labels.items())]
    lines += ["Platform:", f" Operating System:\t{d.platform.os}", f" Architecture:\t\t{d.platform.architecture}",
              "Resources:", f" CPUs:\t\t\t{d.resources.nano_cpus // 10**9}",
              f" Memory:\t\t{d.resources.memory_bytes / 2**30:.4g}GiB",
              f"Engine Version:\t\t{d.engine_version}"]
    return "\n".join(line.expandtabs(8) for line in lines)


def inspect_nodes(conn, args) -> int:
    nodes = [conn.control.GetNode(control_pb2.GetNodeRequest(node=ref)).node for ref in args.nodes]
    print("\n\n".join(_pretty(n) for n in nodes) if args.pretty else to_json(nodes))
    return 0


def update_node(conn, args) -> int:
    labels = {}
    for item in args.label_add:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label {item!r}: use KEY=VALUE")
        labels[key] = value
    request = control_pb2.UpdateNodeRequest(node=args.node, labels_add=labels, labels_remove=args.label_rm)
    if args.availability:
        request.set_availability = True
        request.availability = AVAILABILITY_NAMES[args.availability]
    if args.role:
        request.set_role, request.role = True, ROLE_NAMES[args.role]
    print(conn.control.UpdateNode(request).node.id)
    return 0


def change_role(conn, args) -> int:
    for ref in args.nodes:
        request = control_pb2.UpdateNodeRequest(node=ref, set_role=True, role=ROLE_NAMES[args.role])
        conn.control.UpdateNode(request)
        print(f"Node {ref} {args.verb}d to a {args.role} in the swarm.")
    return 0


def remove_nodes(conn, args) -> int:
    for ref in args.nodes:
        conn.control.RemoveNode(control_pb2.RemoveNodeRequest(node=ref, force=args.force))
        print(ref)
    return 0
