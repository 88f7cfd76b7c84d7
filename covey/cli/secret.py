"""covey secret / config create / ls / inspect / rm, with Docker's grammar, columns and
inspect JSON. A secret's data is never shown (the managers never send it); a config's is, in
base64 as Docker shows it."""
import base64
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc

from covey.cli.network import _created, _pairs
from covey.cli.output import table
from covey.cli.service import _ago
from covey.errors import InvalidArgument, from_rpc_error
from proto import control_pb2
from proto import specs_pb2 as specs

MAX_DATA = 500 * 1024   # bytes: the managers' limit, checked here before anything is sent


@dataclass(frozen=True)
class Kind:
    noun: str           # "secret" | "config"
    title: str          # "Secret" | "Config"

    def create(self, conn, name: str, data: bytes, labels: dict[str, str]):
        if self.noun == "secret":
            spec = specs.SecretSpec(name=name, data=data, labels=labels)
            return conn.control.CreateSecret(control_pb2.CreateSecretRequest(spec=spec)).secret
        config = specs.ConfigSpec(name=name, data=data, labels=labels)
        return conn.control.CreateConfig(control_pb2.CreateConfigRequest(spec=config)).config

    def list(self, conn) -> list:
        if self.noun == "secret":
            return list(conn.control.ListSecrets(control_pb2.ListSecretsRequest()).secrets)
        return list(conn.control.ListConfigs(control_pb2.ListConfigsRequest()).configs)

    def get(self, conn, ref: str):
        if self.noun == "secret":
            return conn.control.GetSecret(control_pb2.GetSecretRequest(secret=ref)).secret
        return conn.control.GetConfig(control_pb2.GetConfigRequest(config=ref)).config

    def remove(self, conn, ref: str) -> None:
        if self.noun == "secret":
            conn.control.RemoveSecret(control_pb2.RemoveSecretRequest(secret=ref))
        else:
            conn.control.RemoveConfig(control_pb2.RemoveConfigRequest(config=ref))


KINDS = {"secret": Kind("secret", "Secret"), "config": Kind("config", "Config")}


def add_parser(subparsers) -> None:
    for kind in KINDS.values():
        _add_kind(subparsers, kind)


def _add_kind(subparsers, kind: Kind) -> None:
    commands = subparsers.add_parser(kind.noun, help=f"manage {kind.noun}s").add_subparsers(
        dest=f"{kind.noun}_cmd", required=True)

    create = commands.add_parser("create", help=f"create a {kind.noun} from a file or stdin")
    create.add_argument("-l", "--label", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("name", metavar="NAME")
    create.add_argument("file", metavar="FILE|-", help="the file with the data, - for stdin")
    create.set_defaults(run=create_object, kind=kind)

    ls = commands.add_parser("ls", help=f"list {kind.noun}s")
    ls.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    ls.set_defaults(run=list_objects, kind=kind)

    inspect = commands.add_parser("inspect", help=f"show {kind.noun}s in detail")
    inspect.add_argument("refs", nargs="+", metavar=kind.noun.upper())
    inspect.set_defaults(run=inspect_objects, kind=kind)

    rm = commands.add_parser("rm", help=f"remove {kind.noun}s")
    rm.add_argument("refs", nargs="+", metavar=kind.noun.upper())
    rm.set_defaults(run=remove_objects, kind=kind)


def read_data(source: str) -> bytes:
    """The data of FILE, or of stdin for -; refused when empty or over the limit."""
    if source == "-":
        data = sys.stdin.buffer.read(MAX_DATA + 1)
    else:
        try:
            with open(Path(source), "rb") as f:
                data = f.read(MAX_DATA + 1)
        except OSError as exc:
            raise InvalidArgument(f"cannot read {source}: {exc.strerror}") from None
    if not data:
        raise InvalidArgument(f"{'stdin' if source == '-' else source} is empty: there is no data to store")
    if len(data) > MAX_DATA:
        raise InvalidArgument(f"{source}: more than {MAX_DATA} bytes (500 KiB), the limit")
    return data


def create_object(conn, args) -> int:
    data = read_data(args.file)
    print(args.kind.create(conn, args.name, data, _pairs(args.label, "--label")).id)
    return 0


def list_objects(conn, args) -> int:
    objects = sorted(args.kind.list(conn), key=lambda o: o.spec.name)
    if args.quiet:
        print("\n".join(o.id for o in objects))
        return 0
    rows = [[o.id, o.spec.name, _ago(o.meta.created_at_ns), _ago(o.meta.updated_at_ns)] for o in objects]
    print(table(["ID", "NAME", "CREATED", "UPDATED"], rows))
    return 0


def docker_view(kind: Kind, obj) -> dict:
    """As `docker secret / config inspect` shows it; a config's data in base64."""
    spec = {"Name": obj.spec.name, "Labels": dict(obj.spec.labels)}
    if kind.noun == "config":
        spec["Data"] = base64.b64encode(obj.spec.data).decode()
    return {"ID": obj.id, "Version": {"Index": obj.meta.version},
            "CreatedAt": _created(obj.meta.created_at_ns), "UpdatedAt": _created(obj.meta.updated_at_ns),
            "Spec": spec}


def inspect_objects(conn, args) -> int:
    found, failed = [], False
    for ref in args.refs:
        try:
            found.append(docker_view(args.kind, args.kind.get(conn, ref)))
        except grpc.RpcError as exc:
            print(f"Error: {from_rpc_error(exc)}", file=sys.stderr)
            failed = True
    print(json.dumps(found, indent=4))
    return 1 if failed else 0


def remove_objects(conn, args) -> int:
    """Docker's: each one removed is named; each failure is an error and the exit is 1."""
    failed = False
    for ref in args.refs:
        try:
            args.kind.remove(conn, ref)
            print(ref)
        except grpc.RpcError as exc:
            print(f"Error: {from_rpc_error(exc)}", file=sys.stderr)
            failed = True
    return 1 if failed else 0
