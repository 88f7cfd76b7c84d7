"""The network views the dispatcher sends with the assignments (manager/dispatcher/networkviews.py):
a real dispatcher and Raft store in process, agents holding its streams (tests/integration/netviewkit.py)."""
from manager.dispatcher.endpoints import STACK_LABEL
from manager.state.actions import delete, modify
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.netviewkit import COMPLETE, INCREMENTAL, Cluster, attached_service, attached_task, underlay_addr

NET1, NET2 = "net1", "net2"


async def two_networks(c: Cluster) -> None:
    """net1: s1's tasks on n1 and n3 (and s1's VIP); net2: s2's task on n2."""
    await c.add_nodes("n1", "n2", "n3")
    await c.add_network(NET1, 1)
    await c.add_network(NET2, 2)
    await c.write(attached_service("s1", NET1, vips={NET1: "10.0.1.2/24"}), attached_service("s2", NET2))
    await c.write(attached_task("t1", "n1", (NET1, "10.0.1.5/24")),
                  attached_task("t3", "n3", (NET1, "10.0.1.6/24"), slot=2),
                  attached_task("t2", "n2", (NET2, "10.0.2.5/24"), service_id="s2"))


def test_a_node_gets_complete_views_of_its_networks_only(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await two_networks(c)
            n1 = await c.connect("n1")
            first = n1.messages[0]
            assert first.type == COMPLETE and [v.network.id for v in first.networks] == [NET1]
            view = first.networks[0]
            assert view.complete and view.network.vni == 4097 and view.network.subnet == "10.0.1.0/24"
            assert sorted(e.task_id for e in view.endpoints) == ["t1", "t3"]
            t3 = n1.endpoints(NET1)["t3"]
            assert (t3.node_addr, t3.addr, t3.serving, t3.service_id) == (
                underlay_addr("n3"), "10.0.1.6/24", True, "s1")
            assert list(t3.names) == ["t3", "svc-s1.2.t3"]
            assert [(s.id, s.name, s.vip) for s in view.services] == [("s1", "svc-s1", "10.0.1.2/24")]
    run(scenario())


def views_of(messages, network_id: str) -> list:
    return [v for m in messages for v in m.networks if v.network.id == network_id]


def test_a_task_added_elsewhere_reaches_the_node_as_an_incremental_endpoint(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await two_networks(c)
            n1, n2 = await c.connect("n1"), await c.connect("n2")
            seen1, seen2 = len(n1.messages), len(n2.messages)
            await c.write(attached_task("t4", "n2", (NET1, "10.0.1.7/24"), slot=3))
            await c.until(lambda: "t4" in n1.endpoints(NET1), what="t4 on n1")
            [view] = views_of(n1.since(seen1), NET1)
            assert not view.complete and [e.task_id for e in view.endpoints] == ["t4"]
            assert all(m.type == INCREMENTAL for m in n1.since(seen1))
            # n2 starts using net1: the whole view, in an increment, beside the task itself.
            await c.until(lambda: NET1 in n2.networks, what="net1 on n2")
            [message] = [m for m in n2.since(seen2) if m.networks]
            assert message.type == INCREMENTAL and [t.id for t in message.updated] == ["t4"]
            assert message.networks[0].complete and sorted(n2.endpoints(NET1)) == ["t1", "t3", "t4"]
    run(scenario())


def test_finishing_tasks_remove_their_endpoints_then_the_network(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await two_networks(c)
            n1 = await c.connect("n1")
            seen = len(n1.messages)
            await c.change_task("t3", state=pb.COMPLETE)
            await c.until(lambda: "t3" not in n1.endpoints(NET1), what="t3 gone from n1's view")
            assert [list(v.removed_endpoints) for v in views_of(n1.since(seen), NET1)] == [["t3"]]
            # Its own task told to stop: still an endpoint (its connections keep their path) but
            # serving no more, and the network stays while it runs.
            await c.change_task("t1", desired=pb.SHUTDOWN)
            await c.until(lambda: "t1" in n1.endpoints(NET1) and not n1.endpoints(NET1)["t1"].serving,
                          what="t1 no longer serving in n1's view")
            assert NET1 in n1.networks
            seen = len(n1.messages)
            await c.change_task("t1", state=pb.SHUTDOWN)
            await c.until(lambda: NET1 not in n1.networks, what="net1 removed from n1")
            assert [list(m.removed_networks) for m in n1.since(seen) if m.removed_networks] == [[NET1]]
    run(scenario())


def test_a_removed_task_removes_the_network_and_a_reconnect_gets_a_complete_set(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await two_networks(c)
            n2 = await c.connect("n2")
            await c.remove_task("t2")
            await c.until(lambda: not n2.networks and not n2.tasks, what="net2 and t2 removed from n2")
            await c.write(attached_task("t5", "n2", (NET1, "10.0.1.8/24"), slot=4))
            await c.change_task("t3", state=pb.FAILED)
            again = await c.connect("n2")  # a new session: the old stream ends
            first = again.messages[0]
            assert first.type == COMPLETE and [v.network.id for v in first.networks] == [NET1]
            assert first.networks[0].complete and sorted(again.endpoints(NET1)) == ["t1", "t5"]
    run(scenario())


def test_serving_follows_the_observed_state(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await two_networks(c)
            n1 = await c.connect("n1")
            await c.write(attached_task("t4", "n3", (NET1, "10.0.1.7/24"), slot=3, state=pb.STARTING))
            await c.until(lambda: "t4" in n1.endpoints(NET1), what="t4 on n1")
            assert not n1.endpoints(NET1)["t4"].serving
            await c.change_task("t4", state=pb.RUNNING)
            await c.until(lambda: n1.endpoints(NET1)["t4"].serving, what="t4 serving")
    run(scenario())


def test_endpoints_follow_their_nodes_address_and_services_their_vips(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await two_networks(c)
            n1 = await c.connect("n1")
            await c.set_node_addr("n3", "203.0.113.3")
            await c.until(lambda: n1.endpoints(NET1)["t3"].node_addr == "203.0.113.3", what="t3's new node address")
            await c.set_vip("s1", NET1, "10.0.1.3/24")
            await c.until(lambda: n1.networks[NET1].services["s1"].vip == "10.0.1.3/24", what="s1's new VIP")
    run(scenario())


def test_a_change_to_one_of_a_thousand_tasks_sends_one_endpoint(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await two_networks(c)
            await c.add_nodes(*(f"n{i}" for i in range(10, 20)))
            await c.write(*(attached_task(f"x{i}", f"n{10 + i % 10}", (NET1, f"10.0.{10 + i // 250}.{i % 250}/16"),
                                          slot=10 + i, state=pb.STARTING) for i in range(1000)))
            n1 = await c.connect("n1")
            assert len(n1.endpoints(NET1)) == 1002
            seen = len(n1.messages)
            await c.change_task("x500", state=pb.RUNNING)
            await c.until(lambda: n1.endpoints(NET1)["x500"].serving, what="x500 serving")
            [view] = views_of(n1.since(seen), NET1)
            assert [e.task_id for e in view.endpoints] == ["x500"]
            assert not (view.complete or view.removed_endpoints or view.services or view.removed_services)
    run(scenario())


def test_services_that_name_a_network_come_and_go_and_network_changes_are_sent(tmp_path, run):
    async def scenario():
        async with Cluster(tmp_path) as c:
            await two_networks(c)
            n1 = await c.connect("n1")
            by_name = attached_service("s9", "name-net1")  # the spec names it; dnsrr: no VIP
            by_name.spec.endpoint.mode = specs.EndpointSpec.DNSRR
            by_name.spec.labels[STACK_LABEL] = "shop"
            await c.write(by_name)
            await c.until(lambda: "s9" in n1.networks[NET1].services, what="s9 on n1")
            s9 = n1.networks[NET1].services["s9"]
            assert (s9.name, s9.stack, s9.vip) == ("svc-s9", "shop", "")
            await c.store.write([delete(c.store.services.get("s9"))])
            await c.until(lambda: "s9" not in n1.networks[NET1].services, what="s9 gone from n1")
            await modify(c.store, pb.Network, NET1, lambda n: n.spec.labels.update(x="1"), 0)
            await c.until(lambda: n1.networks[NET1].network.spec.labels.get("x") == "1", what="net1's new label")
            assert sorted(n1.endpoints(NET1)) == ["t1", "t3"]  # a partial view: the endpoints stay
    run(scenario())
