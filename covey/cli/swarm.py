"""covey swarm init / join / join-token / leave."""
from covey import addr
from covey.units import parse_duration
from proto import control_pb2, local_pb2
from proto import objects_pb2 as pb

ROLE_NAMES = {"worker": pb.WORKER, "manager": pb.MANAGER}


def add_parser(subparsers) -> None:
    swarm = subparsers.add_parser("swarm", help="manage the swarm").add_subparsers(dest="swarm_cmd", required=True)

    init = swarm.add_parser("init", help="create a swarm with this node as its manager")
    init.add_argument("--advertise-addr", default="", help="ADDR[:PORT] other nodes reach this one on")
    init.add_argument("--listen-addr", default=f"0.0.0.0:{addr.API_PORT}", help="ADDR:PORT to listen on")
    init.add_argument("--dispatcher-heartbeat", help="heartbeat period of the nodes (default 1s)")
    init.add_argument("--cert-expiry", default="2160h", help="lifetime of node certificates")
    init.add_argument("--force-new-cluster", action="store_true",
                      help="on a surviving manager: a one-manager swarm with all the state")
    init.set_defaults(run=init_swarm)

    join = swarm.add_parser("join", help="join this node to a swarm")
    join.add_argument("--token", required=True)
    join.add_argument("--advertise-addr", default="")
    join.add_argument("--listen-addr", default="")
    join.add_argument("remote", metavar="HOST:PORT")
    join.set_defaults(run=join_swarm)

    token = swarm.add_parser("join-token", help="show or rotate a join token")
    token.add_argument("-q", "--quiet", action="store_true", help="only the token")
    token.add_argument("--rotate", action="store_true", help="make a new token; the old one stops working")
    token.add_argument("role", choices=sorted(ROLE_NAMES))
    token.set_defaults(run=join_token)

    leave = swarm.add_parser("leave", help="leave the swarm")
    leave.add_argument("-f", "--force", action="store_true", help="leave even as the last manager")
    leave.set_defaults(run=leave_swarm)


def _join_command(role: str, token: str, addr: str) -> str:
    return (f"To add a {role} to this swarm, run the following command:\n\n"
            f"    covey swarm join --token {token} {addr}\n")


def init_swarm(conn, args) -> int:
    response = conn.node.SwarmInit(local_pb2.SwarmInitRequest(
        advertise_addr=args.advertise_addr, listen_addr=args.listen_addr,
        heartbeat_period_ns=parse_duration(args.dispatcher_heartbeat) if args.dispatcher_heartbeat else 0,
        force_new_cluster=args.force_new_cluster,
        cert_expiry_ns=parse_duration(args.cert_expiry)))
    if args.force_new_cluster:
        print(f"Forced a new cluster: this node ({response.node_id}) is its only manager, with all the state.")
        return 0
    print(f"Swarm initialized: current node ({response.node_id}) is now a manager.\n")
    print(_join_command("worker", response.worker_token, response.manager_addr))
    print("To add a manager to this swarm, run 'covey swarm join-token manager' and follow the instructions.")
    return 0


def join_swarm(conn, args) -> int:
    response = conn.node.SwarmJoin(local_pb2.SwarmJoinRequest(token=args.token, remote_addr=args.remote,
                                                       advertise_addr=args.advertise_addr,
                                                       listen_addr=args.listen_addr))
    print(f"This node joined a swarm as a {pb.NodeRole.Name(response.role).lower()}.")
    return 0


def join_token(conn, args) -> int:
    response = conn.control.JoinToken(control_pb2.JoinTokenRequest(role=ROLE_NAMES[args.role], rotate=args.rotate))
    if args.quiet:
        print(response.token)
        return 0
    if args.rotate:
        print(f"Successfully rotated {args.role} join token.\n")
    print(_join_command(args.role, response.token, response.manager_addr))
    return 0


def leave_swarm(conn, args) -> int:
    conn.node.SwarmLeave(local_pb2.SwarmLeaveRequest(force=args.force))
    print("Node left the swarm.")
    return 0
