"""The agent's glue for the ingress mesh: the ingress view (every node gets it) and local
tasks' host_ports become the driver's sandbox, peers, reply routes and published ports."""
import asyncio

import pytest

from overlay import model
from overlay.simulated import SimulatedOverlay
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.unit.test_worker_network import RecordingDriver
from worker import network as wn

INGRESS = pb.Network(id="ing", spec=specs.NetworkSpec(name="ingress", ingress=True), subnet="10.255.0.0/16",
                     gateway="10.255.0.1/16", vni=4096)
HERE, THERE, GONE = "10.1.0.1", "10.1.0.2", "10.1.0.3"      # underlay addresses of three nodes
TCP, UDP, HOST = specs.PortConfig.TCP, specs.PortConfig.UDP, specs.PortConfig.HOST


def node(node_id, node_addr, addr, serving=True):
    return dpb.NetworkEndpoint(node_id=node_id, node_addr=node_addr, addr=addr, serving=serving)


def task_ep(task_id, service_id, addr, node_addr=THERE, serving=True):
    return dpb.NetworkEndpoint(task_id=task_id, service_id=service_id, node_addr=node_addr, addr=addr,
                               serving=serving)


def service(service_id, *ports, preserve=False):
    labels = {wn.CLIENT_IP_LABEL: wn.CLIENT_IP_PRESERVE} if preserve else {}
    return dpb.NetworkService(id=service_id, name=service_id, labels=labels, ports=[
        specs.PortConfig(protocol=proto, published_port=published, target_port=target)
        for proto, published, target in ports])


NODES = [node("node1", HERE, "10.255.0.2/16"), node("node2", THERE, "10.255.0.3/16"),
         node("node3", GONE, "10.255.0.4/16", serving=False)]
WEB = service("web", (TCP, 8080, 80), (UDP, 8053, 53))
KEEP = service("keep", (TCP, 8081, 80), preserve=True)
TASKS = [task_ep("t1", "web", "10.255.0.10/16"), task_ep("t2", "web", "10.255.0.11/16", node_addr=GONE),
         task_ep("t3", "keep", "10.255.0.12/16"), task_ep("t4", "keep", "10.255.0.13/16", serving=False)]


def complete(*views):
    return dpb.AssignmentsMessage(type=dpb.AssignmentsMessage.COMPLETE, networks=list(views))


def ingress_view(endpoints=(*NODES, *TASKS), services=(WEB, KEEP)):
    return dpb.NetworkView(network=INGRESS, complete=True, endpoints=list(endpoints), services=list(services))


def delta(**fields):
    return dpb.AssignmentsMessage(type=dpb.AssignmentsMessage.INCREMENTAL,
                                  networks=[dpb.NetworkView(network=pb.Network(id="ing"), **fields)])


def glue(driver, tmp_path):
    return wn.TaskNetworks(lambda: driver, HERE, None, tmp_path, "host1", "node1")


def calls(driver, name):
    return [c[1:] for c in driver.calls if c[0] == name]


def run(*steps):
    async def go():
        for step in steps:
            await step()
    asyncio.run(go())


def test_every_node_gets_the_sandbox_its_address_and_every_published_port(tmp_path):
    driver = RecordingDriver()
    networks = glue(driver, tmp_path)
    run(lambda: networks.apply(complete(ingress_view())))
    assert calls(driver, "ensure_network") == [(wn.plain_network(INGRESS),)], "with no local task"
    peers = {p.addr for p in calls(driver, "set_peers")[-1][1]}
    assert peers == {"10.255.0.3", "10.255.0.4", "10.255.0.10", "10.255.0.11", "10.255.0.12", "10.255.0.13"}, \
        "other nodes' own endpoints and every remote task; not this node's"
    ((vni, node_addr, ports, removed, whole),) = calls(driver, "set_mesh")
    assert (vni, node_addr, removed, whole) == (4096, "10.255.0.2", [], True)
    assert sorted(ports, key=lambda p: p.key) == [
        model.PublishedPort("tcp", 8080, 80, ("10.255.0.10",)),
        model.PublishedPort("tcp", 8081, 80, ("10.255.0.12",), preserve_client_ip=True),
        model.PublishedPort("udp", 8053, 53, ("10.255.0.10",))], \
        "t2's node is not serving, t4 is not serving: neither is a backend"


def test_a_delta_sends_only_the_ports_of_the_services_it_touched(tmp_path):
    driver = RecordingDriver()
    networks = glue(driver, tmp_path)
    narrowed = service("web", (TCP, 8080, 80))
    run(lambda: networks.apply(complete(ingress_view())),
        lambda: networks.apply(delta(endpoints=[task_ep("t5", "keep", "10.255.0.14/16")])),
        lambda: networks.apply(delta(services=[narrowed])),
        lambda: networks.apply(delta(removed_services=["keep"])))
    _, added, narrowed_call, removed = calls(driver, "set_mesh")
    assert added[2:] == ([model.PublishedPort("tcp", 8081, 80, ("10.255.0.12", "10.255.0.14"),
                                              preserve_client_ip=True)], [], False)
    assert narrowed_call[2:] == ([], [("udp", 8053)], False), "the port the service stopped publishing closes"
    assert removed[2:] == ([], [("tcp", 8081)], False)


def test_a_node_endpoint_change_recomputes_every_service_and_every_tasks_routes(tmp_path):
    driver = RecordingDriver()
    networks = glue(driver, tmp_path)
    task = pb.Task(id="t1", service_id="web", networks=[pb.NetworkAttachment(network_id="ing", addr="10.255.0.10/16")])
    run(lambda: networks.apply(complete(ingress_view())), lambda: networks.prepare(task),
        lambda: networks.apply(delta(endpoints=[node("node3", GONE, "10.255.0.4/16", serving=True)])))
    routes = calls(driver, "set_ingress_routes")
    assert routes[0] == ("t1", 4096, ["10.255.0.2", "10.255.0.3", "10.255.0.4"])
    assert len(routes) == 2, "the nodes changed: the task's reply routes are programmed again"
    last = calls(driver, "set_mesh")[-1]
    assert last[4] is True
    web = next(p for p in last[2] if p.key == ("tcp", 8080))
    assert web.backends == ("10.255.0.10", "10.255.0.11"), "node3 serves again: its task is a backend"


def test_host_ports_open_with_the_local_task_and_close_with_it(tmp_path):
    driver = RecordingDriver()
    networks = glue(driver, tmp_path)
    task = pb.Task(id="t9", service_id="pinned",
                   networks=[pb.NetworkAttachment(network_id="ing", addr="10.255.0.20/16")],
                   host_ports=[specs.PortConfig(protocol=TCP, published_port=9443, target_port=443,
                                                publish_mode=HOST)])
    run(lambda: networks.apply(complete(ingress_view())), lambda: networks.prepare(task),
        lambda: networks.release("t9"))
    opened, closed = calls(driver, "set_mesh")[1:]
    assert opened[2:] == ([model.PublishedPort("tcp", 9443, 443, ("10.255.0.20",), mode="host")], [], False)
    assert closed[2] == [model.PublishedPort("tcp", 9443, 9443, (), mode="host")], "no backend: closed"
    assert calls(driver, "remove_network") == [], "the ingress sandbox stays without local tasks"


def test_a_task_with_host_ports_off_the_ingress_network_fails_saying_why(tmp_path):
    other = pb.Network(id="n1", spec=specs.NetworkSpec(name="app"), subnet="10.0.1.0/24", gateway="10.0.1.1/24",
                       vni=4097)
    networks = glue(RecordingDriver(), tmp_path)
    task = pb.Task(id="t9", networks=[pb.NetworkAttachment(network_id="n1", addr="10.0.1.5/24")],
                   host_ports=[specs.PortConfig(protocol=TCP, published_port=9443, target_port=443,
                                                publish_mode=HOST)])
    view = dpb.NetworkView(network=other, complete=True)
    with pytest.raises(wn.NetworkError, match="host-mode ports but is not on the ingress network"):
        run(lambda: networks.apply(complete(ingress_view(), view)), lambda: networks.prepare(task))


def test_the_ingress_network_going_removes_its_sandbox(tmp_path):
    driver = RecordingDriver()
    networks = glue(driver, tmp_path)
    gone = dpb.AssignmentsMessage(type=dpb.AssignmentsMessage.INCREMENTAL, removed_networks=["ing"])
    run(lambda: networks.apply(complete(ingress_view())), lambda: networks.apply(gone))
    assert calls(driver, "remove_network") == [(4096,)]


def test_the_mesh_waits_for_this_nodes_own_address(tmp_path):
    driver = RecordingDriver()
    networks = glue(driver, tmp_path)
    run(lambda: networks.apply(complete(ingress_view(endpoints=TASKS))))
    assert calls(driver, "set_mesh") == []
    run(lambda: networks.apply(delta(endpoints=NODES)))
    assert calls(driver, "set_mesh")[0][1:2] == ("10.255.0.2",)


def test_the_kernel_work_of_a_change_does_not_grow_with_the_number_of_services(tmp_path):
    driver = SimulatedOverlay("cv", HERE)
    networks = glue(driver, tmp_path)
    services = [service(f"s{i}", (TCP, 10000 + i, 80)) for i in range(300)]
    endpoints = [task_ep(f"t{i}", f"s{i}", f"10.255.1.{i % 250 + 1}/16") for i in range(300)]
    run(lambda: networks.apply(complete(ingress_view(endpoints=[*NODES, *endpoints], services=services))))
    assert driver.mesh is not None and len(driver.mesh.ports or {}) == 300
    before = driver.changes
    run(lambda: networks.apply(delta(endpoints=[task_ep("t9000", "s7", "10.255.2.1/16")])))
    assert driver.changes - before == 2, "one peer and one port"
    assert (driver.mesh.ports or {})[("tcp", 10007)].backends == ("10.255.1.8", "10.255.2.1")
