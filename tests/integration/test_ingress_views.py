"""The ingress network's view, which every node with a stream gets (manager/dispatcher/networkviews.py):
node endpoints, publishing services with their ports and labels, a Down node's endpoints no
longer serving, and one build of a change shared by every node. A real dispatcher and Raft store
in process, agents holding its streams (tests/integration/netviewkit.py)."""
import time

from manager.state.actions import create, delete, modify
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.netviewkit import Cluster, attached_service, attached_task, underlay_addr

ING = "ing"
CLIENT_IP = "covey.ingress.client-ip"


def node_addr(node_id: str) -> str:
    return f"10.0.0.{100 + int(node_id.lstrip('n'))}/24"


async def mesh(c: Cluster) -> None:
    """The ingress network; n1, n2, n3 with their ingress addresses; s1 publishing 8080 (ingress)
    and 9000/udp (host) with its task t1 on n1."""
    await c.add_nodes("n1", "n2", "n3")
    await c.store.write([create(pb.Network(id=ING, spec=specs.NetworkSpec(name="ingress", ingress=True),
                                           subnet="10.0.0.0/24", gateway="10.0.0.1", vni=4096))])
    for node_id in ("n1", "n2", "n3"):
        await modify(c.store, pb.Node, node_id,
                     lambda n: n.attachments.add(network_id=ING, addr=node_addr(n.id)), time.time_ns())
    service = attached_service("s1", vips={ING: "10.0.0.2/24"})
    service.spec.labels[CLIENT_IP] = "preserve"
    service.spec.labels["unrelated"] = "x"
    for port in (specs.PortConfig(published_port=8080, target_port=80),
                 specs.PortConfig(published_port=9000, target_port=53, protocol=specs.PortConfig.UDP,
                                  publish_mode=specs.PortConfig.HOST)):
        service.spec.endpoint.ports.append(port)
        service.ports.append(port)
    await c.write(service, attached_task("t1", "n1", (ING, "10.0.0.5/24")))


def test_every_node_gets_the_ingress_view_with_node_endpoints_and_ports_even_without_a_task(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await mesh(c)
            n2 = await c.connect("n2")  # runs no task
            assert not n2.tasks and list(n2.networks) == [ING]
            endpoints = n2.endpoints(ING)
            assert sorted(endpoints) == ["n1", "n2", "n3", "t1"]
            own = endpoints["n2"]
            assert (own.node_id, own.task_id, own.service_id, own.node_addr, own.addr, own.serving) == (
                "n2", "", "", underlay_addr("n2"), node_addr("n2"), True)
            assert endpoints["t1"].serving and endpoints["t1"].node_addr == underlay_addr("n1")
            s1 = n2.networks[ING].services["s1"]
            assert s1.vip == "10.0.0.2/24" and dict(s1.labels) == {CLIENT_IP: "preserve"}
            assert [(p.published_port, p.target_port, p.publish_mode) for p in s1.ports] == [
                (8080, 80, specs.PortConfig.INGRESS), (9000, 53, specs.PortConfig.HOST)]
    run(scenario())


def test_a_down_node_stops_serving_and_a_removed_one_leaves_the_view(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await mesh(c)
            n2 = await c.connect("n2")
            await modify(c.store, pb.Node, "n1", lambda n: setattr(n.status, "state", pb.NodeStatus.DOWN), 0)
            await c.until(lambda: not n2.endpoints(ING)["n1"].serving, what="n1's own endpoint not serving")
            await c.until(lambda: not n2.endpoints(ING)["t1"].serving, what="n1's task not serving")
            await modify(c.store, pb.Node, "n1", lambda n: setattr(n.status, "state", pb.NodeStatus.READY), 0)
            await c.until(lambda: n2.endpoints(ING)["t1"].serving, what="n1's task serving again")
            await c.store.write([delete(c.store.nodes.get("n3"))])
            await c.until(lambda: "n3" not in n2.endpoints(ING), what="n3 removed from n2's view")
    run(scenario())


def test_a_service_that_stops_publishing_leaves_the_ingress_view(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await mesh(c)
            n3 = await c.connect("n3")
            assert "s1" in n3.networks[ING].services

            def unpublish(service: pb.Service) -> None:
                del service.spec.endpoint.ports[:]
                del service.ports[:]
            await modify(c.store, pb.Service, "s1", unpublish, time.time_ns())
            await c.until(lambda: "s1" not in n3.networks[ING].services, what="s1 gone from the ingress view")
    run(scenario())


def test_a_change_on_the_ingress_is_built_once_for_every_node(tmp_path, run, monkeypatch):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await mesh(c)
            agents = [await c.connect(n) for n in ("n1", "n2", "n3")]
            views = c.dispatcher.views
            builds = []
            real = views._delta_view
            monkeypatch.setattr(views, "_delta_view", lambda *a: builds.append(a) or real(*a))
            await c.change_task("t1", state=pb.STARTING)
            for agent in agents:
                await c.until(lambda agent=agent: not agent.endpoints(ING)["t1"].serving,
                              what=f"{agent.node_id}: t1 not serving")
            assert len(builds) == 1
    run(scenario())
