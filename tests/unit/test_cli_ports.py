"""`covey service` published ports: -p/--publish in both forms, --publish-add/--publish-rm, the
PORTS columns of `service ls` and `service ps` (ranges collapsed as Docker), and the Endpoint of
`service inspect`."""
import json

import pytest

from covey.cli import ports, service
from covey.errors import InvalidArgument
from proto import control_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.support.builders import task
from tests.unit.test_cli_service import create, parse, update

TCP, UDP = specs.PortConfig.TCP, specs.PortConfig.UDP
INGRESS, HOST = specs.PortConfig.INGRESS, specs.PortConfig.HOST


def shown(spec: specs.ServiceSpec) -> list[tuple]:
    return [(p.published_port, p.target_port, p.protocol, p.publish_mode) for p in spec.endpoint.ports]


def test_publish_short_and_long_forms():
    s = create("-p", "8080:80", "-p", "8081:81/udp", "-p", "90", "-p", "7000-7001:70-71",
               "--publish", "published=9000,target=53,protocol=udp,mode=host", "--publish", "target=443,mode=host")
    assert shown(s) == [(8080, 80, TCP, INGRESS), (8081, 81, UDP, INGRESS), (0, 90, TCP, INGRESS),
                        (7000, 70, TCP, INGRESS), (7001, 71, TCP, INGRESS), (9000, 53, UDP, HOST), (0, 443, TCP, HOST)]


@pytest.mark.parametrize("value, says", [
    ("8080:70000", "target port 70000 is out of range"),
    ("web", "invalid port 'web'"),
    ("8080:80/icmp", "invalid protocol 'icmp'"),
    ("published=8080", "target= is required"),
    ("published=8080,target=80,proto=udp", "'proto=udp' is not one of"),
    ("published=8080,target=80,mode=bridge", "mode 'bridge' is not ingress or host"),
    ("8080-8082:80-81", "differ in length"),
])
def test_bad_publish_values_are_named(value, says):
    with pytest.raises(InvalidArgument, match=says):
        create("-p", value)


def test_publish_rm_by_published_port_or_as_published_and_publish_add_replaces():
    current = create("-p", "8080:80", "-p", "8080:80/udp", "-p", "9000:90", "-p", "9100:91")
    assert shown(update(current, "--publish-rm", "8080")) == [(8080, 80, UDP, INGRESS), (9000, 90, TCP, INGRESS),
                                                              (9100, 91, TCP, INGRESS)]
    assert shown(update(current, "--publish-rm", "8080/udp", "--publish-rm", "9000:90/tcp",
                        "--publish-rm", "published=9100,target=91")) == [(8080, 80, TCP, INGRESS)]
    replaced = update(current, "--publish-add", "published=9000,target=99,mode=host")
    assert shown(replaced)[-1] == (9000, 99, TCP, HOST) and len(replaced.endpoint.ports) == 4
    with pytest.raises(InvalidArgument, match="--publish-rm 7000: the service publishes no such port"):
        update(current, "--publish-rm", "7000")
    with pytest.raises(InvalidArgument, match="give a published port"):
        update(current, "--publish-rm", "http")


def test_consecutive_ports_collapse_into_ranges_as_docker_shows_them():
    given = ports.parse_all(["8080-8082:80-82", "8084:84", "9000:90/udp", "9001:91/udp", "7000:70", "7001:75"])
    assert ports.render(given) == ("*:7000->70/tcp, *:7001->75/tcp, *:8080-8082->80-82/tcp, *:8084->84/tcp, "
                                   "*:9000-9001->90-91/udp")
    assert ports.render([]) == ""


class Control:
    def __init__(self, services=(), tasks=()):
        self.services, self.tasks = list(services), list(tasks)

    def ListServices(self, request):
        return control_pb2.ListServicesResponse(services=self.services)

    def ListTasks(self, request):
        return control_pb2.ListTasksResponse(tasks=self.tasks)

    def ListNodes(self, request):
        return control_pb2.ListNodesResponse()

    def GetService(self, request):
        return control_pb2.GetServiceResponse(service=self.services[0])


def conn(**objects):
    return type("Conn", (), {"control": Control(**objects)})()


def allocated(*texts: str) -> pb.Service:
    spec = create(*(arg for t in texts for arg in ("-p", t)))
    svc = pb.Service(id="s1", spec=spec)
    for p in spec.endpoint.ports:
        svc.ports.append(p)
        if not p.published_port and p.publish_mode == INGRESS:
            svc.ports[-1].published_port = 30000
    return svc


def test_ls_shows_the_ingress_ports_and_ps_each_task_s_host_ports(capsys):
    svc = allocated("8080-8081:80-81", "90", "published=9000,target=53,mode=host")
    service.list_services(conn(services=[svc]), parse("service", "ls"))
    row = capsys.readouterr().out.splitlines()[1]
    assert row.endswith("*:8080-8081->80-81/tcp, *:30000->90/tcp")
    placed = task("t1", 1, service_name="web")
    placed.host_ports.append(specs.PortConfig(published_port=9000, target_port=53, publish_mode=HOST))
    service.list_tasks(conn(tasks=[placed]), parse("service", "ps", "web"))
    assert capsys.readouterr().out.splitlines()[1].endswith("*:9000->53/tcp")


def test_inspect_shows_the_endpoint_spec_ports_and_vips_as_docker(capsys):
    svc = allocated("90")
    svc.virtual_ips.add(network_id="ing", addr="10.0.0.2/24")
    service.inspect_services(conn(services=[svc]), parse("service", "inspect", "web"))
    (view,) = json.loads(capsys.readouterr().out)
    asked = {"Protocol": "tcp", "TargetPort": 90, "PublishedPort": 0, "PublishMode": "ingress"}
    assert view["Endpoint"] == {"Spec": {"Mode": "vip", "Ports": [asked]},
                                "Ports": [dict(asked, PublishedPort=30000)],
                                "VirtualIPs": [{"NetworkID": "ing", "Addr": "10.0.0.2/24"}]}


def test_publish_rm_finds_an_automatic_port_by_the_number_it_was_given():
    endpoint = specs.EndpointSpec(ports=[specs.PortConfig(target_port=8080), specs.PortConfig(target_port=9090)])
    given = [specs.PortConfig(target_port=8080, published_port=30001),
             specs.PortConfig(target_port=9090, published_port=30002)]
    ports.edit(endpoint, ["30001"], [], given)
    assert [p.target_port for p in endpoint.ports] == [9090]
    with pytest.raises(InvalidArgument, match="publishes no such port"):
        ports.edit(endpoint, ["30001"], [], given)
