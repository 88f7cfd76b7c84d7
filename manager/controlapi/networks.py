"""The control API for networks (`covey network create / ls / inspect / rm / prune`).

A network's subnet (from --subnet, or carved from the cluster's address pools) and VNI are
chosen here, at create; the allocator (manager/allocator) hands out its addresses. Two
concurrent creates could pick the same subnet or VNI: each writes the cluster object too,
with the version it read, so one of them conflicts and is planned again from what the
other stored (write_fresh).
"""
import re
import time

from covey.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from covey.ids import new_id
from manager.allocator import ipam, ports
from manager.allocator.index import holds_addresses, wants_addresses
from manager.state import store as st
from manager.state.actions import create, delete, remove, update, write_fresh
from manager.state.queries import cluster_of, find_network
from proto import control_pb2, store_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DRIVERS = ("", "overlay")
MTU_OPTION = "com.docker.network.driver.mtu"
MTU_RANGE = (576, 9000)        # IPv4's minimum to a jumbo frame
CREATE_ATTEMPTS = 10           # concurrent creates each conflict at most once per other create


def validate_spec(spec: specs.NetworkSpec) -> None:
    """What can be checked on the spec alone."""
    if not NAME.match(spec.name):
        raise InvalidArgument(f"invalid network name {spec.name!r}: 1 to 63 letters, digits, '_.-', "
                              "starting with a letter or digit")
    driver = spec.driver_config.name
    if driver not in DRIVERS:
        raise InvalidArgument(f"network {spec.name}: driver {driver!r} is not supported: "
                              "swarm networks use the overlay driver")
    if spec.ipv6_enabled:
        raise InvalidArgument(f"network {spec.name}: IPv6 overlays are not supported")
    if len(spec.ipam.configs) > 1:
        raise InvalidArgument(f"network {spec.name}: one IPAM configuration (one --subnet) at most")
    mtu = spec.driver_config.options.get(MTU_OPTION)
    if mtu is not None and not (mtu.isdigit() and MTU_RANGE[0] <= int(mtu) <= MTU_RANGE[1]):
        raise InvalidArgument(f"network {spec.name}: invalid {MTU_OPTION} {mtu!r}: "
                              f"a number from {MTU_RANGE[0]} to {MTU_RANGE[1]}")
    if spec.ipam.configs and not spec.ipam.configs[0].subnet:
        config = spec.ipam.configs[0]
        if config.gateway or config.range or config.reserved:
            raise InvalidArgument(f"network {spec.name}: --gateway, --ip-range and auxiliary "
                                  "addresses need a --subnet")


INGRESS_NAME = "ingress"


def ingress_of(store: st.Store) -> pb.Network | None:
    """The swarm's ingress network (a copy), None when it was removed."""
    return next((n for n in store.networks.list() if n.spec.ingress), None)


def default_ingress(defaults: pb.NetworkDefaults, nodes: list[pb.Node], now_ns: int) -> pb.Network:
    """The ingress network `swarm init` creates, as Docker does: the first subnet of the
    address pools, the first VNI."""
    pools = ipam.Pools.of(defaults)
    subnet = ipam.choose_subnet(pools, [], ipam.node_addresses(nodes))
    spec = specs.NetworkSpec(name=INGRESS_NAME, ingress=True, driver_config=specs.Driver(name="overlay"))
    return pb.Network(id=new_id(), meta=pb.Meta(created_at_ns=now_ns, updated_at_ns=now_ns), spec=spec,
                      subnet=str(subnet), gateway=str(ipam.first_host(subnet)), vni=ipam.FIRST_VNI)


def users_of(store: st.Store, network_id: str) -> tuple[list[str], list[pb.Task]]:
    """The services whose spec attaches to the network (names), and the tasks that hold an
    address on it or are still to get one."""
    services = sorted(s.spec.name for s in store.services.view()
                      if any(c.target == network_id for c in s.spec.task.networks))
    tasks = [t for t in store.tasks.view()
             if (holds_addresses(t) and any(a.network_id == network_id for a in t.networks))
             or (wants_addresses(t) and any(c.target == network_id for c in t.spec.networks))]
    return services, tasks


def new_network(network_id: str, spec: specs.NetworkSpec, networks: list[pb.Network],
                defaults: pb.NetworkDefaults, nodes: list[pb.Node]) -> pb.Network:
    """The network with its subnet, gateway and VNI, chosen apart from `networks` (what is
    stored now, and any planned in the same write: a stack deploy makes several) and from
    the nodes' addresses."""
    if any(n.spec.name == spec.name for n in networks):
        raise AlreadyExists(f"a network named {spec.name} already exists")
    pools = ipam.Pools.of(defaults)
    node_addrs = ipam.node_addresses(nodes)
    config = spec.ipam.configs[0] if spec.ipam.configs else specs.IPAMConfig()
    if config.subnet:
        subnet = ipam.parse_subnet(config.subnet)
        ipam.check_user_subnet(subnet, networks, pools, node_addrs)
    else:
        subnet = ipam.choose_subnet(pools, ipam.taken_subnets(networks), node_addrs)
    gateway = ipam.check_user_ipam(subnet, config.gateway, config.range, config.reserved.values())
    now = time.time_ns()
    network = pb.Network(id=network_id, meta=pb.Meta(created_at_ns=now, updated_at_ns=now), spec=spec,
                         subnet=str(subnet), gateway=str(gateway),
                         vni=ipam.next_vni(n.vni for n in networks))
    if ipam.AddressRange.of(network).capacity < 1:
        raise InvalidArgument(f"network {spec.name}: no address left to hand out in {subnet} "
                              "once its gateway and reserved addresses are set aside")
    return network


class NetworkAPI:
    def __init__(self, store: st.Store):
        self._store = store

    async def create(self, request: control_pb2.CreateNetworkRequest) -> control_pb2.CreateNetworkResponse:
        spec = specs.NetworkSpec()
        spec.CopyFrom(request.spec)
        validate_spec(spec)
        spec.driver_config.name = spec.driver_config.name or "overlay"
        network_id = new_id()
        created: list[pb.Network] = []

        def plan() -> list[store_pb2.StoreAction]:
            cluster = cluster_of(self._store)  # written back unchanged: its version guards the choice
            created[:] = [new_network(network_id, spec, self._store.networks.view(), cluster.network_defaults,
                                      self._store.nodes.view())]
            cluster.meta.updated_at_ns = created[0].meta.created_at_ns
            return [*self._replaced_ingress(spec), create(created[0]), update(cluster)]

        await write_fresh(self._store, plan, CREATE_ATTEMPTS, f"creating network {spec.name}")
        network = created[0]
        network.meta.version = 1
        return control_pb2.CreateNetworkResponse(network=network)

    def _replaced_ingress(self, spec: specs.NetworkSpec) -> list[store_pb2.StoreAction]:
        """`network create --ingress` replaces the ingress network (as Docker's does), while no
        service publishes a port. The new one gets its own subnet and VNI (the old one's are
        still counted), so nodes never mistake one for the other."""
        if not spec.ingress:
            return []
        old = ingress_of(self._store)
        if old is None:
            return []
        self._refuse_in_use(old)
        return [delete(old)]

    async def list(self, request: control_pb2.ListNetworksRequest) -> control_pb2.ListNetworksResponse:
        networks = sorted(self._store.networks.list(), key=lambda n: n.spec.name)
        return control_pb2.ListNetworksResponse(networks=networks)

    async def get(self, request: control_pb2.GetNetworkRequest) -> control_pb2.GetNetworkResponse:
        return control_pb2.GetNetworkResponse(network=find_network(self._store, request.network))

    async def remove(self, request: control_pb2.RemoveNetworkRequest) -> control_pb2.RemoveNetworkResponse:
        network = find_network(self._store, request.network)
        self._refuse_in_use(network)
        await remove(self._store, pb.Network, network.id)
        return control_pb2.RemoveNetworkResponse()

    def _refuse_in_use(self, network: pb.Network) -> None:
        services, tasks = users_of(self._store, network.id)
        name = network.spec.name
        if network.spec.ingress:
            services = sorted(s.spec.name for s in self._store.services.view() if ports.publishes(s.spec))
            if services:
                raise FailedPrecondition(f"the ingress network {name} is in use by service(s) publishing ports: "
                                         f"{', '.join(services)}")
        if services:
            raise FailedPrecondition(f"network {name} is in use by service(s) {', '.join(services)}")
        if tasks:
            raise FailedPrecondition(f"network {name} still has {len(tasks)} task(s) with addresses on it "
                                     "(their containers may still exist); try again once they have stopped")

    async def prune(self, request: control_pb2.PruneNetworksRequest) -> control_pb2.PruneNetworksResponse:
        """Every network no service uses and no task holds an address on (the ingress network
        stays, as Docker's does)."""
        removed = []
        for network in sorted(self._store.networks.list(), key=lambda n: n.spec.name):
            services, tasks = users_of(self._store, network.id)
            if network.spec.ingress or services or tasks:
                continue
            await remove(self._store, pb.Network, network.id)
            removed.append(network.spec.name)
        return control_pb2.PruneNetworksResponse(removed=removed)
