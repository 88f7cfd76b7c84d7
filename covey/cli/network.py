"""covey network create / ls / inspect / rm / prune: overlay networks, with Docker's grammar,
columns and inspect JSON (plus covey's "VNI")."""
import datetime
import ipaddress
import json
import sys

import grpc

from covey.cli.output import table, to_json
from covey.errors import InvalidArgument, from_rpc_error
from proto import control_pb2, local_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

DRIVER = "overlay"
SCOPE = "swarm"
MTU_OPTION = "com.docker.network.driver.mtu"
INGRESS_SANDBOX = "ingress-sbox"   # Docker's key of a node's own endpoint on the ingress network
FILTER_KEYS = ("name", "id", "driver", "label", "scope")
PRUNE_WARNING = ("WARNING! This will remove all custom networks not used by at least one container.\n"
                 "Are you sure you want to continue? [y/N] ")


def add_parser(subparsers) -> None:
    network = subparsers.add_parser("network", help="manage overlay networks").add_subparsers(
        dest="network_cmd", required=True)

    create = network.add_parser("create", help="create a network")
    create.add_argument("-d", "--driver", default=DRIVER, help="only overlay")
    create.add_argument("--subnet", metavar="CIDR", help="default: a /24 from the swarm's address pool")
    create.add_argument("--gateway", metavar="IP")
    create.add_argument("--ip-range", metavar="CIDR", help="allocate container addresses from this part")
    create.add_argument("--attachable", action="store_true")
    create.add_argument("--internal", action="store_true", help="no access beyond the network")
    create.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("-o", "--opt", action="append", default=[], metavar="KEY=VALUE",
                        help=f"driver options: {MTU_OPTION}=N, encrypted")
    create.add_argument("name", metavar="NAME")
    create.set_defaults(run=create_network)

    ls = network.add_parser("ls", help="list networks")
    ls.add_argument("-q", "--quiet", action="store_true", help="only IDs")
    ls.add_argument("--format", choices=["table", "json"], default="table")
    ls.add_argument("--no-trunc", action="store_true")
    ls.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                    help=f"keep the networks that match ({', '.join(FILTER_KEYS)})")
    ls.set_defaults(run=list_networks)

    inspect = network.add_parser("inspect", help="show networks in detail")
    inspect.add_argument("networks", nargs="+", metavar="NETWORK")
    inspect.set_defaults(run=inspect_networks)

    rm = network.add_parser("rm", help="remove networks")
    rm.add_argument("networks", nargs="+", metavar="NETWORK")
    rm.set_defaults(run=remove_networks)

    prune = network.add_parser("prune", help="remove the networks no service uses")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    prune.set_defaults(run=prune_networks)


# ---------------------------------------------------------------- create

def build_network_spec(args) -> specs.NetworkSpec:
    if args.driver != DRIVER:
        raise InvalidArgument(f"network driver {args.driver!r} is not supported: covey networks are overlay")
    spec = specs.NetworkSpec(name=args.name, internal=args.internal, attachable=args.attachable)
    spec.driver_config.name = DRIVER
    spec.labels.update(_pairs(args.label, "--label"))
    spec.driver_config.options.update(_options(args.opt))
    config = _ipam_config(args.subnet, args.gateway, args.ip_range)
    if config is not None:
        spec.ipam.configs.append(config)
    return spec


def _ipam_config(subnet: str | None, gateway: str | None, ip_range: str | None) -> specs.IPAMConfig | None:
    if subnet is None:
        if gateway or ip_range:
            raise InvalidArgument("--gateway and --ip-range need a --subnet to belong to")
        return None
    network = _cidr(subnet, "--subnet")
    config = specs.IPAMConfig(subnet=str(network))
    if gateway:
        address = _address(gateway, "--gateway")
        if address not in network:
            raise InvalidArgument(f"invalid --gateway {gateway}: it is not in the subnet {network}")
        config.gateway = str(address)
    if ip_range:
        part = _cidr(ip_range, "--ip-range")
        if not part.subnet_of(network):  # type: ignore[arg-type]
            raise InvalidArgument(f"invalid --ip-range {ip_range}: it is not within the subnet {network}")
        config.range = str(part)
    return config


def _cidr(text: str, flag: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid {flag} {text!r}: {exc} (use a CIDR like 10.0.9.0/24)") from None


def _address(text: str, flag: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {flag} {text!r}: not an IP address") from None


def _options(items: list[str]) -> dict[str, str]:
    options = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid --opt {item!r}: use KEY=VALUE")
        if key == MTU_OPTION and not (value.isdigit() and int(value) > 0):
            raise InvalidArgument(f"invalid --opt {item!r}: the MTU must be a positive whole number")
        options[key] = value
    return options


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {flag} {item!r}: use KEY=VALUE")
        out[key] = value
    return out


def create_network(conn, args) -> int:
    spec = build_network_spec(args)
    print(conn.control.CreateNetwork(control_pb2.CreateNetworkRequest(spec=spec)).network.id)
    return 0


# ---------------------------------------------------------------- ls

def matches(network: pb.Network, filters: list[str]) -> bool:
    """Docker's --filter: the same key given twice is either one; different keys all hold."""
    wanted: dict[str, list[str]] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter {item!r}: use KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)}")
        wanted.setdefault(key, []).append(value)
    return all(any(_match(network, key, value) for value in values) for key, values in wanted.items())


def _match(network: pb.Network, key: str, value: str) -> bool:
    if key == "name":
        return value in network.spec.name
    if key == "id":
        return network.id.startswith(value)
    if key == "driver":
        return value == _driver(network)
    if key == "scope":
        return value == SCOPE
    label, sep, label_value = value.partition("=")
    return label in network.spec.labels and (not sep or network.spec.labels[label] == label_value)


def _driver(network: pb.Network) -> str:
    return network.spec.driver_config.name or DRIVER


def list_networks(conn, args) -> int:
    networks = [n for n in conn.control.ListNetworks(control_pb2.ListNetworksRequest()).networks
                if matches(n, args.filter)]
    networks.sort(key=lambda n: n.spec.name)
    if args.quiet:
        print("\n".join(n.id if args.no_trunc else n.id[:12] for n in networks))
    elif args.format == "json":
        print(to_json(networks))
    else:
        rows = [[n.id if args.no_trunc else n.id[:12], n.spec.name, _driver(n), SCOPE] for n in networks]
        print(table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"], rows))
    return 0


# ---------------------------------------------------------------- inspect

def _created(nanos: int) -> str:
    moment = datetime.datetime.fromtimestamp(nanos // 10**9, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos % 10**9:09d}Z"


def docker_view(network: pb.Network) -> dict:
    """The network as `docker network inspect` shows it, and the VXLAN id as "VNI"."""
    spec = network.spec
    given = spec.ipam.configs[0] if spec.ipam.configs else specs.IPAMConfig()
    config = {"Subnet": network.subnet or given.subnet, "Gateway": network.gateway or given.gateway}
    if given.range:
        config["IPRange"] = given.range
    return {
        "Name": spec.name, "Id": network.id, "Created": _created(network.meta.created_at_ns),
        "Scope": SCOPE, "Driver": _driver(network), "EnableIPv6": spec.ipv6_enabled,
        "IPAM": {"Driver": spec.ipam.driver.name or "default", "Options": dict(spec.ipam.driver.options) or None,
                 "Config": [config] if config["Subnet"] else []},
        "Internal": spec.internal, "Attachable": spec.attachable, "Ingress": spec.ingress,
        "Options": dict(spec.driver_config.options), "Labels": dict(spec.labels), "VNI": network.vni,
    }


def node_view(local: local_pb2.LocalNetwork | None) -> dict:
    """This node's part of the network, with the keys `docker network inspect` uses on a swarm
    node ("Containers", "Peers"), and covey's: the sandbox namespace, each container's
    interface, each peer's address and MAC, and the ingress network's published ports."""
    if local is None:
        return {"Containers": {}}     # no task of it here: nothing of it on this node
    containers = {c.container_id or c.task_id: {
        "Name": c.name, "EndpointID": c.task_id, "MacAddress": c.mac, "IPv4Address": c.address,
        "IPv6Address": "", "Interface": c.interface} for c in local.containers}
    if local.HasField("ingress_endpoint"):
        own = local.ingress_endpoint
        containers[INGRESS_SANDBOX] = {"Name": own.name, "EndpointID": local.network.id, "MacAddress": own.mac,
                                       "IPv4Address": own.address, "IPv6Address": "", "Interface": own.interface}
    view: dict = {"Containers": containers}
    if not local.sandbox:
        return view
    view["Peers"] = [{"Name": p.name, "IP": p.host, "EndpointIP": p.address, "MacAddress": p.mac}
                     for p in local.peers]
    view["Sandbox"] = local.sandbox
    if local.network.spec.ingress:
        view["PublishedPorts"] = [{"Protocol": p.protocol, "PublishedPort": p.published, "TargetPort": p.target,
                                   "PublishMode": p.mode, "Backends": list(p.backends)} for p in local.ports]
    view["Debug"] = {"Programmed": local.programmed, "ProgrammedPeers": dict(sorted(local.programmed_peers.items()))}
    return view


def _local_network(conn, ref: str) -> local_pb2.LocalNetwork | None:
    """The node's own part of the network, or None if the node has none (or is in no swarm)."""
    try:
        return conn.networks.Inspect(local_pb2.InspectLocalNetworkRequest(network=ref)).network
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
            return None
        raise


def inspect_one(conn, ref: str) -> dict:
    """The managers' view of the network and, through the node's own socket, the node's part.
    On a worker (no managers' view) the node's part alone, with the network as it was sent."""
    try:
        view = docker_view(conn.control.GetNetwork(control_pb2.GetNetworkRequest(network=ref)).network)
    except grpc.RpcError as exc:
        if not conn.local or exc.code() != grpc.StatusCode.PERMISSION_DENIED:
            raise
        local = _local_network(conn, ref)
        if local is None:
            raise
        return docker_view(local.network) | node_view(local)
    if conn.local:
        view |= node_view(_local_network(conn, view["Id"]))
    return view


def inspect_networks(conn, args) -> int:
    found, failed = [], False
    for ref in args.networks:
        try:
            found.append(inspect_one(conn, ref))
        except grpc.RpcError as exc:
            print(f"Error: {from_rpc_error(exc)}", file=sys.stderr)
            failed = True
    print(json.dumps(found, indent=4))
    return 1 if failed else 0


# ---------------------------------------------------------------- rm and prune

def remove_networks(conn, args) -> int:
    """Docker's: each one removed is named; each failure is an error and the exit is 1."""
    failed = False
    for ref in args.networks:
        try:
            conn.control.RemoveNetwork(control_pb2.RemoveNetworkRequest(network=ref))
            print(ref)
        except grpc.RpcError as exc:
            print(f"Error: {from_rpc_error(exc)}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


def confirmed(question: str) -> bool:
    print(question, end="", flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def prune_networks(conn, args) -> int:
    if not args.force and not confirmed(PRUNE_WARNING):
        return 0
    removed = conn.control.PruneNetworks(control_pb2.PruneNetworksRequest()).removed
    if removed:
        print("Deleted Networks:")
        print("\n".join(removed))
    return 0
