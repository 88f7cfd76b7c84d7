"""`covey network`: flags into a NetworkSpec, Docker's table, inspect JSON, filters, rm's exit."""
import argparse
import io
import json

import grpc
import pytest

from covey.cli import main as cli_main
from covey.cli import network
from covey.errors import InvalidArgument
from proto import control_pb2, local_pb2
from proto import objects_pb2 as pb


def parse(*argv):
    parser = argparse.ArgumentParser()
    network.add_parser(parser.add_subparsers())
    return parser.parse_args(["network", *argv])


def spec(*flags):
    return network.build_network_spec(parse("create", *flags, "backend"))


def net(name="backend", id="n" * 25, **labels) -> pb.Network:
    n = pb.Network(id=id, subnet="10.0.1.0/24", gateway="10.0.1.1", vni=4097)
    n.spec.name = name
    n.spec.driver_config.name = "overlay"
    n.spec.labels.update(labels)
    n.meta.created_at_ns = 1_700_000_000_123_456_789
    return n


class RpcFailure(grpc.RpcError):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


class Control:
    def __init__(self, *networks):
        self.networks = {n.spec.name: n for n in networks}
        self.created, self.removed, self.pruned = [], [], 0

    def CreateNetwork(self, request):
        self.created.append(request.spec)
        return control_pb2.CreateNetworkResponse(network=pb.Network(id="new-id", spec=request.spec))

    def ListNetworks(self, request):
        return control_pb2.ListNetworksResponse(networks=list(self.networks.values()))

    def GetNetwork(self, request):
        if request.network not in self.networks:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"network {request.network} not found")
        return control_pb2.GetNetworkResponse(network=self.networks[request.network])

    def RemoveNetwork(self, request):
        if request.network == "busy":
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, "network busy is in use by service web")
        self.removed.append(request.network)
        return control_pb2.RemoveNetworkResponse()

    def PruneNetworks(self, request):
        self.pruned += 1
        return control_pb2.PruneNetworksResponse(removed=["old"])


def run(control, *argv):
    args = parse(*argv)
    return args.run(type("Conn", (), {"control": control, "local": False})(), args)


def test_create_takes_docker_s_flags():
    s = spec("-d", "overlay", "--subnet", "10.0.9.0/24", "--gateway", "10.0.9.254", "--ip-range", "10.0.9.128/25",
             "--attachable", "--internal", "--label", "team=a", "--opt", "com.docker.network.driver.mtu=1400",
             "--opt", "encrypted")
    assert (s.name, s.driver_config.name, s.attachable, s.internal) == ("backend", "overlay", True, True)
    assert dict(s.labels) == {"team": "a"}
    assert dict(s.driver_config.options) == {"com.docker.network.driver.mtu": "1400", "encrypted": ""}
    (config,) = s.ipam.configs
    assert (config.subnet, config.gateway, config.range) == ("10.0.9.0/24", "10.0.9.254", "10.0.9.128/25")
    assert not spec().ipam.configs          # the allocator picks the subnet


@pytest.mark.parametrize("flags, says", [
    (["-d", "bridge"], "driver 'bridge' is not supported"),
    (["--subnet", "10.0.9.1/24"], "invalid --subnet '10.0.9.1/24'.*host bits"),
    (["--subnet", "10.0.9.0/33"], "invalid --subnet"),
    (["--subnet", "10.0.9.0/24", "--gateway", "10.0.8.1"], "not in the subnet 10.0.9.0/24"),
    (["--subnet", "10.0.9.0/24", "--gateway", "ten"], "invalid --gateway 'ten': not an IP address"),
    (["--subnet", "10.0.9.0/24", "--ip-range", "10.0.0.0/16"], "not within the subnet"),
    (["--gateway", "10.0.9.1"], "need a --subnet"),
    (["--opt", "com.docker.network.driver.mtu=big"], "MTU must be a positive whole number"),
    (["--label", "=x"], "invalid --label"),
])
def test_bad_create_flags_are_named(flags, says):
    with pytest.raises(InvalidArgument, match=says):
        spec(*flags)


def test_create_prints_the_id():
    control = Control()
    assert run(control, "create", "backend") == 0
    assert control.created[0].name == "backend"


def test_ls_is_docker_s_table_and_filters(capsys):
    control = Control(net("web-net", id="a" * 25), net("db", id="b" * 25, tier="data"))
    run(control, "ls")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert lines[1].split() == ["b" * 12, "db", "overlay", "swarm"]
    assert lines[2].split() == ["a" * 12, "web-net", "overlay", "swarm"]
    run(control, "ls", "-q", "--filter", "name=web")
    assert capsys.readouterr().out.split() == ["a" * 12]
    run(control, "ls", "-q", "-f", "label=tier=data")
    assert capsys.readouterr().out.split() == ["b" * 12]
    run(control, "ls", "-q", "-f", "name=web", "-f", "name=db")
    assert len(capsys.readouterr().out.split()) == 2
    with pytest.raises(InvalidArgument, match="invalid filter 'colour=red'"):
        run(control, "ls", "-f", "colour=red")
    run(control, "ls", "--format", "json")
    assert {n["spec"]["name"] for n in json.loads(capsys.readouterr().out)} == {"web-net", "db"}


def test_inspect_is_docker_s_json_with_the_vni(capsys):
    n = net(team="a")
    n.spec.internal = True
    n.spec.driver_config.options["com.docker.network.driver.mtu"] = "1400"
    n.spec.ipam.configs.add(subnet="10.0.1.0/24", range="10.0.1.128/25")
    assert run(Control(n), "inspect", "backend") == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["Name"] == "backend" and shown["Id"] == n.id and shown["Scope"] == "swarm"
    assert shown["Created"] == "2023-11-14T22:13:20.123456789Z"
    assert shown["IPAM"]["Config"] == [{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1", "IPRange": "10.0.1.128/25"}]
    flags = (shown["Driver"], shown["Internal"], shown["Attachable"], shown["Ingress"])
    assert flags == ("overlay", True, False, False)
    assert shown["Options"] == {"com.docker.network.driver.mtu": "1400"} and shown["Labels"] == {"team": "a"}
    assert shown["VNI"] == 4097


def test_inspect_of_an_unknown_network_fails_and_shows_the_rest(capsys):
    assert run(Control(net()), "inspect", "backend", "nope") == 1
    captured = capsys.readouterr()
    assert [n["Name"] for n in json.loads(captured.out)] == ["backend"]
    assert "network nope not found" in captured.err


def test_rm_names_each_and_fails_for_each_failure(capsys):
    control = Control()
    assert run(control, "rm", "a", "busy", "b") == 1
    captured = capsys.readouterr()
    assert captured.out.split() == ["a", "b"] and control.removed == ["a", "b"]
    assert "Error: network busy is in use by service web" in captured.err


@pytest.mark.parametrize("answer, pruned", [("y\n", 1), ("n\n", 0), ("\n", 0)])
def test_prune_asks_first(monkeypatch, capsys, answer, pruned):
    control = Control()
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    assert run(control, "prune") == 0
    out = capsys.readouterr().out
    assert "Are you sure you want to continue? [y/N]" in out and control.pruned == pruned
    assert ("Deleted Networks:\nold" in out) == bool(pruned)


def test_prune_force_does_not_ask(capsys):
    control = Control()
    assert run(control, "prune", "-f") == 0
    assert control.pruned == 1 and "Are you sure" not in capsys.readouterr().out


def test_main_knows_the_network_group():
    args = cli_main.build_parser().parse_args(["network", "ls", "-q"])
    assert args.run is network.list_networks


# ---------------------------------------------------------------- inspect on a node

def local_part(network: pb.Network, sandbox="covn4097") -> local_pb2.LocalNetwork:
    local = local_pb2.LocalNetwork(network=network, sandbox=sandbox, programmed=True)
    local.containers.add(task_id="t1", name="web.1.t1", container_id="c" * 64, interface="eth0",
                         address="10.0.1.5/24", mac="02:42:0a:00:01:05")
    local.peers.add(name="web.2.t2", address="10.0.1.9", mac="02:42:0a:00:01:09", host="10.1.0.2")
    local.programmed_peers["10.0.1.9"] = "10.1.0.2"
    return local


class LocalNetworks:
    def __init__(self, *parts):
        self.parts = {p.network.id: p for p in parts} | {p.network.spec.name: p for p in parts}

    def Inspect(self, request):
        if request.network not in self.parts:
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"network {request.network} not found on this node")
        return local_pb2.InspectLocalNetworkResponse(network=self.parts[request.network])


def run_on_node(control, networks, *argv):
    args = parse(*argv)
    conn = type("Conn", (), {"control": control, "networks": networks, "local": True})()
    return args.run(conn, args)


def test_inspect_on_a_node_adds_its_containers_and_peers_as_docker_names_them(capsys):
    n = net()
    assert run_on_node(Control(n), LocalNetworks(local_part(n)), "inspect", "backend") == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["VNI"] == 4097, "the managers' view is still there"
    assert shown["Containers"] == {"c" * 64: {"Name": "web.1.t1", "EndpointID": "t1", "MacAddress": "02:42:0a:00:01:05",
                                              "IPv4Address": "10.0.1.5/24", "IPv6Address": "", "Interface": "eth0"}}
    assert shown["Peers"] == [{"Name": "web.2.t2", "IP": "10.1.0.2", "EndpointIP": "10.0.1.9",
                               "MacAddress": "02:42:0a:00:01:09"}]
    assert shown["Sandbox"] == "covn4097" and "PublishedPorts" not in shown
    assert shown["Debug"] == {"Programmed": True, "ProgrammedPeers": {"10.0.1.9": "10.1.0.2"}}


def test_inspect_of_the_ingress_network_shows_the_node_endpoint_and_ports(capsys):
    n = net("ingress")
    n.spec.ingress = True
    local = local_part(n)
    local.ingress_endpoint.MergeFrom(local_pb2.NetworkContainer(name="ingress-endpoint", interface="br0",
                                                                address="10.255.0.2/16", mac="02:42:0a:ff:00:02"))
    local.ports.add(protocol="tcp", published=8080, target=80, mode="ingress", backends=["10.255.0.10"])
    assert run_on_node(Control(n), LocalNetworks(local), "inspect", "ingress") == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["Containers"]["ingress-sbox"]["IPv4Address"] == "10.255.0.2/16"
    assert shown["Containers"]["ingress-sbox"]["Name"] == "ingress-endpoint"
    assert shown["PublishedPorts"] == [{"Protocol": "tcp", "PublishedPort": 8080, "TargetPort": 80,
                                        "PublishMode": "ingress", "Backends": ["10.255.0.10"]}]


def test_a_node_without_the_network_shows_no_containers_and_no_peers(capsys):
    assert run_on_node(Control(net()), LocalNetworks(), "inspect", "backend") == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["Containers"] == {} and "Peers" not in shown and "Sandbox" not in shown


class WorkerControl(Control):
    def GetNetwork(self, request):
        raise RpcFailure(grpc.StatusCode.PERMISSION_DENIED, "this node is not a swarm manager")


def test_on_a_worker_the_node_s_part_stands_alone(capsys):
    n = net()
    assert run_on_node(WorkerControl(), LocalNetworks(local_part(n)), "inspect", "backend", "other") == 1
    captured = capsys.readouterr()
    (shown,) = json.loads(captured.out)
    assert shown["Name"] == "backend" and shown["VNI"] == 4097 and len(shown["Peers"]) == 1
    assert "not a swarm manager" in captured.err, "a network the worker has no part of: the managers' refusal"
