"""The scheduler's placement: filters and their explanations, spread, preferences, group placement."""
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.errors import InvalidArgument
from manager.scheduler.placement import (
    Demand,
    Exclusion,
    Explanation,
    Load,
    NodeSet,
    schedule,
    validate,
)
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.support import builders

GIB = 1 << 30
CPU = 10**9
READY, DOWN = pb.NodeStatus.READY, pb.NodeStatus.DOWN


def node(i, cpus=4, mem=8, os="linux", arch="amd64", **kw):
    """Node n<i> on host<i>: ids and hostnames differ so explanations show they use hostnames."""
    return builders.node(f"n{i}", hostname=f"host{i}", cpus=cpus, memory=int(mem * GIB), os=os, arch=arch, **kw)


def nodes(k, **kw):
    return [node(i, **kw) for i in range(1, k + 1)]


def why(placement):
    return [(e.filter, e.nodes_excluded, e.reason) for e in placement.explanation.exclusions]


# ---------------------------------------------------------------- spread

def test_six_replicas_on_three_nodes_spread_2_2_2():
    p = schedule(Demand("web"), 6, nodes(3), Load())
    assert p.node_ids == ("n1", "n2", "n3", "n1", "n2", "n3")
    assert (p.unplaced, p.explanation) == (0, None)


def test_existing_load_shifts_placement():
    load = Load()
    load.add("n1", Demand("web"), 2)
    load.add("n2", Demand("db"))
    # keys (tasks of web, tasks): n1 (2, 2), n2 (0, 1), n3 (0, 0)
    assert schedule(Demand("web"), 3, nodes(3), load).node_ids == ("n3", "n2", "n3")


def test_fewest_tasks_overall_then_node_id_break_ties():
    load = Load()
    load.add("n1", Demand("db"), 3)
    load.add("n3", Demand("db"), 1)
    assert schedule(Demand("web"), 3, nodes(3), load).node_ids == ("n2", "n3", "n1")


def test_load_is_updated_so_the_next_group_sees_it():
    load = Load()
    schedule(Demand("web", nano_cpus=CPU, memory_bytes=GIB, host_ports=[(80, "tcp")]), 2, nodes(3), load)
    assert sorted(load.nodes) == ["n1", "n2"]
    n1 = load.nodes["n1"]
    assert (n1.nano_cpus, n1.memory_bytes, n1.tasks, n1.services, n1.host_ports) == \
        (CPU, GIB, 1, {"web": 1}, {(80, "tcp")})
    assert schedule(Demand("db"), 1, nodes(3), load).node_ids == ("n3",)


def test_determinism_whatever_the_order_of_nodes():
    cluster = nodes(6, labels={"dc": "a"}) + [node(7, labels={"dc": "b"}), node(8)]
    demand = Demand("web", memory_bytes=3 * GIB, preferences=["spread=node.labels.dc"])
    first = schedule(demand, 20, cluster, Load())
    for seed in range(5):
        shuffled = cluster[:]
        random.Random(seed).shuffle(shuffled)
        assert schedule(demand, 20, shuffled, Load()) == first


def test_zero_tasks_and_duplicate_demand_fields():
    assert schedule(Demand("web"), 0, nodes(2), Load()).node_ids == ()
    d = Demand("web", host_ports=[(80, "TCP"), (80, "tcp"), (0, "tcp")], constraints=["node.role==worker"])
    assert d.host_ports == ((80, "tcp"),) and d.constraints == ("node.role==worker",)
    assert hash(d) == hash(Demand("web", host_ports=((80, "tcp"),), constraints=("node.role==worker",)))


def test_a_node_set_shared_by_the_groups_of_a_pass_places_as_plain_lists_do():
    cluster = [node(i, mem=i, labels={"dc": "ab"[i % 2]}, role=pb.MANAGER if i < 3 else pb.WORKER)
               for i in range(1, 9)]
    groups = [Demand("web", memory_bytes=GIB, preferences=["spread=node.labels.dc"]),
              Demand("db", memory_bytes=2 * GIB, constraints=["node.role==worker"]),
              Demand("cache", memory_bytes=GIB, constraints=["node.role==worker"], max_replicas=1),
              Demand("web", 2, memory_bytes=GIB, preferences=["spread=node.labels.dc"])]
    shared, plain = NodeSet(cluster + cluster[:2]), [Load(), Load()]  # duplicates count once
    for demand, count in zip(groups, [7, 7, 7, 30], strict=True):
        a, b = schedule(demand, count, shared, plain[0]), schedule(demand, count, cluster, plain[1])
        assert a == b
    assert a.unplaced and a.explanation.nodes_total == 8


# ---------------------------------------------------------------- preferences

def test_preference_spreads_across_label_values_nodes_without_it_are_a_group():
    cluster = [node(1, labels={"dc": "east"}), node(2, labels={"dc": "east"}),
               node(3, labels={"dc": "west"}), node(4)]
    p = schedule(Demand("web", preferences=["spread=node.labels.dc"]), 6, cluster, Load())
    assert p.node_ids == ("n1", "n3", "n4", "n2", "n3", "n4")
    assert Counter(p.node_ids) == {"n1": 1, "n2": 1, "n3": 2, "n4": 2}


def test_preference_counts_existing_tasks_per_value():
    cluster = [node(1, labels={"dc": "east"}), node(2, labels={"dc": "west"}), node(3, labels={"dc": "west"})]
    load = Load()
    load.add("n1", Demand("web"), 3)
    p = schedule(Demand("web", preferences=["node.labels.dc"]), 4, cluster, load)
    assert p.node_ids == ("n2", "n3", "n2", "n1")  # west reaches 3 before east gets a 4th


def test_nested_preferences():
    cluster = [node(1, labels={"dc": "a", "rack": "1"}), node(2, labels={"dc": "a", "rack": "1"}),
               node(3, labels={"dc": "a", "rack": "2"}), node(4, labels={"dc": "b", "rack": "1"}),
               node(5, labels={"dc": "b"})]
    demand = Demand("web", preferences=["spread=node.labels.dc", "spread=node.labels.rack"])
    p = schedule(demand, 8, cluster, Load())
    assert p.node_ids == ("n1", "n4", "n3", "n5", "n2", "n4", "n3", "n5")
    by_dc = Counter("a" if n in ("n1", "n2", "n3") else "b" for n in p.node_ids)
    assert by_dc == {"a": 4, "b": 4}
    # within dc a, rack 1 (two nodes) and rack 2 (one node) get 2 each
    assert Counter(p.node_ids) == {"n1": 1, "n2": 1, "n3": 2, "n4": 2, "n5": 2}


def test_preference_moves_on_when_a_value_is_full():
    cluster = [node(1, cpus=1, labels={"dc": "a"}), node(2, cpus=8, labels={"dc": "b"})]
    p = schedule(Demand("web", nano_cpus=CPU, preferences=["spread=node.labels.dc"]), 4, cluster, Load())
    assert p.node_ids == ("n1", "n2", "n2", "n2")


def test_engine_label_preference():
    cluster = [node(1, engine={"az": "x"}), node(2, engine={"az": "x"}), node(3, engine={"az": "y"})]
    p = schedule(Demand("web", preferences=["spread=engine.labels.az"]), 4, cluster, Load())
    assert Counter(p.node_ids) == {"n1": 1, "n2": 1, "n3": 2}


# ---------------------------------------------------------------- filters and their explanations

def test_down_disconnected_drained_paused_nodes_take_nothing():
    cluster = [node(1, availability=pb.DRAIN), node(2, availability=pb.PAUSE), node(3, state=DOWN),
               node(4, state=pb.NodeStatus.DISCONNECTED), node(5, state=DOWN, availability=pb.DRAIN),
               node(6, state=pb.NodeStatus.UNKNOWN), node(7)]
    p = schedule(Demand("web", max_replicas=1), 2, cluster, Load())
    assert (p.node_ids, p.unplaced) == (("n7",), 1)
    assert why(p) == [("not ready", 4, "host4 is disconnected, host3 and host5 are down, host6 is unknown"),
                      ("drained", 1, "host1"), ("paused", 1, "host2"),
                      ("max replicas per node (1)", 1, "host7 already runs 1")]
    assert p.explanation.line() == (
        "no suitable node among 7 nodes: not ready: host4 is disconnected, host3 and host5 are down, "
        "host6 is unknown; drained: host1; paused: host2; max replicas per node (1): host7 already runs 1")


def test_platform_filter():
    cluster = [node(1, os="windows"), node(2, arch="arm64"), node(3, arch="x86_64"), node(4, arch="s390x")]
    p = schedule(Demand("web", platforms=[("linux", "amd64"), ("", "arm64")]), 4, cluster, Load())
    assert sorted(set(p.node_ids)) == ["n2", "n3"]
    p = schedule(Demand("web", platforms=[("linux", "amd64")]), 1, cluster[:2] + cluster[3:], Load())
    assert why(p) == [("platform", 3, ("needs linux/amd64; host2 is linux/arm64, host4 is linux/s390x, "
                                       "host1 is windows/amd64"))]


def test_platform_of_a_node_that_did_not_report_one():
    p = schedule(Demand("web", platforms=[("linux", "")]), 1, [node(1, os="", arch="")], Load())
    assert why(p) == [("platform", 1, "needs linux; host1 is of unknown platform")]


def test_constraint_missing_label_and_other_values():
    cluster = [node(1), node(2), node(3), node(4, labels={"zone": "b"}), node(5, labels={"zone": "b"}),
               node(6, labels={"zone": "a"})]
    p = schedule(Demand("web", constraints=["node.labels.zone==a"]), 2, cluster, Load())
    assert p.node_ids == ("n6", "n6")
    p = schedule(Demand("web", constraints=["node.labels.ssd==true"]), 1, cluster, Load())
    assert why(p) == [("constraint node.labels.ssd==true", 6, "6 nodes have no such label")]
    p = schedule(Demand("web", constraints=["node.labels.zone==c"]), 1, cluster, Load())
    assert why(p) == [("constraint node.labels.zone==c", 6,
                       "3 nodes have no such label, 2 nodes have zone=b, 1 node has zone=a")]
    assert str(p.explanation.exclusions[0]) == \
        "constraint node.labels.zone==c: 3 nodes have no such label, 2 nodes have zone=b, 1 node has zone=a"


def test_missing_label_passes_not_equal_as_docker():
    cluster = [node(1), node(2, labels={"zone": "a"}), node(3, labels={"zone": "b"})]
    p = schedule(Demand("web", constraints=["node.labels.zone!=a"]), 4, cluster, Load())
    assert Counter(p.node_ids) == {"n1": 2, "n3": 2}
    p = schedule(Demand("web", constraints=["node.labels.zone!=a", "node.labels.zone!=b", "node.role==manager"]),
                 1, cluster, Load())
    assert why(p) == [("constraint node.labels.zone!=a", 1, "1 node has zone=a"),
                      ("constraint node.labels.zone!=b", 1, "1 node has zone=b"),
                      ("constraint node.role==manager", 1, "1 node has role=worker")]


def test_constraints_on_node_and_engine_attributes():
    cluster = [node(1, role=pb.MANAGER, engine={"storage": "ssd"}), node(2), node(3, engine={"storage": "hdd"})]
    assert schedule(Demand("w", constraints=["node.role==manager"]), 2, cluster, Load()).node_ids == ("n1", "n1")
    assert schedule(Demand("w", constraints=["node.hostname==host2"]), 1, cluster, Load()).node_ids == ("n2",)
    assert schedule(Demand("w", constraints=["node.id!=n1", "node.id!=n2"]), 1, cluster, Load()).node_ids == ("n3",)
    p = schedule(Demand("w", constraints=["engine.labels.storage==ssd", "node.platform.os==linux"]), 2,
                 cluster, Load())
    assert p.node_ids == ("n1", "n1")
    p = schedule(Demand("w", constraints=["engine.labels.storage==nvme"]), 1, cluster, Load())
    assert why(p) == [("constraint engine.labels.storage==nvme", 3,
                       ("1 node has engine label storage=hdd, 1 node has engine label storage=ssd, "
                        "1 node has no such label"))]


def test_many_values_are_summarized():
    p = schedule(Demand("w", constraints=["node.hostname==db"]), 1, nodes(7), Load())
    assert why(p) == [("constraint node.hostname==db", 7,
                       ("1 node has hostname=host1, 1 node has hostname=host2, 1 node has hostname=host3, "
                        "1 node has hostname=host4 and 3 more with other values"))]


def test_memory_reservations_exhaust_nodes_largest_free():
    cluster = [node(1, mem=4), node(2, mem=5), node(3, mem=1)]
    p = schedule(Demand("web", memory_bytes=2 * GIB), 5, cluster, Load())
    assert (Counter(p.node_ids), p.unplaced) == ({"n1": 2, "n2": 2}, 1)
    assert why(p) == [("memory", 3, "needs 2GiB, largest free is 1GiB on host2")]


def test_cpu_reservations_count_existing_load():
    load = Load()
    load.add("n1", Demand("db", nano_cpus=3 * CPU))
    cluster = [node(1, cpus=4), node(2, cpus=1.5)]
    p = schedule(Demand("web", nano_cpus=2 * CPU, memory_bytes=GIB), 1, cluster, load)
    assert why(p) == [("cpu", 2, "needs 2 CPUs, largest free is 1.5 CPUs on host2")]
    p = schedule(Demand("web", nano_cpus=CPU // 2, memory_bytes=20 * GIB), 1, cluster, load)
    assert why(p) == [("memory", 2, "needs 20GiB, largest free is 8GiB on host1")]


def test_overcommitted_node_still_takes_tasks_without_reservations():
    load = Load()
    load.add("n1", Demand("db", nano_cpus=8 * CPU))
    assert schedule(Demand("web"), 1, nodes(1), load).node_ids == ("n1",)


def test_host_port_one_task_per_node_and_in_use():
    load = Load()
    load.add("n1", Demand("other", host_ports=[(8080, "tcp")]))
    load.add("n2", Demand("other", host_ports=[(8080, "udp")]))
    p = schedule(Demand("web", host_ports=[(8080, "tcp")]), 4, nodes(3), load)
    assert (p.node_ids, p.unplaced) == (("n3", "n2"), 2)  # n2 runs a task already
    assert why(p) == [("host port 8080/tcp", 3,
                       "host1, host2 and host3 are running a task that publishes 8080/tcp in host mode (one per node)")]


def test_max_replicas_per_node():
    load = Load()
    load.add("n1", Demand("web"))
    p = schedule(Demand("web", max_replicas=2), 7, nodes(3), load)
    assert (Counter(p.node_ids), p.unplaced) == ({"n1": 1, "n2": 2, "n3": 2}, 2)
    assert why(p) == [("max replicas per node (2)", 3, "host1, host2 and host3 already run 2")]
    p = schedule(Demand("web", max_replicas=1), 2, nodes(1), Load())
    assert why(p) == [("max replicas per node (1)", 1, "host1 already runs 1")]


def test_each_node_counts_against_its_first_failing_filter():
    cluster = [node(1, state=DOWN), node(2, availability=pb.DRAIN, labels={"ssd": "true"}),
               node(3, labels={"ssd": "true"}, mem=1), node(4, labels={"ssd": "true"}),
               node(5, labels={"ssd": "true"}), *[node(i) for i in range(6, 13)]]
    load = Load()
    load.add("n4", Demand("web", host_ports=[(443, "tcp")]))
    demand = Demand("web", memory_bytes=2 * GIB, constraints=["node.labels.ssd==true"],
                    host_ports=[(443, "tcp")], max_replicas=1)
    p = schedule(demand, 2, cluster, load)
    assert (p.node_ids, p.unplaced) == (("n5",), 1)
    assert why(p) == [("not ready", 1, "host1 is down"), ("drained", 1, "host2"),
                      ("constraint node.labels.ssd==true", 7, "7 nodes have no such label"),
                      ("memory", 1, "needs 2GiB, largest free is 1GiB on host3"),
                      ("host port 443/tcp", 2, "host4 and host5 are running a task that publishes 443/tcp in host mode "
                                                 "(one per node)")]
    assert p.explanation.text() == (
        "no suitable node among 12 nodes:\n"
        "  1  not ready: host1 is down\n"
        "  1  drained: host2\n"
        "  7  constraint node.labels.ssd==true: 7 nodes have no such label\n"
        "  1  memory: needs 2GiB, largest free is 1GiB on host3\n"
        "  2  host port 443/tcp: host4 and host5 are running a task that publishes 443/tcp in host mode (one per node)")
    proto = p.explanation.to_proto()
    assert [(f.name, f.nodes_excluded) for f in proto.filters][-1] == ("host port 443/tcp", 2)
    assert proto.text == p.explanation.line() == str(p)


def test_long_node_lists_are_summarized():
    p = schedule(Demand("web"), 1, nodes(8, availability=pb.DRAIN), Load())
    assert why(p) == [("drained", 8, "host1, host2, host3, host4, host5 and 3 more")]


def test_no_nodes_at_all():
    p = schedule(Demand("web"), 3, [], Load())
    assert (p.node_ids, p.unplaced) == ((), 3)
    assert p.explanation == Explanation(0, ())
    assert p.explanation.line() == p.explanation.text() == "no suitable node: the swarm has no nodes"


def test_explanation_renders_singular_counts():
    e = Explanation(1, (Exclusion("drained", 1, "host1"),))
    assert e.line() == "no suitable node among 1 node: drained: host1"


# ---------------------------------------------------------------- inputs

def test_bad_constraint_is_invalid_argument_up_front_and_at_schedule():
    bad = Demand("web", constraints=["node.role==worker", "node.labels.zone"])
    with pytest.raises(InvalidArgument, match="invalid constraint 'node.labels.zone': expected an operator"):
        validate(bad)
    with pytest.raises(InvalidArgument, match="invalid constraint 'node.labels.zone'"):
        schedule(bad, 1, nodes(1), Load())
    with pytest.raises(InvalidArgument, match="invalid placement preference 'spread=node.role'"):
        validate(Demand("web", preferences=["spread=node.role"]))
    validate(Demand("web", constraints=["node.role==worker"], preferences=["spread=node.labels.dc"]))


def test_negative_reservations_are_invalid():
    with pytest.raises(InvalidArgument, match="invalid cpu reservation -1: must be 0 or more"):
        validate(Demand("web", nano_cpus=-10**9))
    with pytest.raises(InvalidArgument, match="invalid memory reservation -5 bytes"):
        validate(Demand("web", memory_bytes=-5))
    validate(Demand("web", nano_cpus=0, memory_bytes=0))


def test_demand_from_service():
    s = pb.Service(id="s1", spec_version=7)
    t = s.spec.task
    t.resources.reservations.nano_cpus, t.resources.reservations.memory_bytes = CPU, GIB
    t.placement.constraints.append("node.role==worker")
    t.placement.preferences.add(spread="node.labels.dc")
    t.placement.max_replicas = 2
    t.placement.platforms.add(os="linux", architecture="arm64")
    ports = s.spec.endpoint.ports
    ports.add(published_port=80, target_port=8080, publish_mode=specs.PortConfig.HOST)
    ports.add(published_port=53, protocol=specs.PortConfig.UDP, publish_mode=specs.PortConfig.HOST)
    ports.add(published_port=443, publish_mode=specs.PortConfig.INGRESS)
    assert Demand.from_service(s) == Demand(
        "s1", 7, CPU, GIB, ("node.role==worker",), ("node.labels.dc",), 2, ((53, "udp"), (80, "tcp")),
        (("linux", "arm64"),))


# ---------------------------------------------------------------- property: never violates, spreads evenly

# Strategies built once: building them inside the composite costs more than the test.
ZONES = st.sampled_from(["a", "b", None])
STATES = st.sampled_from([READY] * 5 + [DOWN])
AVAILABILITIES = st.sampled_from([pb.ACTIVE] * 6 + [pb.DRAIN, pb.PAUSE])
ROLES = st.sampled_from([pb.WORKER, pb.MANAGER])
SIZES = st.integers(0, 4)


def demands(service_ids):
    return st.builds(
        Demand, service_ids,
        nano_cpus=st.sampled_from([0, CPU // 2, CPU]), memory_bytes=st.sampled_from([0, GIB]),
        constraints=st.lists(st.sampled_from(["node.labels.zone==a", "node.labels.zone!=a",
                                              "node.role==worker", "node.role!=worker"]), max_size=2),
        preferences=st.sampled_from([(), ("spread=node.labels.zone",)]),
        max_replicas=st.integers(0, 3), host_ports=st.sampled_from([(), ((80, "tcp"),)]))


WEB = demands(st.just("web"))
LOADS = st.lists(demands(st.sampled_from(["web", "db"])), max_size=4)


@st.composite
def clusters(draw):
    cluster, load = [], Load()
    for i in range(draw(st.integers(0, 10))):
        zone = draw(ZONES)
        n = node(i, cpus=draw(SIZES), mem=draw(SIZES), labels={"zone": zone} if zone else {},
                 state=draw(STATES), availability=draw(AVAILABILITIES), role=draw(ROLES))
        cluster.append(n)
        for d in draw(LOADS):
            load.add(n.id, d)
    return cluster, load


def statically_eligible(n, d):
    zone = n.spec.labels.get("zone")
    worker = n.role == pb.WORKER
    rules = {"node.labels.zone==a": zone == "a", "node.labels.zone!=a": zone != "a",
             "node.role==worker": worker, "node.role!=worker": not worker}
    return (n.status.state == READY and n.spec.availability == pb.ACTIVE
            and all(rules[c] for c in d.constraints))


class Model:
    """An independent replay of the placements: what each node holds, step by step."""

    def __init__(self, cluster, load, demand):
        self.d, self.eligible = demand, [n for n in cluster if statically_eligible(n, demand)]
        self.held = {}
        for n in cluster:
            nl = load.nodes.get(n.id)
            self.held[n.id] = [nl.nano_cpus, nl.memory_bytes, set(nl.host_ports), nl.services.get("web", 0),
                               nl.tasks] if nl else [0, 0, set(), 0, 0]

    def fits(self, n):
        cpu, mem, ports, svc, _ = self.held[n.id]
        d, res = self.d, n.description.resources
        return ((not d.nano_cpus or res.nano_cpus - cpu >= d.nano_cpus)
                and (not d.memory_bytes or res.memory_bytes - mem >= d.memory_bytes)
                and not ports & set(d.host_ports) and (not d.max_replicas or svc < d.max_replicas))

    def group(self, n):
        return n.spec.labels.get("zone", "-") if self.d.preferences else ""

    def group_tasks(self, group):
        return sum(self.held[n.id][3] for n in self.eligible if self.group(n) == group)

    def place(self, n):
        h = self.held[n.id]
        h[0] += self.d.nano_cpus
        h[1] += self.d.memory_bytes
        h[2] |= set(self.d.host_ports)
        h[3] += 1
        h[4] += 1


@settings(max_examples=400, deadline=None)
@given(clusters(), WEB, st.integers(0, 20))
def test_placements_never_violate_a_filter_and_spread_evenly(cluster_load, demand, count):
    cluster, load = cluster_load
    by_id, model = {n.id: n for n in cluster}, Model(cluster, load, demand)
    p = schedule(demand, count, cluster, load)
    assert len(p.node_ids) + p.unplaced == count
    for nid in p.node_ids:
        chosen = by_id[nid]
        open_now = [n for n in model.eligible if model.fits(n)]
        assert chosen in open_now
        # as even as the filters allow: the emptiest open group, then its emptiest open node
        assert model.group_tasks(model.group(chosen)) == min(model.group_tasks(model.group(n)) for n in open_now)
        peers = [n for n in open_now if model.group(n) == model.group(chosen)]
        assert model.held[nid][3:] == min(model.held[n.id][3:] for n in peers)
        model.place(chosen)
    assert bool(p.unplaced) == (p.explanation is not None)
    if p.unplaced:
        assert not any(model.fits(n) for n in model.eligible)
        assert sum(e.nodes_excluded for e in p.explanation.exclusions) == len(cluster)
