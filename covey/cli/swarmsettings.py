"""covey swarm update / inspect / unlock / unlock-key / ca: the swarm's settings and keys."""
import argparse
import base64
import datetime
import getpass
import json
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from covey.cli.progress import Display
from covey.errors import InvalidArgument
from covey.units import parse_duration
from proto import control_pb2, local_pb2
from proto import objects_pb2 as pb

DEFAULT_TASK_HISTORY = 5          # what the reaper keeps when the cluster sets nothing
DEFAULT_ADDR_POOL, DEFAULT_SUBNET_SIZE, DEFAULT_DATA_PATH_PORT = "10.0.0.0/8", 24, 4789
ROTATION_POLL = 0.5               # seconds between two looks at a root CA rotation's progress
ROTATION_TIMEOUT = "5m"  # `swarm ca --rotate` waits this long by default (--rotation-timeout)


def add_parsers(swarm) -> None:
    update = swarm.add_parser("update", help="change the swarm's settings")
    update.add_argument("--autolock", type=_bool, metavar="true|false",
                        help="seal the managers' keys at rest with an unlock key")
    update.add_argument("--cert-expiry", help="lifetime of node certificates (from their next renewal)")
    update.add_argument("--dispatcher-heartbeat", help="heartbeat period of the nodes (at least 100ms)")
    update.add_argument("--task-history-limit", type=int, metavar="N", help="finished tasks kept per slot")
    update.set_defaults(run=update_swarm)

    inspect = swarm.add_parser("inspect", help="show the swarm's settings (JSON)")
    inspect.add_argument("--format", choices=["json"], default="json")
    inspect.set_defaults(run=inspect_swarm)

    unlock = swarm.add_parser("unlock", help="unlock a locked manager (the key is asked for, or read on stdin)")
    unlock.set_defaults(run=unlock_swarm)

    key = swarm.add_parser("unlock-key", help="show or rotate the unlock key")
    key.add_argument("-q", "--quiet", action="store_true", help="only the key")
    key.add_argument("--rotate", action="store_true", help="make a new key; a restarted manager needs it")
    key.set_defaults(run=unlock_key)

    ca = swarm.add_parser("ca", help="show the root CA certificate, or rotate the root CA")
    ca.add_argument("--rotate", action="store_true", help="a new root CA; every node moves to it")
    ca.add_argument("-d", "--detach", action="store_true", help="do not wait for the nodes to move")
    ca.add_argument("-q", "--quiet", action="store_true", help="no progress")
    ca.add_argument("--rotation-timeout", default=ROTATION_TIMEOUT, help="how long to wait for the nodes to move")
    ca.set_defaults(run=root_ca)


def _bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid value {text!r}: give true or false")


# ---------------------------------------------------------------- update / inspect

def update_request(args) -> control_pb2.UpdateClusterRequest:
    """The settings given on the command line; InvalidArgument when none is."""
    request = control_pb2.UpdateClusterRequest()
    if args.dispatcher_heartbeat is not None:
        request.heartbeat_period_ns = parse_duration(args.dispatcher_heartbeat)
    if args.cert_expiry is not None:
        request.node_cert_expiry_ns = parse_duration(args.cert_expiry)
    if args.task_history_limit is not None:
        request.task_history_limit = args.task_history_limit
    if args.autolock is not None:
        request.autolock = args.autolock
    if not request.ListFields():
        raise InvalidArgument("nothing to update: give --autolock, --cert-expiry, --dispatcher-heartbeat "
                              "or --task-history-limit")
    return request


def update_swarm(conn, args) -> int:
    before = conn.control.GetCluster(control_pb2.GetClusterRequest()).cluster
    cluster = conn.control.UpdateCluster(update_request(args)).cluster
    print("Swarm updated.")
    if cluster.spec.autolock and not before.spec.autolock:
        key = conn.control.UnlockKey(control_pb2.UnlockKeyRequest()).unlock_key
        print(keep_safe(key))
    return 0


def _iso(nanos: int) -> str:
    return datetime.datetime.fromtimestamp(nanos / 1e9, datetime.UTC).isoformat(timespec="microseconds")


def swarm_json(cluster: pb.Cluster) -> dict:
    """The cluster in Docker's `swarm inspect` shape, as far as it applies."""
    spec, root, defaults = cluster.spec, cluster.root_ca, cluster.network_defaults
    history = spec.task_history_limit if spec.HasField("task_history_limit") else DEFAULT_TASK_HISTORY
    ca = x509.load_pem_x509_certificate(root.ca_cert_pem)
    public_key = ca.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return {
        "ID": cluster.id,
        "Version": {"Index": cluster.meta.version},
        "CreatedAt": _iso(cluster.meta.created_at_ns),
        "UpdatedAt": _iso(cluster.meta.updated_at_ns),
        "Spec": {
            "Name": spec.name,
            "Labels": dict(spec.labels),
            "Orchestration": {"TaskHistoryRetentionLimit": history},
            "Raft": {},  # Covey's Raft timings are coveyd settings, not the cluster's
            "Dispatcher": {"HeartbeatPeriod": spec.heartbeat_period_ns},
            "CAConfig": {"NodeCertExpiry": spec.node_cert_expiry_ns},
            "EncryptionConfig": {"AutoLockManagers": spec.autolock},
        },
        "TLSInfo": {
            "TrustRoot": root.ca_cert_pem.decode(),
            "CertIssuerSubject": base64.b64encode(ca.subject.public_bytes()).decode(),
            "CertIssuerPublicKey": base64.b64encode(public_key).decode(),
        },
        "RootRotationInProgress": bool(root.previous_ca_cert_pem),
        "DefaultAddrPool": list(defaults.addr_pools) or [DEFAULT_ADDR_POOL],
        "SubnetSize": defaults.subnet_size or DEFAULT_SUBNET_SIZE,
        "DataPathPort": defaults.data_path_port or DEFAULT_DATA_PATH_PORT,
    }


def inspect_swarm(conn, args) -> int:
    cluster = conn.control.GetCluster(control_pb2.GetClusterRequest()).cluster
    print(json.dumps([swarm_json(cluster)], indent=4))
    return 0


# ---------------------------------------------------------------- autolock

def keep_safe(key: str) -> str:
    return ("To unlock a swarm manager after it restarts, run `covey swarm unlock` and give it\n"
            "the following key:\n\n"
            f"    {key}\n\n"
            "Please remember to store this key in a password manager, since without it you\n"
            "will not be able to restart the manager.")


def read_unlock_key() -> str:
    """Asked for on a terminal (not echoed); else the first line of stdin."""
    if sys.stdin.isatty():
        text = getpass.getpass("Enter unlock key: ")
    else:
        text = sys.stdin.readline()
    if not text.strip():
        raise InvalidArgument("no unlock key given: type it at the prompt, or pipe it on stdin")
    return text.strip()


def unlock_swarm(conn, args) -> int:
    conn.node.SwarmUnlock(local_pb2.SwarmUnlockRequest(unlock_key=read_unlock_key()))
    print("Node unlocked.")
    return 0


def unlock_key(conn, args) -> int:
    key = conn.control.UnlockKey(control_pb2.UnlockKeyRequest(rotate=args.rotate)).unlock_key
    if args.quiet:
        print(key)
        return 0
    if args.rotate:
        print("Successfully rotated manager unlock key.\n")
    print(keep_safe(key))
    return 0


# ---------------------------------------------------------------- root CA

def rotation_line(cluster: pb.Cluster, nodes: list[pb.Node]) -> str:
    moved = sum(1 for n in nodes if n.cert_ca_digest == cluster.root_ca.ca_digest)
    return f"rotating root CA: {moved}/{len(nodes)} nodes"


def root_ca(conn, args) -> int:
    if not args.rotate:
        if args.detach:
            raise InvalidArgument("-d/--detach goes with --rotate")
        print(conn.control.GetCluster(control_pb2.GetClusterRequest()).cluster.root_ca.ca_cert_pem.decode(), end="")
        return 0
    timeout = parse_duration(args.rotation_timeout) / 1e9
    cluster = conn.control.RotateRootCA(control_pb2.RotateRootCARequest()).cluster
    if not args.detach:
        if _wait_rotation(conn, timeout, args.quiet):
            return 1
    print(cluster.root_ca.ca_cert_pem.decode(), end="")
    return 0


def _wait_rotation(conn, timeout: float, quiet: bool) -> int:
    """Until every node has a certificate of the new CA; 1 when they have not in time."""
    display, deadline = Display(), time.monotonic() + timeout
    while True:
        cluster = conn.control.GetCluster(control_pb2.GetClusterRequest()).cluster
        nodes = list(conn.control.ListNodes(control_pb2.ListNodesRequest()).nodes)
        line = rotation_line(cluster, nodes)
        if not cluster.root_ca.previous_ca_cert_pem:
            if not quiet:
                display.final([line.replace("rotating", "rotated")])
            return 0
        if time.monotonic() > deadline:
            print(f"Error: the root CA rotation goes on, not done in {timeout:g}s ({line})", file=sys.stderr)
            return 1
        if not quiet:
            display.show([line])
        time.sleep(ROTATION_POLL)  # a CLI polling its manager, not a test
