"""The allocator's pure parts: subnets from the pools, VNIs, address ranges, the plan
(addresses for NEW tasks, VIPs for services) and the index's bookkeeping under churn."""
import ipaddress

import pytest

from covey.errors import FailedPrecondition, InvalidArgument
from manager.allocator import ipam
from manager.allocator.index import Allocations, holds_addresses
from manager.allocator.plan import plan, plan_from_store
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.support.builders import node, service, task

NET = ipaddress.IPv4Network


def network(nid: str = "n1", subnet: str = "10.0.0.0/24", *, name: str = "", gateway: str = "",
            ip_range: str = "", vni: int = ipam.FIRST_VNI) -> pb.Network:
    n = pb.Network(id=nid, subnet=subnet, vni=vni, spec=specs.NetworkSpec(name=name or f"net-{nid}"))
    n.gateway = gateway or str(ipam.first_host(NET(subnet)))
    if ip_range:
        n.spec.ipam.configs.add(subnet=subnet, range=ip_range)
    return n


def on_networks(obj, *network_ids, aliases=()):
    """A task or service whose spec attaches to the networks (tasks: their own spec)."""
    spec = obj.spec.task if isinstance(obj, pb.Service) else obj.spec
    spec.networks.extend(specs.NetworkAttachmentConfig(target=n, aliases=aliases) for n in network_ids)
    return obj


def new(tid: str, *network_ids, service_id: str = "s1", created: int = 0) -> pb.Task:
    return on_networks(task(tid, service_id=service_id, state=pb.NEW, created=created), *network_ids)


def written(actions) -> list:
    return [getattr(a, a.WhichOneof("object")) for a in actions]


def test_subnets_are_carved_in_order_skipping_taken_ones_and_node_addresses():
    pools = ipam.Pools.of(pb.NetworkDefaults())
    taken = [NET("10.0.0.0/24"), NET("10.0.2.0/23")]
    assert ipam.choose_subnet(pools, taken, set()) == NET("10.0.1.0/24")
    assert ipam.choose_subnet(pools, taken + [NET("10.0.1.0/24")], set()) == NET("10.0.4.0/24")
    nodes = ipam.node_addresses([pb.Node(status=pb.NodeStatus(addr="10.0.1.9"))])
    assert ipam.choose_subnet(pools, taken, nodes) == NET("10.0.4.0/24")


def test_a_wide_taken_subnet_is_skipped_at_once_and_a_full_pool_says_so():
    pools = ipam.Pools.of(pb.NetworkDefaults(addr_pools=["192.168.0.0/22"], subnet_size=24))
    assert ipam.choose_subnet(pools, [NET("192.168.0.0/23")], set()) == NET("192.168.2.0/24")
    every = [NET(f"192.168.{i}.0/24") for i in range(4)]
    with pytest.raises(FailedPrecondition, match="no free /24 subnet left in the address pools 192.168.0.0/22"):
        ipam.choose_subnet(pools, every, set())
    big = ipam.Pools.of(pb.NetworkDefaults())
    assert ipam.choose_subnet(big, [NET("10.0.0.0/9")], set()) == NET("10.128.0.0/24")


def test_vnis_start_at_4096_and_fill_gaps():
    assert ipam.next_vni([]) == 4096
    assert ipam.next_vni([4096, 4097, 4099]) == 4098


@pytest.mark.parametrize("defaults, problem", [
    (pb.NetworkDefaults(addr_pools=["10.0.0.0/33"]), "invalid address pool"),
    (pb.NetworkDefaults(addr_pools=["10.0.0.1/8"]), "host bits set"),
    (pb.NetworkDefaults(addr_pools=["10.0.0.0/8", "10.1.0.0/16"]), "overlap"),
    (pb.NetworkDefaults(subnet_size=30), "mask-length 30"),
    (pb.NetworkDefaults(addr_pools=["10.0.0.0/26"], subnet_size=24), "smaller than one /24"),
    (pb.NetworkDefaults(data_path_port=80), "data-path-port 80"),
])
def test_bad_defaults_are_refused_naming_the_problem(defaults, problem):
    with pytest.raises(InvalidArgument, match=problem):
        ipam.validate_defaults(defaults)


def test_user_subnet_checks():
    others = [network("n1", "10.0.0.0/24", name="front")]
    pools = ipam.Pools.of(pb.NetworkDefaults())
    with pytest.raises(InvalidArgument, match=r"overlaps network front \(10.0.0.0/24\)"):
        ipam.check_user_subnet(NET("10.0.0.0/16"), others, pools, set())
    with pytest.raises(InvalidArgument, match="contains the address of a node"):
        ipam.check_user_subnet(NET("192.168.5.0/24"), others, pools, {ipaddress.IPv4Address("192.168.5.20")})
    ipam.check_user_subnet(NET("10.0.1.0/24"), others, pools, set())
    with pytest.raises(InvalidArgument, match="gateway 10.1.0.1 is not a usable address of subnet 10.0.1.0/24"):
        ipam.check_user_ipam(NET("10.0.1.0/24"), "10.1.0.1", "", ())
    with pytest.raises(InvalidArgument, match="ip-range 10.0.2.0/25 is not within"):
        ipam.check_user_ipam(NET("10.0.1.0/24"), "", "10.0.2.0/25", ())
    assert str(ipam.check_user_ipam(NET("10.0.1.0/24"), "", "10.0.1.128/25", ())) == "10.0.1.1"


def test_tasks_get_one_unique_address_per_network_in_spec_order_and_become_pending():
    nets = [network("a", "10.0.0.0/24"), network("b", "10.0.1.0/24", vni=4097)]
    tasks = [new("t1", "a", "b", created=1), new("t2", "b", created=2), task("t3", state=pb.NEW, created=3)]
    result, _ = plan_from_store(nets, [], tasks, now_ns=5)
    t1, t2, t3 = written(result.tasks)
    assert [(a.network_id, a.addr) for a in t1.networks] == [("a", "10.0.0.2/24"), ("b", "10.0.1.2/24")]
    assert [a.addr for a in t2.networks] == ["10.0.1.3/24"]
    assert not t3.networks  # no networks: straight through
    assert {t.status.state for t in (t1, t2, t3)} == {pb.PENDING}
    assert all(a.expected_version == 1 for a in result.tasks)


def test_aliases_come_from_the_attachment_config():
    t = task("t1", state=pb.NEW)
    t.spec.networks.add(target="a", aliases=["db", "primary"])
    result, _ = plan_from_store([network("a")], [], [t])
    assert list(written(result.tasks)[0].networks[0].aliases) == ["db", "primary"]


def test_gateway_and_ip_range_restrict_what_is_handed_out():
    narrow = network("a", "10.0.0.0/24", gateway="10.0.0.130", ip_range="10.0.0.128/30")
    tasks = [new(f"t{i}", "a", created=i) for i in range(4)]
    result, index = plan_from_store([narrow], [], tasks)
    given = [t.networks[0].addr for t in written(result.tasks) if t.networks]
    assert given == ["10.0.0.128/24", "10.0.0.129/24", "10.0.0.131/24"]  # .130 is the gateway
    assert index.free_count("a") == 0


def test_a_full_network_leaves_the_task_new_with_the_reason_once():
    tiny = network("a", "10.0.0.0/29", name="back")  # .1 gateway, .2-.6 for endpoints
    tasks = [new(f"t{i}", "a", created=i) for i in range(6)]
    result, index = plan_from_store([tiny], [], tasks)
    *placed, last = written(result.tasks)
    assert len(placed) == 5 and last.status.state == pb.NEW
    reason = "no free address on network back (10.0.0.0/29 is full)"
    assert last.explanation.text == reason and last.status.err == reason and not last.networks
    again = plan(index, {}.get, {last.id: last}.get)
    assert again.tasks == []  # already says so: nothing to write


def test_an_unknown_network_is_explained():
    result, _ = plan_from_store([], [], [new("t1", "gone")])
    assert written(result.tasks)[0].explanation.text == "network gone not found"


def test_only_new_tasks_wanted_running_are_given_addresses():
    stopping = new("t1", "a")
    stopping.desired_state = pb.SHUTDOWN
    pending = task("t2", state=pb.PENDING)
    result, _ = plan_from_store([network("a")], [], [stopping, pending])
    assert result.tasks == []


def test_vip_mode_services_get_one_vip_per_network_dnsrr_none():
    nets = [network("a", "10.0.0.0/24"), network("b", "10.0.1.0/24")]
    vip = on_networks(service("s1"), "a", "b")
    dnsrr = on_networks(service("s2"), "a")
    dnsrr.spec.endpoint.mode = specs.EndpointSpec.DNSRR
    result, _ = plan_from_store(nets, [vip, dnsrr], [])
    (changed,) = written(result.services)
    assert changed.id == "s1"
    assert [(v.network_id, v.addr) for v in changed.virtual_ips] == [("a", "10.0.0.2/24"), ("b", "10.0.1.2/24")]


def test_vips_of_networks_no_longer_used_are_taken_back_and_freed():
    nets = [network("a", "10.0.0.0/24"), network("b", "10.0.1.0/24")]
    s = on_networks(service("s1"), "b")
    s.virtual_ips.add(network_id="a", addr="10.0.0.2/24")
    s.virtual_ips.add(network_id="b", addr="10.0.1.7/24")
    result, index = plan_from_store(nets, [s], [])
    (changed,) = written(result.services)
    assert [(v.network_id, v.addr) for v in changed.virtual_ips] == [("b", "10.0.1.7/24")]
    index.refresh_service("s1", changed)
    assert index.free_count("a") == 253


def test_addresses_in_use_are_never_handed_out_again():
    held = task("t1", state=pb.RUNNING)
    held.networks.add(network_id="a", addr="10.0.0.2/24")
    s = on_networks(service("s1"), "a")
    s.virtual_ips.add(network_id="a", addr="10.0.0.3/24")
    result, _ = plan_from_store([network("a")], [s], [held, new("t2", "a")])
    assert [t.networks[0].addr for t in written(result.tasks)] == ["10.0.0.4/24"]


@pytest.mark.parametrize("desired, state, holds", [
    (pb.RUNNING, pb.PENDING, True), (pb.RUNNING, pb.RUNNING, True),
    (pb.RUNNING, pb.FAILED, True),     # waits for its restart: its container still exists
    (pb.SHUTDOWN, pb.RUNNING, True),   # told to stop, not stopped yet
    (pb.SHUTDOWN, pb.SHUTDOWN, False), (pb.SHUTDOWN, pb.FAILED, False),
    (pb.REMOVE, pb.PENDING, False),    # never sent to a node, never will be
])
def test_which_tasks_hold_their_addresses(desired, state, holds):
    assert holds_addresses(task("t", desired=desired, state=state)) is holds


def test_a_churn_of_a_thousand_tasks_leaves_the_free_pool_as_it_began():
    wide = network("a", "10.0.0.0/22")
    index = Allocations([wide])
    before = index.free_addresses("a")
    live: dict[str, pb.Task] = {}
    for i in range(1000):
        t = new(f"t{i}", "a", created=i)
        index.refresh_task(t.id, t)
        (action,) = plan(index, {}.get, {t.id: t}.get).tasks
        t = action.task
        index.refresh_task(t.id, t)
        live[t.id] = t
        if len(live) > 100:  # the oldest finishes: told to stop, then reported stopped, then deleted
            old = live.pop(min(live, key=lambda k: live[k].meta.created_at_ns))
            old.desired_state, old.status.state = pb.SHUTDOWN, pb.RUNNING
            index.refresh_task(old.id, old)
            old.status.state = pb.SHUTDOWN
            index.refresh_task(old.id, old)
            if i % 2:
                index.refresh_task(old.id, None)
    addrs = [t.networks[0].addr for t in live.values()]
    assert len(set(addrs)) == len(addrs) == 100
    assert len(index.free_addresses("a")) == len(before) - 100
    for t in list(live.values()):
        index.refresh_task(t.id, None)
    assert index.free_addresses("a") == before and not index.held


def test_the_index_ignores_what_it_has_not_got_a_network_for():
    stray = task("t1")
    stray.networks.add(network_id="gone", addr="10.9.0.2/24")
    index = Allocations.build([network("a")], [], [stray])
    assert index.held == {} and index.free_count("a") == 253


def test_node_addresses_come_from_status_and_manager_api_addresses():
    n = node("n1")
    n.status.addr = "192.168.1.5"
    n.manager_status.api_addr = "192.168.1.6:4242"
    assert {str(a) for a in ipam.node_addresses([n, node("n2")])} == {"192.168.1.5", "192.168.1.6"}


def test_a_pass_moves_at_most_its_limit_of_tasks_the_oldest_first():
    tasks = [new(f"t{i}", "a", created=10 - i) for i in range(5)]
    index = Allocations.build([network("a")], [], tasks)
    first = plan(index, {}.get, {t.id: t for t in tasks}.get, limit=2)
    assert [t.id for t in written(first.tasks)] == ["t4", "t3"]
    assert index.waiting == {"t0", "t1", "t2"}


def test_an_address_the_spec_asks_for_is_given_once_then_explained():
    tasks = [new(f"t{i}", created=i) for i in range(2)]
    for t in tasks:
        t.spec.networks.add(target="a", addresses=["10.0.0.50"])
    result, index = plan_from_store([network("a", name="front")], [], tasks)
    first, second = written(result.tasks)
    assert [a.addr for a in first.networks] == ["10.0.0.50/24"] and first.status.state == pb.PENDING
    assert second.explanation.text == "address 10.0.0.50 on network front is in use" and not second.networks
    assert list(index.held) == ["task t0"]  # nothing was taken for the one that waits
    outside = new("t9")
    outside.spec.networks.add(target="a", addresses=["10.0.0.1"])  # the gateway
    (refused,) = written(plan_from_store([network("a", name="front")], [], [outside])[0].tasks)
    assert refused.explanation.text == "address 10.0.0.1 is not one network front hands out"
