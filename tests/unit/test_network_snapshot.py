"""A node's own part of a network (`covey network inspect` on a node), from what the glue
holds: the sandbox, the local containers, the peers and, for ingress, the node's endpoint and
published ports; the driver's own record beside it to cross-check."""
import asyncio

from overlay import model
from overlay.simulated import SimulatedOverlay
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.unit.test_worker_mesh import HERE, complete, ingress_view, service, task_ep
from worker import network as wn

APP = pb.Network(id="app", spec=specs.NetworkSpec(name="appnet"), subnet="10.0.1.0/24", gateway="10.0.1.1/24",
                 vni=4097)
WEB = service("web", (specs.PortConfig.TCP, 8080, 80))


def local_task(task_id, *attachments):
    task = pb.Task(id=task_id, service_id="web", service_name="web", slot=1)
    task.networks.extend(pb.NetworkAttachment(network_id=n, addr=a) for n, a in attachments)
    return task


def snapshot_after(tmp_path, *tasks, network_id):
    driver = SimulatedOverlay("t", HERE)
    glue = wn.TaskNetworks(lambda: driver, HERE, None, tmp_path, "host1", "node1")
    app_view = dpb.NetworkView(network=APP, complete=True, endpoints=[
        task_ep("r1", "web", "10.0.1.9/24"), task_ep("l1", "web", "10.0.1.5/24", node_addr=HERE)])
    app_view.endpoints[0].names.extend(["r1host", "web.2.r1"])

    async def go():
        await glue.apply(complete(ingress_view(services=[WEB]), app_view))
        for task in tasks:
            await glue.prepare(task)
        return await glue.snapshot(network_id)
    return asyncio.run(go())


def test_local_containers_and_remote_peers_of_a_network(tmp_path):
    task = local_task("l1", ("ing", "10.255.0.20/16"), ("app", "10.0.1.5/24"))
    snap = snapshot_after(tmp_path, task, network_id="app")
    assert snap.sandbox == "tn4097" and snap.network.spec.name == "appnet"
    assert snap.containers == [wn.AttachedContainer("l1", "web.1.l1", "eth1", "10.0.1.5/24", "02:42:0a:00:01:05")], \
        "its second network: eth1"
    assert snap.peers == [wn.RemotePeer("web.2.r1", "10.0.1.9", "02:42:0a:00:01:09", "10.1.0.2")], \
        "the local endpoint is on the bridge, not a peer"
    assert snap.ingress is None and snap.ports == []
    assert snap.driver.programmed and snap.driver.peers == {"10.0.1.9": "10.1.0.2"}, "the driver agrees"


def test_the_ingress_network_shows_the_node_endpoint_and_published_ports(tmp_path):
    snap = snapshot_after(tmp_path, network_id="ing")
    assert snap.containers == [], "no local task: the sandbox is there all the same"
    assert snap.ingress == wn.AttachedContainer("", "ingress-endpoint", "br0", "10.255.0.2/16", "02:42:0a:ff:00:02")
    assert snap.ports == [model.PublishedPort("tcp", 8080, 80, ("10.255.0.10",))]
    assert {p.host for p in snap.peers} == {"10.1.0.2", "10.1.0.3"}
    assert {p.name for p in snap.peers if p.addr == "10.255.0.3"} == {"node2"}, "a node's endpoint by its node ID"
    assert snap.driver.node_addr == "10.255.0.2" and set(snap.driver.ports) == set(snap.ports)


def test_a_network_without_a_sandbox_here_has_no_peers_and_an_unknown_one_no_snapshot(tmp_path):
    snap = snapshot_after(tmp_path, network_id="app")
    assert (snap.sandbox, snap.containers, snap.peers, snap.driver) == ("", [], [], None)
    assert snapshot_after(tmp_path, network_id="nope") is None


def test_find_takes_an_id_a_name_or_a_unique_prefix(tmp_path):
    glue = wn.TaskNetworks(lambda: SimulatedOverlay("t", HERE), HERE, None, tmp_path, "host1", "node1")
    asyncio.run(glue.apply(complete(ingress_view(), dpb.NetworkView(network=APP, complete=True))))
    assert glue.find("appnet").id == glue.find("app").id == glue.find("ap").id == "app"
    assert glue.find("ingress").id == "ing" and glue.find("zzz") is None
