"""Networks through the Control API of in-process swarms: create / ls / inspect / rm / prune,
bad input refused with nothing stored, the allocator's addresses and VIPs on real task
lifecycles (NEW -> PENDING -> RUNNING), a full network explained, and allocations kept
through a leader change."""
import asyncio
import ipaddress

import grpc

from covey import tls
from covey.errors import InvalidArgument
from proto import control_pb2, control_pb2_grpc
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.simkit import Swarm
from tests.integration.swarmtest import swarm_test
from tests.support.builders import service_spec


def net_spec(name: str, subnet: str = "", gateway: str = "", ip_range: str = "", driver: str = "overlay",
             **options) -> specs.NetworkSpec:
    spec = specs.NetworkSpec(name=name, driver_config=specs.Driver(name=driver, options=options))
    if subnet or gateway or ip_range:
        spec.ipam.configs.add(subnet=subnet, gateway=gateway, range=ip_range)
    return spec


def on(spec: specs.ServiceSpec, *networks: str, dnsrr: bool = False) -> specs.ServiceSpec:
    spec.task.networks.extend(specs.NetworkAttachmentConfig(target=n) for n in networks)
    if dnsrr:
        spec.endpoint.mode = specs.EndpointSpec.DNSRR
    return spec


async def create_network(swarm, spec: specs.NetworkSpec) -> pb.Network:
    return (await swarm.control.CreateNetwork(control_pb2.CreateNetworkRequest(spec=spec))).network


async def networks(swarm) -> list[pb.Network]:
    return list((await swarm.control.ListNetworks(control_pb2.ListNetworksRequest())).networks)


async def refused(call) -> tuple[str, str]:
    """The status code and message of a call that must fail."""
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, exc.details()
    raise AssertionError("the call succeeded")


def addresses(tasks: list[pb.Task], network_id: str) -> list[str]:
    return [a.addr for t in tasks for a in t.networks if a.network_id == network_id]


@swarm_test(managers=1)
async def test_create_list_inspect_remove_and_prune(swarm):
    front = await create_network(swarm, net_spec("front"))
    back_spec = net_spec("back", "10.5.0.0/24", "10.5.0.254", "10.5.0.0/25", encrypted="")
    back_spec.labels["tier"] = "db"
    back_spec.attachable = back_spec.internal = True
    back = await create_network(swarm, back_spec)
    # swarm init's ingress network took the first subnet and VNI
    assert (front.subnet, front.gateway, front.vni, front.spec.driver_config.name) == (
        "10.0.1.0/24", "10.0.1.1", 4097, "overlay")
    assert (back.subnet, back.gateway, back.vni) == ("10.5.0.0/24", "10.5.0.254", 4098)

    got = (await swarm.control.GetNetwork(control_pb2.GetNetworkRequest(network="back"))).network
    assert got.spec.labels["tier"] == "db" and got.spec.internal and got.spec.attachable
    assert "encrypted" in got.spec.driver_config.options
    by_prefix = (await swarm.control.GetNetwork(control_pb2.GetNetworkRequest(network=front.id[:8]))).network
    assert by_prefix.id == front.id
    assert [n.spec.name for n in await networks(swarm)] == ["back", "front", "ingress"]

    await swarm.control.RemoveNetwork(control_pb2.RemoveNetworkRequest(network="front"))
    assert [n.spec.name for n in await networks(swarm)] == ["back", "ingress"]
    assert await refused(swarm.control.GetNetwork(control_pb2.GetNetworkRequest(network="front"))) == (
        "NOT_FOUND", "network front not found")
    pruned = await swarm.control.PruneNetworks(control_pb2.PruneNetworksRequest())
    assert list(pruned.removed) == ["back"] and [n.spec.name for n in await networks(swarm)] == ["ingress"]


@swarm_test(managers=3)
async def test_concurrent_creates_through_different_managers_never_share_a_subnet_or_vni(swarm):
    channels = [_channel_to(swarm, h) for h in ("m1", "m2", "m3")]
    try:
        stubs = [control_pb2_grpc.ControlStub(ch) for ch in channels]
        calls = [stubs[i % 3].CreateNetwork(control_pb2.CreateNetworkRequest(spec=net_spec(f"n{i}")))
                 for i in range(9)]
        created = [r.network for r in await asyncio.gather(*calls)]
    finally:
        await asyncio.gather(*(ch.close() for ch in channels))
    assert len({n.subnet for n in created}) == len({n.vni for n in created}) == 9


def _channel_to(swarm, hostname: str):
    node = swarm.nodes[hostname].node
    s = node.state
    return tls.secure_channel(node.membership.advertise_addr, s.ca_cert(), s.key(), s.cert())


@swarm_test(managers=1)
async def test_bad_input_is_refused_by_name_and_nothing_is_stored(swarm):
    await create_network(swarm, net_spec("taken", "10.7.0.0/16"))
    node_ip = "127.0.0.1"  # every node of the in-process swarm has this address
    bad = {
        "bridge": (net_spec("x", driver="bridge"), "driver 'bridge' is not supported"),
        "name": (net_spec("taken"), "a network named taken already exists"),
        "malformed": (net_spec("x", "10.8.0.0/33"), "invalid subnet '10.8.0.0/33'"),
        "host bits": (net_spec("x", "10.8.0.1/24"), "has host bits set"),
        "overlap": (net_spec("x", "10.7.3.0/24"), "subnet 10.7.3.0/24 overlaps network taken (10.7.0.0/16)"),
        "node": (net_spec("x", "127.0.0.0/24"), f"contains the address of a node ({node_ip})"),
        "gateway": (net_spec("x", "10.9.0.0/24", gateway="10.9.1.1"),
                    "gateway 10.9.1.1 is not a usable address of subnet 10.9.0.0/24"),
        "range": (net_spec("x", "10.9.0.0/24", ip_range="10.10.0.0/25"), "ip-range 10.10.0.0/25 is not within"),
        "gateway alone": (net_spec("x", gateway="10.9.0.1"), "need a --subnet"),
        "mtu": (net_spec("x", **{"com.docker.network.driver.mtu": "big"}), "invalid com.docker.network.driver.mtu"),
    }
    errors = {}
    for label, (spec, _) in bad.items():
        errors[label] = await refused(swarm.control.CreateNetwork(control_pb2.CreateNetworkRequest(spec=spec)))
    for label, (_, says) in bad.items():
        code, message = errors[label]
        assert code in ("INVALID_ARGUMENT", "ALREADY_EXISTS") and says in message, (label, code, message)
    assert [n.spec.name for n in await networks(swarm)] == ["ingress", "taken"]


@swarm_test(managers=1, workers=2)
async def test_tasks_get_unique_addresses_and_run_services_get_vips(swarm):
    front = await create_network(swarm, net_spec("front"))
    web = await swarm.create(on(service_spec("web", replicas=6), "front"))
    db = await swarm.create(on(service_spec("db", replicas=2), front.id[:10], dnsrr=True))
    assert [c.target for c in web.spec.task.networks] == [front.id] == [c.target for c in db.spec.task.networks]
    web_tasks = await swarm.until(lambda: swarm.converged("web", 6), what="web: 6 running")
    db_tasks = await swarm.until(lambda: swarm.converged("db", 2), what="db: 2 running")
    web = await swarm.until(lambda: _with_vips(swarm, "web"), what="web's VIP")
    vip = web.virtual_ips[0]
    taken = addresses(web_tasks + db_tasks, front.id) + [vip.addr]
    assert len(taken) == len(set(taken)) == 9
    subnet = ipaddress.ip_network(front.subnet)
    assert all(ipaddress.ip_interface(a).ip in subnet and a.endswith("/24") for a in taken)
    assert ipaddress.ip_interface(vip.addr).ip != ipaddress.ip_address(front.gateway)
    assert not (await swarm.get("db")).virtual_ips  # dnsrr: no VIP

    in_use = await refused(swarm.control.RemoveNetwork(control_pb2.RemoveNetworkRequest(network="front")))
    assert in_use == ("FAILED_PRECONDITION", "network front is in use by service(s) db, web")
    unknown = await refused(swarm.create(on(service_spec("api"), "nope")))
    assert unknown == ("NOT_FOUND", "network nope not found")
    twice = await refused(swarm.create(on(service_spec("api"), "front", front.id)))
    assert twice[0] == "INVALID_ARGUMENT" and "network front is attached more than once" in twice[1]
    static = service_spec("api")
    static.task.networks.add(target="front", addresses=["10.99.0.1"])
    outside = await refused(swarm.create(static))
    assert outside == ("INVALID_ARGUMENT", f"service api: address 10.99.0.1 is not in network front's subnet "
                                           f"{front.subnet}")
    assert [s.spec.name for s in (await swarm.control.ListServices(control_pb2.ListServicesRequest())).services] \
        == ["db", "web"]


async def _with_vips(swarm, name: str, count: int = 1) -> pb.Service | None:
    service = await swarm.get(name)
    return service if len(service.virtual_ips) == count else None


@swarm_test(managers=1, workers=1)
async def test_a_full_network_explains_the_waiting_task_and_an_address_freed_lets_it_run(swarm):
    await create_network(swarm, net_spec("tiny", "10.6.0.0/29"))  # .1 gateway; .2 to .6 for tasks
    await swarm.create(on(service_spec("a", replicas=3), "tiny", dnsrr=True))
    await swarm.until(lambda: swarm.converged("a", 3), what="a: 3 running")
    await swarm.create(on(service_spec("b", replicas=3), "tiny", dnsrr=True))
    reason = "no free address on network tiny (10.6.0.0/29 is full)"

    async def one_waits():
        tasks = await swarm.live("b")
        waiting = [t for t in tasks if t.status.state == pb.NEW]
        running = [t for t in tasks if t.status.state == pb.RUNNING]
        return waiting if len(waiting) == 1 and len(running) == 2 else None
    (waiting,) = await swarm.until(one_waits, what="b: 2 running, 1 waiting for an address")
    assert waiting.explanation.text == reason and waiting.status.err == reason and not waiting.networks

    await swarm.scale("a", 2)  # one address comes back once its task has stopped
    b_tasks = await swarm.until(lambda: swarm.converged("b", 3), what="b: 3 running")
    a_tasks = await swarm.until(lambda: swarm.converged("a", 2), what="a: 2 running")
    taken = addresses(a_tasks + b_tasks, b_tasks[0].networks[0].network_id)
    assert len(taken) == len(set(taken)) == 5


@swarm_test(managers=3, workers=2, drain_managers=True)  # tasks only on the workers
async def test_a_leader_change_keeps_allocations_without_duplicates(swarm):
    front = await create_network(swarm, net_spec("front"))
    await swarm.create(on(service_spec("web", replicas=4), "front"))
    before = await swarm.until(lambda: swarm.converged("web", 4), what="web: 4 running")
    vip = (await swarm.until(lambda: _with_vips(swarm, "web"), what="web's VIP")).virtual_ips[0].addr

    old = swarm.leader()
    await swarm.stop(old.hostname)
    new = await swarm.until(lambda: swarm.leader(), what="a new leader")
    await swarm.until(lambda: new.node.manager.store.leads_current(), what="the new leader current")
    await swarm.use(new.hostname)
    await swarm.scale("web", 10)
    after = await swarm.until(lambda: swarm.converged("web", 10), what="web: 10 running")
    taken = addresses(after, front.id)
    assert len(taken) == len(set(taken)) == 10
    assert set(addresses(before, front.id)) <= set(taken)  # the running ones kept theirs
    service = await swarm.get("web")
    assert [v.addr for v in service.virtual_ips] == [vip] and vip not in taken


@swarm_test(managers=1, workers=1)
async def test_adding_a_network_in_an_update_rolls_the_tasks_onto_it(swarm):
    front = await create_network(swarm, net_spec("front"))
    back = await create_network(swarm, net_spec("back"))
    await swarm.create(on(service_spec("web", replicas=2), "front"))
    await swarm.until(lambda: swarm.converged("web", 2), what="web: 2 running")
    changed = on(service_spec("web", replicas=2), "front", "back")
    await swarm.update("web", changed)

    async def rolled():
        tasks = await swarm.converged("web", 2)
        if tasks and all([a.network_id for a in t.networks] == [front.id, back.id] for t in tasks):
            return tasks
        return None
    tasks = await swarm.until(rolled, what="web's tasks on front and back")
    web = await swarm.until(lambda: _with_vips(swarm, "web", 2), what="web's VIP on both networks")
    assert [v.network_id for v in web.virtual_ips] == [front.id, back.id]
    assert len({a.addr for t in tasks for a in t.networks}) == 4


def test_swarm_init_network_defaults_are_kept_and_used(tmp_path, run):
    async def scenario():
        async with Swarm(tmp_path) as swarm:
            bad = await _init_refused(Swarm(tmp_path / "bad"), default_addr_pools=["10.0.0.0/8", "10.1.0.0/16"])
            await swarm.init("m1", default_addr_pools=["192.168.100.0/24", "192.168.101.0/24"],
                             default_addr_pool_mask_length=25, data_path_port=7789)
            cluster = (await swarm.control.GetCluster(control_pb2.GetClusterRequest())).cluster
            subnets = [(await create_network(swarm, net_spec(f"n{i}"))).subnet for i in range(3)]
            return bad, cluster.network_defaults, subnets

    bad, defaults, subnets = run(scenario())
    assert bad == "address pools 10.0.0.0/8 and 10.1.0.0/16 overlap"
    assert (list(defaults.addr_pools), defaults.subnet_size, defaults.data_path_port) == (
        ["192.168.100.0/24", "192.168.101.0/24"], 25, 7789)
    assert subnets == ["192.168.100.128/25", "192.168.101.0/25", "192.168.101.128/25"]  # ingress: the first


async def _init_refused(swarm: Swarm, **request) -> str:
    async with swarm:
        try:
            await swarm.init("m1", **request)
        except InvalidArgument as exc:
            assert swarm.nodes["m1"].node.membership is None  # nothing was set up
            return str(exc)
    raise AssertionError("swarm init succeeded")
