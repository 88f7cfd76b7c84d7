"""covey volume create / ls / inspect / rm / prune: the named volumes of this node (local
driver), with Docker's grammar, columns and JSON."""
import datetime
import json
import sys

import grpc

from covey.cli.output import table
from covey.cli.serviceflags import _pairs as labels_of  # KEY=VALUE flags, as service create reads them
from covey.errors import from_rpc_error
from covey.units import format_bytes
from proto import local_pb2

PRUNE_WARNING = ("WARNING! This will remove all local volumes not used by at least one container.\n"
                 "Are you sure you want to continue? [y/N] ")


def add_parser(subparsers) -> None:
    volume = subparsers.add_parser("volume", help="the named volumes of this node").add_subparsers(
        dest="volume_cmd", required=True)

    create = volume.add_parser("create", help="create a volume")
    create.add_argument("--label", action="append", default=[], metavar="K=V")
    create.add_argument("-d", "--driver", default="local", choices=["local"])
    create.add_argument("name", nargs="?", default="", metavar="VOLUME")
    create.set_defaults(run=create_volume)

    ls = volume.add_parser("ls", help="list volumes")
    ls.add_argument("-q", "--quiet", action="store_true", help="only names")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.set_defaults(run=list_volumes)

    inspect = volume.add_parser("inspect", help="show volumes in detail")
    inspect.add_argument("names", nargs="+", metavar="VOLUME")
    inspect.set_defaults(run=inspect_volumes)

    rm = volume.add_parser("rm", help="remove volumes (refused while a container uses one)")
    rm.add_argument("names", nargs="+", metavar="VOLUME")
    rm.set_defaults(run=remove_volumes)

    prune = volume.add_parser("prune", help="remove the volumes no container uses")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask")
    prune.set_defaults(run=prune_volumes)


def docker_view(v: local_pb2.LocalVolume) -> dict:
    """`docker volume inspect`'s JSON for one volume."""
    created = datetime.datetime.fromtimestamp(v.created_at, datetime.UTC).isoformat(timespec="seconds")
    return {"CreatedAt": created.replace("+00:00", "Z"), "Driver": v.driver, "Labels": dict(v.labels) or None,
            "Mountpoint": v.mountpoint, "Name": v.name, "Options": None, "Scope": "local"}


def create_volume(conn, args) -> int:
    request = local_pb2.CreateVolumeRequest(name=args.name, labels=labels_of(args.label, "--label"))
    print(conn.volumes.Create(request).volume.name)
    return 0


def list_volumes(conn, args) -> int:
    volumes = conn.volumes.List(local_pb2.ListVolumesRequest()).volumes
    if args.quiet:
        print("\n".join(v.name for v in volumes))
    elif args.format == "json":
        print(json.dumps([docker_view(v) for v in volumes], indent=2))
    else:
        print(table(["DRIVER", "VOLUME NAME"], [[v.driver, v.name] for v in volumes]))
    return 0


def inspect_volumes(conn, args) -> int:
    views = [docker_view(conn.volumes.Inspect(local_pb2.InspectVolumeRequest(name=n)).volume) for n in args.names]
    print(json.dumps(views, indent=2))
    return 0


def remove_volumes(conn, args) -> int:
    """Each one in turn, as Docker: those that can go go, and the others are named."""
    failed = 0
    for name in args.names:
        try:
            conn.volumes.Remove(local_pb2.RemoveVolumeRequest(name=name))
            print(name)
        except grpc.RpcError as exc:
            print(f"Error: remove {name}: {from_rpc_error(exc)}", file=sys.stderr)
            failed = 1
    return failed


def prune_volumes(conn, args) -> int:
    if not args.force:
        sys.stdout.write(PRUNE_WARNING)
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    pruned = conn.volumes.Prune(local_pb2.PruneVolumesRequest())
    if pruned.removed:
        print("Deleted Volumes:\n" + "\n".join(pruned.removed) + "\n")
    print(f"Total reclaimed space: {format_bytes(pruned.reclaimed_bytes)}")
    return 0
