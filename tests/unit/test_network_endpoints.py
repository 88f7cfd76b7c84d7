"""The pieces of the network views (manager/dispatcher/endpoints.py): endpoints and service entries."""
from manager.dispatcher.endpoints import STACK_LABEL, NodeFacts, endpoints_of, networks_used, services_of
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.support import builders

NODE = NodeFacts(addr="192.0.2.7", hostname="host-a")


def attached(state=pb.RUNNING, desired=pb.RUNNING, hostname="") -> pb.Task:
    t = builders.task("t0123456789abcdef", 2, service_id="s1", service_name="web", node_id="n1",
                      state=state, desired=desired)
    t.spec.container.hostname = hostname
    t.networks.add(network_id="net1", addr="10.0.1.5/24")
    t.networks.add(network_id="net2", addr="10.0.2.5/24")
    return t


def test_a_running_task_is_a_serving_endpoint_on_each_of_its_networks():
    eps = endpoints_of(attached(hostname="{{.Service.Name}}-{{.Task.Slot}}"), NODE)
    assert sorted(eps) == ["net1", "net2"]
    e = eps["net1"]
    assert (e.task_id, e.service_id, e.node_addr, e.addr, e.serving) == (
        "t0123456789abcdef", "s1", "192.0.2.7", "10.0.1.5/24", True)
    assert list(e.names) == ["web-2", "web.2.t0123456789abcdef"]


def test_the_default_hostname_is_the_short_task_id():
    assert endpoints_of(attached(), NODE)["net2"].names[0] == "t0123456789a"


def test_serving_needs_running_observed_and_desired():
    assert not endpoints_of(attached(state=pb.STARTING), NODE)["net1"].serving
    assert not endpoints_of(attached(desired=pb.READY), NODE)["net1"].serving


def test_finished_or_unassigned_tasks_are_no_endpoints_and_stopping_ones_do_not_serve():
    assert endpoints_of(attached(state=pb.COMPLETE), NODE) == {}
    assert endpoints_of(attached(state=pb.PENDING), NODE) == {}
    stopping = endpoints_of(attached(desired=pb.SHUTDOWN), NODE)
    assert stopping and not any(e.serving for e in stopping.values()), "it drains: a path, no new connection"


def test_a_stopping_task_still_uses_its_networks_until_it_finishes():
    assert networks_used(attached(desired=pb.SHUTDOWN)) == {"net1", "net2"}
    assert networks_used(attached(state=pb.FAILED)) == frozenset()
    assert networks_used(attached(state=pb.PENDING)) == frozenset()


def test_a_bad_hostname_template_leaves_the_task_name():
    assert list(endpoints_of(attached(hostname="{{.Nope}}"), NODE)["net1"].names) == ["web.2.t0123456789abcdef"]


def service(mode=specs.EndpointSpec.VIP) -> pb.Service:
    s = builders.service("s1", name="shop_web")
    s.spec.labels[STACK_LABEL] = "shop"
    s.spec.endpoint.mode = mode
    s.spec.task.networks.add(target="shop_front", aliases=["www"])
    s.spec.task.networks.add(target="net2")
    s.spec.task.networks.add(target="missing")
    s.virtual_ips.add(network_id="net1", addr="10.0.1.2/24")
    s.virtual_ips.add(network_id="net2", addr="10.0.2.2/24")
    return s


def resolve(target: str) -> str | None:
    return {"shop_front": "net1", "net2": "net2"}.get(target)


def test_a_service_is_on_each_network_it_names_with_its_vip_and_aliases():
    entries = services_of(service(), resolve)
    assert sorted(entries) == ["net1", "net2"]
    front = entries["net1"]
    assert (front.id, front.name, front.stack, front.vip, list(front.aliases)) == (
        "s1", "shop_web", "shop", "10.0.1.2/24", ["www"])
    assert entries["net2"].vip == "10.0.2.2/24"


def test_a_dnsrr_service_has_no_vip():
    assert {e.vip for e in services_of(service(specs.EndpointSpec.DNSRR), resolve).values()} == {""}
