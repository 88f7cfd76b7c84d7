"""covey swarm init / join / join-token / leave / backup / restore."""
import datetime
import getpass
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from covey import addr, backupfile
from covey.cli import swarmsettings
from covey.errors import InvalidArgument, Unavailable
from covey.units import parse_duration
from proto import backup_pb2, control_pb2, local_pb2
from proto import objects_pb2 as pb

ROLE_NAMES = {"worker": pb.WORKER, "manager": pb.MANAGER}


def add_parser(subparsers) -> None:
    swarm = subparsers.add_parser("swarm", help="manage the swarm").add_subparsers(dest="swarm_cmd", required=True)

    init = swarm.add_parser("init", help="create a swarm with this node as its manager")
    init.add_argument("--advertise-addr", default="", help="ADDR[:PORT] other nodes reach this one on")
    init.add_argument("--listen-addr", default=f"0.0.0.0:{addr.API_PORT}", help="ADDR:PORT to listen on")
    init.add_argument("--dispatcher-heartbeat", help="heartbeat period of the nodes (default 1s)")
    init.add_argument("--cert-expiry", default="2160h", help="lifetime of node certificates")
    init.add_argument("--default-addr-pool", action="append", default=[], metavar="CIDR",
                      help="address pool overlay subnets are carved from (repeatable; default 10.0.0.0/8)")
    init.add_argument("--default-addr-pool-mask-length", type=int, default=0, metavar="N",
                      help="prefix length of each network's subnet (default 24)")
    init.add_argument("--data-path-port", type=int, default=0, metavar="PORT",
                      help="UDP port of the overlay's VXLAN traffic (default 4789)")
    init.add_argument("--autolock", action="store_true",
                      help="seal the managers' keys at rest: a restarted manager needs the unlock key")
    init.add_argument("--force-new-cluster", action="store_true",
                      help="on a surviving manager: a one-manager swarm with all the state")
    init.set_defaults(run=init_swarm)

    join = swarm.add_parser("join", help="join this node to a swarm")
    join.add_argument("--token", default="", help="the swarm's join token; without one, a worker of a swarm "
                      "restored elsewhere rejoins it at HOST:PORT with the certificate it holds")
    join.add_argument("--advertise-addr", default="")
    join.add_argument("--listen-addr", default="")
    join.add_argument("remote", metavar="HOST:PORT")
    join.set_defaults(run=join_swarm)

    token = swarm.add_parser("join-token", help="show or rotate a join token")
    token.add_argument("-q", "--quiet", action="store_true", help="only the token")
    token.add_argument("--rotate", action="store_true", help="make a new token; the old one stops working")
    token.add_argument("role", choices=sorted(ROLE_NAMES))
    token.set_defaults(run=join_token)

    swarmsettings.add_parsers(swarm)

    leave = swarm.add_parser("leave", help="leave the swarm")
    leave.add_argument("-f", "--force", action="store_true", help="leave even as the last manager")
    leave.set_defaults(run=leave_swarm)

    backup = swarm.add_parser("backup", help="write an encrypted backup of the swarm's state, or verify one")
    where = backup.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", help="file to write (default: covey-backup-CLUSTER-INDEX.cvyb)")
    where.add_argument("--verify", metavar="FILE", help="check that FILE is a readable backup (needs no swarm)")
    key = backup.add_mutually_exclusive_group()
    key.add_argument("--passphrase-file", help="read the passphrase from this file's first line "
                                               "(default: ask twice on the terminal)")
    key.add_argument("--with-unlock-key", action="store_true",
                     help="encrypt it with the swarm's unlock key (autolock on) instead of a passphrase; "
                          "restore it with that key as the passphrase")
    backup.set_defaults(run=backup_swarm, needs_daemon=lambda args: not args.verify)

    restore = swarm.add_parser("restore", help="make this node, in no swarm, the one manager of a backup's swarm")
    restore.add_argument("file", metavar="FILE", help="a backup written by 'covey swarm backup'")
    restore.add_argument("--advertise-addr", default="", help="ADDR[:PORT] other nodes reach this one on")
    restore.add_argument("--listen-addr", default="", help=f"ADDR:PORT to listen on (default 0.0.0.0:{addr.API_PORT})")
    restore.add_argument("--passphrase-file", help="read the passphrase from this file's first line "
                                                   "(default: ask on the terminal)")
    restore.set_defaults(run=restore_swarm)


def _join_command(role: str, token: str, addr: str) -> str:
    return (f"To add a {role} to this swarm, run the following command:\n\n"
            f"    covey swarm join --token {token} {addr}\n")


def init_swarm(conn, args) -> int:
    response = conn.node.SwarmInit(local_pb2.SwarmInitRequest(
        advertise_addr=args.advertise_addr, listen_addr=args.listen_addr,
        heartbeat_period_ns=parse_duration(args.dispatcher_heartbeat) if args.dispatcher_heartbeat else 0,
        force_new_cluster=args.force_new_cluster,
        cert_expiry_ns=parse_duration(args.cert_expiry), default_addr_pools=args.default_addr_pool,
        default_addr_pool_mask_length=_non_negative(args.default_addr_pool_mask_length,
                                                    "--default-addr-pool-mask-length"),
        data_path_port=_non_negative(args.data_path_port, "--data-path-port"), autolock=args.autolock))
    if args.force_new_cluster:
        print(f"Forced a new cluster: this node ({response.node_id}) is its only manager, with all the state.")
        return 0
    print(f"Swarm initialized: current node ({response.node_id}) is now a manager.\n")
    print(_join_command("worker", response.worker_token, response.manager_addr))
    print("To add a manager to this swarm, run 'covey swarm join-token manager' and follow the instructions.")
    if response.unlock_key:
        print("\n" + swarmsettings.keep_safe(response.unlock_key))
    return 0


def _non_negative(value: int, flag: str) -> int:
    if value < 0:
        raise InvalidArgument(f"invalid {flag} {value}: it cannot be negative")
    return value


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


# ---------------------------------------------------------------- backup


def backup_swarm(conn, args) -> int:
    if args.verify:
        return _verify(args)
    passphrase = "" if args.with_unlock_key else read_passphrase(args.passphrase_file, confirm=True)
    stream = conn.control.Backup(control_pb2.BackupRequest(passphrase=passphrase,
                                                           with_unlock_key=args.with_unlock_key))
    first = next(stream, None)  # a refusal comes here, before any file is made
    if first is None or first.WhichOneof("part") != "summary":
        raise Unavailable("the manager's answer did not start with the backup's summary")
    summary = first.summary
    path = Path(args.output or f"covey-backup-{summary.cluster_id[:12]}-{summary.raft_index}.cvyb")
    try:
        write_private(path, (chunk.data for chunk in stream), summary.size)
    except OSError as exc:
        stream.cancel()
        raise InvalidArgument(f"cannot write {path}: {exc.strerror}") from None
    key = "with the swarm's unlock key: give that key as the passphrase to restore it" \
        if args.with_unlock_key else "with the passphrase"
    print(f"Backup written to {path} ({summary.size} bytes, encrypted {key}).")
    print(describe(summary))
    return 0


def _verify(args) -> int:
    passphrase = read_passphrase(args.passphrase_file, confirm=False)
    path = Path(args.verify)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    backup = backupfile.read(data, passphrase, str(path))
    print(f"{path} is a readable backup.")
    print(describe(backupfile.summary_of(backup, len(data))))
    return 0


def describe(summary: backup_pb2.BackupSummary) -> str:
    taken = datetime.datetime.fromtimestamp(summary.created_at_ns / 1e9, datetime.UTC)
    return (f"Cluster ID:  {summary.cluster_id}\n"
            f"Raft index:  {summary.raft_index}\n"
            f"Taken at:    {taken:%Y-%m-%dT%H:%M:%SZ}\n"
            f"Objects:     {summary.clusters} cluster, {summary.nodes} nodes, {summary.services} services, "
            f"{summary.tasks} tasks, {summary.networks} networks")


def read_passphrase(passphrase_file: str | None, confirm: bool) -> str:
    """The first line of the file; else asked on a terminal (twice to confirm); never empty."""
    if passphrase_file:
        try:
            lines = Path(passphrase_file).read_text().splitlines()
        except OSError as exc:
            raise InvalidArgument(f"cannot read the passphrase file {passphrase_file}: {exc.strerror}") from None
        passphrase = lines[0] if lines else ""
    elif sys.stdin.isatty():
        passphrase = getpass.getpass("Passphrase: " if confirm else "Passphrase (or the unlock key it used): ")
        if confirm and passphrase and getpass.getpass("Passphrase again: ") != passphrase:
            raise InvalidArgument("the two passphrases differ")
    else:
        raise InvalidArgument("a backup needs a passphrase: give --passphrase-file FILE (its first line), "
                              "or run covey in a terminal to be asked for one (with autolock on, "
                              "--with-unlock-key uses the swarm's unlock key)")
    if not passphrase:
        raise InvalidArgument("the passphrase is empty: a backup needs one")
    return passphrase


def write_private(path: Path, chunks: Iterator[bytes], size: int) -> None:
    """Write the chunks to a temporary name (mode 0600), then rename it to `path`: a failed
    or short transfer leaves nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            written = sum(f.write(chunk) for chunk in chunks)
            if written != size:
                raise Unavailable(f"the backup stream ended after {written} of {size} bytes; nothing was written")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- restore

RESTORE_CHUNK = 1 << 20  # under gRPC's 4 MB message limit: a large backup goes in several


def restore_swarm(conn, args) -> int:
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}") from None
    passphrase = read_passphrase(args.passphrase_file, confirm=False)
    first = local_pb2.SwarmRestoreRequest(passphrase=passphrase, advertise_addr=args.advertise_addr,
                                          listen_addr=args.listen_addr)
    response = conn.node.SwarmRestore(restore_chunks(first, data))
    print(f"Swarm restored from {path}: this node ({response.node_id}) is its only manager, "
          f"at {response.manager_addr}.")
    print(describe(response.restored))
    if response.removed_managers:
        print(f"Removed the old managers (their certificates are denied): {', '.join(response.removed_managers)}")
    print("Workers of the old swarm rejoin with 'covey swarm leave --force' then 'covey swarm join --token "
          f"TOKEN {response.manager_addr}' (TOKEN: 'covey swarm join-token -q worker', as before the backup).")
    return 0


def restore_chunks(first: local_pb2.SwarmRestoreRequest, data: bytes) -> Iterator[local_pb2.SwarmRestoreRequest]:
    """The file in RESTORE_CHUNK pieces, the first also carrying `first`'s fields."""
    first.data = data[:RESTORE_CHUNK]
    yield first
    for offset in range(RESTORE_CHUNK, len(data), RESTORE_CHUNK):
        yield local_pb2.SwarmRestoreRequest(data=data[offset:offset + RESTORE_CHUNK])
