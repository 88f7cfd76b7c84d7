"""Published ports and the ingress network through the Control API of in-process swarms:
the ingress network of `swarm init`, ports allocated by the managers (conflicts named, automatic
ports unique under concurrent creates, a port coming back), the ingress attachments of tasks
and nodes, and host-mode ports kept one per node by the scheduler."""
import asyncio
import ipaddress

from proto import control_pb2, control_pb2_grpc
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.swarmtest import swarm_test
from tests.integration.test_networks import _channel_to, create_network, net_spec, networks, refused
from tests.support.builders import service_spec

INGRESS, HOST = specs.PortConfig.INGRESS, specs.PortConfig.HOST
UDP = specs.PortConfig.UDP


def published(name: str, *ports: tuple[int, int], mode: int = INGRESS, protocol: int = specs.PortConfig.TCP,
              replicas: int = 1) -> specs.ServiceSpec:
    """A service publishing (published, target) pairs."""
    spec = service_spec(name, replicas=replicas)
    for number, target in ports:
        spec.endpoint.ports.add(published_port=number, target_port=target, publish_mode=mode, protocol=protocol)
    return spec


def numbers(service: pb.Service) -> list[int]:
    return [p.published_port for p in service.ports]


async def service_names(swarm) -> list[str]:
    return [s.spec.name for s in (await swarm.control.ListServices(control_pb2.ListServicesRequest())).services]


@swarm_test(managers=1)
async def test_swarm_init_creates_the_ingress_network_and_it_is_replaced_only_while_unused(swarm):
    [ingress] = await networks(swarm)
    assert (ingress.spec.name, ingress.spec.ingress, ingress.subnet, ingress.vni) == (
        "ingress", True, "10.0.0.0/24", 4096)
    await swarm.create(published("web", (8080, 80)))
    again = net_spec("mesh")
    again.ingress = True
    said = "the ingress network ingress is in use by service(s) publishing ports: web"
    assert await refused(swarm.control.CreateNetwork(control_pb2.CreateNetworkRequest(spec=again))) == (
        "FAILED_PRECONDITION", said)
    assert await refused(swarm.control.RemoveNetwork(control_pb2.RemoveNetworkRequest(network="ingress"))) == (
        "FAILED_PRECONDITION", said)
    assert (await swarm.control.PruneNetworks(control_pb2.PruneNetworksRequest())).removed == []

    await swarm.control.RemoveService(control_pb2.RemoveServiceRequest(service="web"))

    async def replaced():
        try:
            return await create_network(swarm, again)
        except Exception:  # web's task may still hold its ingress address for a moment
            return None
    mesh = await swarm.until(replaced, what="the ingress network replaced")
    assert mesh.spec.ingress and (mesh.subnet, mesh.vni) != (ingress.subnet, ingress.vni)
    assert [n.spec.name for n in await networks(swarm)] == ["mesh"]


@swarm_test(managers=1)
async def test_a_taken_port_is_refused_naming_its_service_and_bad_input_stores_nothing(swarm):
    web = await swarm.create(published("web", (8080, 80), (0, 443)))
    assert numbers(web) == [8080, 30000]
    bad = {
        "taken": (published("api", (8080, 81)), "port 8080/tcp is already published by service web"),
        "taken auto": (published("api", (30000, 81)), "port 30000/tcp is already published by service web"),
        "host on ingress": (published("api", (8080, 81), mode=HOST), "already published by service web"),
        "range": (published("api", (70000, 80)), "invalid published port 70000"),
        "target": (published("api", (9000, 0)), "invalid target port 0"),
        "twice": (published("api", (9000, 80), (9000, 81)), "port 9000/tcp is published more than once"),
    }
    for label, (spec, says) in bad.items():
        code, message = await refused(swarm.create(spec))
        assert code == "INVALID_ARGUMENT" and says in message, (label, code, message)
    assert await service_names(swarm) == ["web"]
    udp = await swarm.create(published("dns", (8080, 53), protocol=UDP))  # another protocol: free
    assert numbers(udp) == [8080]
    updated = published("web", (8080, 80), (0, 443), (9090, 90))
    assert numbers(await swarm.update("web", updated)) == [8080, 30000, 9090]  # the automatic one kept
    code, message = await refused(swarm.update("dns", published("dns", (9090, 53))))
    assert (code, "port 9090/tcp is already published by service web" in message) == ("INVALID_ARGUMENT", True)


@swarm_test(managers=3)
async def test_automatic_ports_are_unique_under_concurrent_creates_through_different_managers(swarm):
    channels = [_channel_to(swarm, h) for h in ("m1", "m2", "m3")]
    try:
        stubs = [control_pb2_grpc.ControlStub(ch) for ch in channels]
        calls = [stubs[i % 3].CreateService(control_pb2.CreateServiceRequest(spec=published(f"s{i}", (0, 80))))
                 for i in range(9)]
        made = [r.service for r in await asyncio.gather(*calls)]
        fixed = [stubs[i].CreateService(control_pb2.CreateServiceRequest(spec=published(f"f{i}", (7000, 80))))
                 for i in range(3)]
        outcomes = await asyncio.gather(*fixed, return_exceptions=True)
    finally:
        await asyncio.gather(*(ch.close() for ch in channels))
    assert sorted(p for s in made for p in numbers(s)) == list(range(30000, 30009))
    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o.details() for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1 and len(losers) == 2
    holder = winners[0].service.spec.name
    assert all(f"port 7000/tcp is already published by service {holder}" in m for m in losers)


@swarm_test(managers=1)
async def test_a_port_comes_back_when_its_service_goes_or_stops_publishing_it(swarm):
    await swarm.create(published("a", (8080, 80)))
    await swarm.create(published("b", (8081, 80)))
    assert (await refused(swarm.create(published("c", (8080, 80)))))[0] == "INVALID_ARGUMENT"
    await swarm.control.RemoveService(control_pb2.RemoveServiceRequest(service="a"))
    assert numbers(await swarm.create(published("c", (8080, 80)))) == [8080]
    await swarm.update("b", published("b"))  # --publish-rm 8081
    assert numbers(await swarm.create(published("d", (8081, 80)))) == [8081]


def ingress_of(swarm_networks: list[pb.Network]) -> pb.Network:
    return next(n for n in swarm_networks if n.spec.ingress)


@swarm_test(managers=1, workers=2)
async def test_publishing_tasks_and_every_node_get_ingress_addresses_that_never_collide(swarm):
    ingress = ingress_of(await networks(swarm))
    front = await create_network(swarm, net_spec("front"))
    spec = published("web", (8080, 80), replicas=3)
    spec.task.networks.add(target="front")
    await swarm.create(spec)
    await swarm.create(published("edge", (0, 80), mode=HOST, replicas=2))
    await swarm.create(service_spec("quiet", replicas=1))
    tasks = await swarm.until(lambda: swarm.converged("web", 3), what="web: 3 running")
    edge = await swarm.until(lambda: swarm.converged("edge", 2), what="edge: 2 running")
    quiet = await swarm.until(lambda: swarm.converged("quiet", 1), what="quiet: 1 running")
    assert all([a.network_id for a in t.networks] == [front.id, ingress.id] for t in tasks)
    assert all([a.network_id for a in t.networks] == [ingress.id] for t in edge)  # host mode too
    assert not quiet[0].networks

    async def nodes_attached():
        nodes = (await swarm.control.ListNodes(control_pb2.ListNodesRequest())).nodes
        return nodes if all([a.network_id for a in n.attachments] == [ingress.id] for n in nodes) else None
    nodes = await swarm.until(nodes_attached, what="every node's ingress address")
    web = await swarm.until(lambda: _vips(swarm, "web", 2), what="web's VIPs on front and ingress")
    assert [v.network_id for v in web.virtual_ips] == [front.id, ingress.id]
    assert not (await swarm.get("edge")).virtual_ips  # no ingress-mode port: no VIP on it
    on_ingress = ([a.addr for t in tasks + edge for a in t.networks if a.network_id == ingress.id]
                  + [n.attachments[0].addr for n in nodes] + [web.virtual_ips[1].addr])
    assert len(on_ingress) == len(set(on_ingress)) == 3 + 2 + 3 + 1
    assert all(ipaddress.ip_interface(a).ip in ipaddress.ip_network(ingress.subnet) for a in on_ingress)
    assert sorted(t.host_ports[0].published_port for t in edge) == [30000, 30000]  # one per node, each free


async def _vips(swarm, name: str, count: int) -> pb.Service | None:
    service = await swarm.get(name)
    return service if len(service.virtual_ips) == count else None


@swarm_test(managers=1, workers=2, drain_managers=True)
async def test_host_mode_tasks_never_share_a_port_on_a_node_and_the_pending_one_says_why(swarm):
    await swarm.create(published("web", (8080, 80), mode=HOST, replicas=3))

    async def two_run_one_waits():
        tasks = await swarm.live("web")
        running = [t for t in tasks if t.status.state == pb.RUNNING]
        waiting = [t for t in tasks if t.status.state == pb.PENDING and t.explanation.filters]
        return (running, waiting) if len(running) == 2 and len(waiting) == 1 else None
    running, [waiting] = await swarm.until(two_run_one_waits, what="web: 2 running, 1 pending")
    assert len({t.node_id for t in running}) == 2
    assert all([(p.published_port, p.target_port) for p in t.host_ports] == [(8080, 80)] for t in running)
    drained, why = waiting.explanation.filters  # the manager is drained
    assert (drained.name, why.name, why.nodes_excluded) == ("drained", "host port 8080/tcp", 2)
    assert "publishes 8080/tcp in host mode" in why.reason
    # Another service may publish 8080 in host mode too, but finds no node free either.
    await swarm.create(published("api", (8080, 81), mode=HOST))
    [api] = await swarm.until(lambda: _pending_with_reason(swarm, "api"), what="api pending")
    assert [f.name for f in api.explanation.filters] == ["drained", "host port 8080/tcp"]
    await swarm.scale("web", 1)
    await swarm.until(lambda: swarm.converged("api", 1), what="api runs once a node is free")


async def _pending_with_reason(swarm, name: str) -> list[pb.Task] | None:
    tasks = [t for t in await swarm.live(name) if t.status.state == pb.PENDING and t.explanation.filters]
    return tasks or None
