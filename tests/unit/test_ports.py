"""Published ports, the managers' side (manager/allocator/ports.py and its use by the allocator's
plan and the scheduler's loop): checks, allocation and conflicts, ports chosen per task on a
node, ingress attachments of tasks and addresses of nodes."""
import pytest

from covey.errors import InvalidArgument
from manager.allocator import ports
from manager.allocator.index import Allocations
from manager.allocator.plan import plan_from_store
from manager.orchestrator.updater import _roll_back
from manager.scheduler import loop as scheduler
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.support.builders import node, service, task
from tests.unit.test_allocator import network, written

INGRESS, HOST, UDP = specs.PortConfig.INGRESS, specs.PortConfig.HOST, specs.PortConfig.UDP


def port(published: int, target: int = 80, mode: int = INGRESS, protocol: int = specs.PortConfig.TCP):
    return specs.PortConfig(published_port=published, target_port=target, publish_mode=mode, protocol=protocol)


def publishing(sid: str, *wanted: specs.PortConfig, allocated: bool = True) -> pb.Service:
    s = service(sid)
    s.spec.name = f"svc-{sid}"
    s.spec.endpoint.ports.extend(wanted)
    if allocated:
        s.ports.extend(ports.allocate(s.spec, sid, []))
    return s


def numbers(allocated) -> list[int]:
    return [p.published_port for p in allocated]


def test_bad_ports_are_refused_by_name():
    cases = {
        "invalid target port 0": [port(8080, 0)],
        "invalid target port 70000": [port(8080, 70000)],
        "invalid published port 65536": [port(65536)],
        "port 8080/tcp is published more than once": [port(8080, 80), port(8080, 81, mode=HOST)],
    }
    for says, wanted in cases.items():
        with pytest.raises(InvalidArgument, match=says):
            ports.validate(publishing("a", *wanted, allocated=False).spec)
    dnsrr = publishing("a", port(8080), allocated=False)
    dnsrr.spec.endpoint.mode = specs.EndpointSpec.DNSRR
    with pytest.raises(InvalidArgument, match="dnsrr endpoint mode cannot serve"):
        ports.validate(dnsrr.spec)
    ports.validate(publishing("a", port(8080), port(8080, protocol=UDP), allocated=False).spec)  # two protocols


def test_automatic_ports_take_the_first_free_of_the_range_and_keep_theirs_on_update():
    web = publishing("web", port(30000), port(0, 443))
    assert numbers(web.ports) == [30000, 30001]
    api = publishing("api", port(0), port(0, 81), allocated=False)
    assert numbers(ports.allocate(api.spec, "api", [web])) == [30002, 30003]
    web.spec.endpoint.ports.insert(0, port(0, 8443))  # an update: 443's number stays
    assert numbers(ports.allocate(web.spec, "web", [web])) == [30002, 30000, 30001]
    host = publishing("h", port(0, mode=HOST), allocated=False)
    assert numbers(ports.allocate(host.spec, "h", [web])) == [0]  # chosen per task


def test_a_held_port_is_refused_naming_its_holder_across_modes_but_not_host_with_host():
    web = publishing("web", port(8080), port(9000, mode=HOST))
    with pytest.raises(InvalidArgument, match="port 8080/tcp is already published by service svc-web "
                                              r"\(in ingress mode\)"):
        ports.allocate(publishing("a", port(8080, mode=HOST), allocated=False).spec, "a", [web])
    with pytest.raises(InvalidArgument, match=r"port 9000/tcp is already published by service svc-web \(in host"):
        ports.allocate(publishing("a", port(9000), allocated=False).spec, "a", [web])
    assert numbers(ports.allocate(publishing("a", port(9000, mode=HOST)).spec, "a", [web])) == [9000]
    assert numbers(ports.allocate(publishing("a", port(8080, protocol=UDP)).spec, "a", [web])) == [8080]
    assert numbers(ports.allocate(web.spec, "web", [web])) == [8080, 9000]  # its own


def test_host_ports_per_task_avoid_the_node_and_the_ingress_ports():
    wanted = [port(8080, mode=HOST), port(0, 81, mode=HOST), port(0, 82, mode=HOST), port(7000)]
    given = ports.host_ports(wanted, used={(30000, "tcp")}, avoid={(30001, "tcp")})
    assert [(p.published_port, p.target_port) for p in given] == [(8080, 80), (30002, 81), (30003, 82)]
    placed = task("t1", state=pb.RUNNING)
    placed.host_ports.extend(given)
    assert ports.same_host_ports(placed, wanted)
    assert not ports.same_host_ports(placed, [port(8081, mode=HOST), port(0, 81, mode=HOST), port(0, 82, mode=HOST)])


def test_the_scheduler_fills_host_ports_and_never_doubles_one_on_a_node():
    edge = publishing("edge", port(8080, mode=HOST), port(0, 53, mode=HOST, protocol=UDP))
    edge.spec.replicated.replicas = 3
    holder = publishing("web", port(30000, protocol=UDP))  # an ingress port: a host one avoids it
    pending = [task(f"t{i}", i, service_id="edge", state=pb.PENDING) for i in (1, 2, 3)]
    actions = scheduler.plan([edge, holder], pending, [node("n1"), node("n2")])
    placed = [t for t in written(actions) if t.node_id]
    assert sorted(t.node_id for t in placed) == ["n1", "n2"]
    assert all([(p.published_port, p.protocol) for p in t.host_ports] == [(8080, 0), (30001, UDP)] for t in placed)
    [waiting] = [t for t in written(actions) if not t.node_id]
    assert [f.name for f in waiting.explanation.filters] == ["host port 8080/tcp"]
    assert "n1 and n2 are running a task that publishes 8080/tcp in host mode" in waiting.explanation.text


def ingress(nid: str = "ing") -> pb.Network:
    n = network(nid, "10.0.0.0/24", name="ingress")
    n.spec.ingress = True
    return n


def test_tasks_of_publishing_services_join_the_ingress_and_nodes_get_their_addresses():
    web = publishing("web", port(8080))
    edge = publishing("edge", port(0, mode=HOST))
    quiet = service("quiet")
    tasks = [task("t1", service_id="web", state=pb.NEW), task("t2", service_id="edge", state=pb.NEW),
             task("t3", service_id="quiet", state=pb.NEW)]
    result, index = plan_from_store([ingress()], [web, edge, quiet], tasks, nodes=[node("n1"), node("n2")])
    by_id = {t.id: t for t in written(result.tasks)}
    assert [a.network_id for a in by_id["t1"].networks] == ["ing"] == [a.network_id for a in by_id["t2"].networks]
    assert not by_id["t3"].networks and all(t.status.state == pb.PENDING for t in by_id.values())
    vips = {s.id: [v.network_id for v in s.virtual_ips] for s in written(result.services)}
    assert vips == {"web": ["ing"]}  # host mode only: no VIP
    nodes = written(result.nodes)
    assert [[a.network_id for a in n.attachments] for n in nodes] == [["ing"], ["ing"]]
    taken = [a.addr for t in by_id.values() for a in t.networks] + [n.attachments[0].addr for n in nodes]
    taken += [s.virtual_ips[0].addr for s in written(result.services)]
    assert len(taken) == len(set(taken)) == 5
    rebuilt = Allocations.build([ingress()], written(result.services), list(by_id.values()), nodes)
    assert rebuilt.free_count("ing") == index.free_count("ing") and not rebuilt.nodes_to_check


def test_without_an_ingress_network_a_publishing_task_waits_and_says_why():
    result, _ = plan_from_store([], [publishing("web", port(8080))], [task("t1", service_id="web", state=pb.NEW)])
    [waiting] = written(result.tasks)
    assert waiting.status.state == pb.NEW and "the ingress network is missing" in waiting.explanation.text


def test_an_update_that_starts_publishing_replaces_tasks_and_a_rollback_keeps_its_ports():
    web = publishing("web", port(0))
    on_ingress = task("t1", service_id="web", state=pb.RUNNING)
    on_ingress.networks.add(network_id="ing", addr="10.0.0.3/24")
    assert ports.endpoint_current(on_ingress, web.spec)
    assert not ports.endpoint_current(task("t2", service_id="web", state=pb.RUNNING), web.spec)
    web.previous_spec.CopyFrom(web.spec)
    web.spec.endpoint.ports[0].target_port = 81
    rolled = _roll_back(web, "failed", 0).service
    assert [(p.published_port, p.target_port) for p in rolled.ports] == [(30000, 80)]
