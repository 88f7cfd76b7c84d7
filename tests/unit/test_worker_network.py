"""The agent's network glue: the managers' views become peers, names and VIPs."""
import asyncio

import pytest

from overlay import model
from proto import dispatcher_pb2 as dpb
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from worker import network as wn

NET = pb.Network(id="n1", spec=specs.NetworkSpec(name="appnet"), subnet="10.0.1.0/24", gateway="10.0.1.1/24",
                 vni=4097)
HERE, THERE = "10.1.0.1", "10.1.0.2"


def endpoint(task_id, service_id, addr, node_addr=THERE, serving=True, names=()):
    return dpb.NetworkEndpoint(task_id=task_id, service_id=service_id, node_addr=node_addr, addr=addr,
                               serving=serving, names=list(names))


def state(endpoints=(), services=()) -> wn.NetworkState:
    return wn.NetworkState(NET, {e.task_id: e for e in endpoints}, {s.id: s for s in services})


WEB = dpb.NetworkService(id="s1", name="shop_web", stack="shop", vip="10.0.1.2/24", aliases=["www"])
RR = dpb.NetworkService(id="s2", name="rr")


def test_dns_names_answer_vips_tasks_aliases_and_hostnames():
    view = wn.dns_view(state([endpoint("t1", "s1", "10.0.1.5/24", names=["Web-1"]),
                              endpoint("t2", "s1", "10.0.1.6/24", serving=False),
                              endpoint("t3", "s2", "10.0.1.7/24"), endpoint("t4", "s2", "10.0.1.8/24")],
                             [WEB, RR]))
    assert view.network_id == "n1"
    assert view.names["shop_web"] == ("10.0.1.2",) and view.names["www"] == ("10.0.1.2",)
    assert view.names["tasks.shop_web"] == ("10.0.1.5",), "a task that is not serving gets no traffic"
    assert view.names["rr"] == ("10.0.1.7", "10.0.1.8"), "dnsrr: every serving task"
    assert view.names["web-1"] == ("10.0.1.5",), "names are matched without case"


def test_an_encrypted_network_is_refused_saying_why():
    encrypted = pb.Network()
    encrypted.CopyFrom(NET)
    encrypted.spec.driver_config.options["encrypted"] = ""
    refused = "appnet is encrypted: .*no IPsec ESP and no WireGuard.*refusing to run it unencrypted"
    with pytest.raises(wn.NetworkError, match=refused):
        wn.plain_network(encrypted)


def test_a_network_becomes_plain_data_with_its_mtu_option():
    net = pb.Network()
    net.CopyFrom(NET)
    net.spec.driver_config.options[wn.MTU_OPT] = "1400"
    assert wn.plain_network(net) == model.Network("n1", 4097, "10.0.1.0/24", "10.0.1.1", mtu=1400)
    net.spec.driver_config.options[wn.MTU_OPT] = "big"
    with pytest.raises(wn.NetworkError, match="is not a number"):
        wn.plain_network(net)


def test_hosts_entries_become_the_executors_lines():
    task = pb.Task()
    task.spec.container.hosts.extend(["10.9.0.1 db db.local", "10.9.0.2 cache"])
    assert wn.hosts_of(task) == ["db:10.9.0.1", "db.local:10.9.0.1", "cache:10.9.0.2"]


class RecordingDriver:
    def __init__(self):
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        def record(*args):
            self.calls.append((name, *args))
            return f"/run/netns/x{args[0]}" if name == "create_endpoint_ns" else (set(), set())
        return record


def test_views_program_remote_peers_and_local_vips_only(tmp_path):
    driver = RecordingDriver()
    glue = wn.TaskNetworks(lambda: driver, HERE, None, tmp_path, "host1", "node1")
    complete = dpb.AssignmentsMessage(type=dpb.AssignmentsMessage.COMPLETE, networks=[dpb.NetworkView(
        network=NET, complete=True, services=[WEB],
        endpoints=[endpoint("t1", "s1", "10.0.1.5/24", node_addr=HERE), endpoint("t9", "s1", "10.0.1.9/24")])])
    task = pb.Task(id="t1", service_id="s1", networks=[pb.NetworkAttachment(network_id="n1", addr="10.0.1.5/24")])
    task.spec.container.labels["com.docker.stack.namespace"] = "shop"

    async def run():
        await glue.apply(complete)
        config = await glue.prepare(task)
        change = dpb.AssignmentsMessage(type=dpb.AssignmentsMessage.INCREMENTAL, networks=[dpb.NetworkView(
            network=pb.Network(id="n1"), endpoints=[endpoint("t8", "s1", "10.0.1.8/24")])])
        await glue.apply(change)
        await glue.release("t1")
        return config

    config = asyncio.run(run())
    assert config.netns == "/run/netns/xt1" and config.hosts[0] == "t1:10.0.1.5"
    assert (tmp_path / "resolv").exists() and not list((tmp_path / "resolv").iterdir()), "released with the task"
    peers = [c for c in driver.calls if c[0] == "set_peers"]
    assert peers[0][2] == [model.Peer("10.0.1.9", THERE)], "the local endpoint is no peer"
    assert peers[-1][2] == [model.Peer("10.0.1.9", THERE), model.Peer("10.0.1.8", THERE)]
    vips = [c for c in driver.calls if c[0] == "set_vips"]
    assert vips[-1] == ("set_vips", "t1", [model.Vip("10.0.1.2", ("10.0.1.5", "10.0.1.8", "10.0.1.9"))])
    assert driver.calls[-2:] == [("remove_endpoint_ns", "t1"), ("remove_network", 4097)], \
        "the sandbox goes with the last local endpoint"
