"""Placement: which node each new task goes to (docs/design.md, "Control plane").

Pure and deterministic: no I/O, no clock, no randomness; the same input gives the same output
whatever the order of the nodes. The leader's loop calls, per group of identical tasks
(same service and spec version):

    nodes = NodeSet(store_nodes)               # once per pass (a plain list works too)
    placement = schedule(Demand.from_service(service), count, nodes, load)

`load` describes what already runs on each node and is updated with the placed tasks, so the
next group scheduled in the same pass sees them.

Filters, in order, each node counted against the first one that rules it out:
not ready, drained, paused, platform, each constraint (static: evaluated once per node per
pass and rule set), then cpu, memory, each host-mode port, max replicas per node (dynamic:
they change as tasks land). Spread: among the nodes that pass, placement preferences first
(the label value with the fewest tasks of the service on eligible nodes, nested in order),
then the node with the fewest tasks of the service, then the fewest tasks, then the smallest
node id. Heaps make a group of N tasks cost O(nodes + N log nodes), not O(N x nodes x filters).
"""
from __future__ import annotations

import functools
import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from covey.errors import InvalidArgument
from covey.units import format_bytes
from manager.scheduler.constraints import (
    Constraint,
    Preference,
    normalize_arch,
    parse_constraints,
    parse_preferences,
)
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

Port = tuple[int, str]  # (published port, "tcp" | "udp" | "sctp")
NAMES_SHOWN = 5         # nodes named in a reason before "and N more"
VALUES_SHOWN = 4        # distinct values shown for a constraint


@dataclass(frozen=True)
class Demand:
    """What one task of a group needs. Sequences given as lists are stored as tuples."""
    service_id: str
    spec_version: int = 0
    nano_cpus: int = 0
    memory_bytes: int = 0
    constraints: tuple[str, ...] = ()
    preferences: tuple[str, ...] = ()   # "spread=node.labels.zone" or "node.labels.zone"
    max_replicas: int = 0               # per node; 0: unlimited
    host_ports: tuple[Port, ...] = ()   # host-mode published ports
    platforms: tuple[tuple[str, str], ...] = ()  # (os, arch); "" matches any; empty: any

    def __post_init__(self) -> None:
        ports = sorted({(int(p), proto.lower()) for p, proto in self.host_ports if p})
        object.__setattr__(self, "host_ports", tuple(ports))
        object.__setattr__(self, "constraints", tuple(self.constraints))
        object.__setattr__(self, "preferences", tuple(self.preferences))
        object.__setattr__(self, "platforms", tuple((os, arch) for os, arch in self.platforms))

    @classmethod
    def from_service(cls, service: pb.Service) -> Demand:
        """The demand of the service's current spec."""
        task, placement = service.spec.task, service.spec.task.placement
        res = task.resources.reservations
        ports = [(p.published_port, specs.PortConfig.Protocol.Name(p.protocol))
                 for p in service.spec.endpoint.ports if p.publish_mode == specs.PortConfig.HOST]
        return cls(service.id, service.spec_version, res.nano_cpus, res.memory_bytes,
                   tuple(placement.constraints), tuple(p.spread for p in placement.preferences),
                   placement.max_replicas, tuple(ports),
                   tuple((p.os, p.architecture) for p in placement.platforms))


@dataclass
class NodeLoad:
    """What the unfinished tasks on one node hold."""
    nano_cpus: int = 0
    memory_bytes: int = 0
    tasks: int = 0
    services: dict[str, int] = field(default_factory=dict)  # service id -> tasks
    host_ports: set[Port] = field(default_factory=set)


@dataclass
class Load:
    """Per node id, the tasks assigned there that are not finished."""
    nodes: dict[str, NodeLoad] = field(default_factory=dict)

    def add(self, node_id: str, demand: Demand, count: int = 1, host_ports: Iterable[Port] | None = None) -> None:
        """`count` tasks of `demand` run (or are about to run) on the node; `host_ports`: the
        ports they hold, when not the demand's (a task placed for an older spec, or one given
        a port the swarm chose)."""
        node = self.nodes.setdefault(node_id, NodeLoad())
        node.nano_cpus += demand.nano_cpus * count
        node.memory_bytes += demand.memory_bytes * count
        node.tasks += count
        node.services[demand.service_id] = node.services.get(demand.service_id, 0) + count
        node.host_ports.update(demand.host_ports if host_ports is None else host_ports)


@dataclass(frozen=True)
class Exclusion:
    filter: str          # "not ready", "constraint node.labels.zone==a", "memory", ...
    nodes_excluded: int
    reason: str          # human words: "2 nodes have zone=b"

    def __str__(self) -> str:
        return f"{self.filter}: {self.reason}"


@dataclass(frozen=True)
class Explanation:
    """Why no node could take the task: per filter, the nodes it ruled out."""
    nodes_total: int
    exclusions: tuple[Exclusion, ...]

    def headline(self) -> str:
        if not self.nodes_total:
            return "no suitable node: the swarm has no nodes"
        return f"no suitable node among {_count(self.nodes_total, 'node')}"

    def line(self) -> str:
        """One line, nothing truncated."""
        if not self.exclusions:
            return self.headline()
        return f"{self.headline()}: " + "; ".join(str(e) for e in self.exclusions)

    def text(self) -> str:
        """Several lines: the headline, then one line per filter with its count of nodes."""
        if not self.exclusions:
            return self.headline()
        width = max(len(str(e.nodes_excluded)) for e in self.exclusions)
        return "\n".join([f"{self.headline()}:"] +
                         [f"  {e.nodes_excluded:>{width}}  {e}" for e in self.exclusions])

    def to_proto(self) -> pb.PlacementExplanation:
        return pb.PlacementExplanation(
            filters=[pb.PlacementExplanation.Filter(name=e.filter, nodes_excluded=e.nodes_excluded,
                                                    reason=e.reason) for e in self.exclusions],
            text=self.line())


@dataclass(frozen=True)
class Placement:
    node_ids: tuple[str, ...]            # one per placed task, in placement order
    unplaced: int = 0                    # tasks no node could take
    explanation: Explanation | None = None  # set when unplaced > 0

    def __str__(self) -> str:
        return self.explanation.line() if self.explanation else f"placed {len(self.node_ids)}"


def validate(demand: Demand) -> None:
    """Raise InvalidArgument naming the first bad reservation, constraint or preference (at
    service create): a negative reservation would give its nodes capacity they do not have."""
    if demand.nano_cpus < 0:
        raise InvalidArgument(f"invalid cpu reservation {demand.nano_cpus / 1e9:g}: must be 0 or more")
    if demand.memory_bytes < 0:
        raise InvalidArgument(f"invalid memory reservation {demand.memory_bytes} bytes: must be 0 or more")
    parse_constraints(demand.constraints)
    parse_preferences(demand.preferences)


# ---------------------------------------------------------------- names in explanations

def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _name(node: pb.Node) -> str:
    return node.description.hostname or node.id


def _names(nodes: Iterable[pb.Node]) -> str:
    """ "host1", "host1 and host2", "host1, host2, host3, host4, host5 and 3 more" """
    names = sorted(_name(n) for n in nodes)
    if len(names) > NAMES_SHOWN:
        return ", ".join(names[:NAMES_SHOWN]) + f" and {len(names) - NAMES_SHOWN} more"
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]]))


def _are(nodes: Sequence, what: str) -> str:
    return f"{_names(nodes)} {'is' if len(nodes) == 1 else 'are'} {what}"


def _grouped(nodes: Sequence[pb.Node], value: Callable[[pb.Node], str]) -> dict[str, list[pb.Node]]:
    groups: dict[str, list[pb.Node]] = {}
    for node in nodes:
        groups.setdefault(value(node), []).append(node)
    return dict(sorted(groups.items()))


# ---------------------------------------------------------------- static filters

@dataclass(frozen=True)
class _Static:
    name: str
    passes: Callable[[pb.Node], bool]
    reason: Callable[[list[pb.Node]], str]


def _state(node: pb.Node) -> str:
    return pb.NodeStatus.State.Name(node.status.state).lower()


def _not_ready_reason(nodes: list[pb.Node]) -> str:
    return ", ".join(_are(group, state) for state, group in _grouped(nodes, _state).items())


def _platform_text(os: str, arch: str) -> str:
    return "/".join(part or "*" for part in (os, arch)) if arch else (os or "*")


def _node_platform(node: pb.Node) -> str:
    have = node.description.platform
    return _platform_text(have.os, have.architecture) if have.os or have.architecture else "of unknown platform"


def _platform_filter(platforms: tuple[tuple[str, str], ...]) -> _Static:
    wanted = [(os.lower(), normalize_arch(arch)) for os, arch in platforms]

    def passes(node: pb.Node) -> bool:
        have = node.description.platform
        os, arch = have.os.lower(), normalize_arch(have.architecture)
        return any((not w_os or w_os == os) and (not w_arch or w_arch == arch) for w_os, w_arch in wanted)

    def reason(nodes: list[pb.Node]) -> str:
        needs = " or ".join(_platform_text(os, arch) for os, arch in platforms)
        have = _grouped(nodes, _node_platform)
        return f"needs {needs}; " + ", ".join(_are(group, p) for p, group in have.items())

    return _Static("platform", passes, reason)


def _constraint_reason(c: Constraint, nodes: list[pb.Node]) -> str:
    by_value: dict[str | None, int] = {}
    for node in nodes:
        value = c.node_value(node)
        by_value[value] = by_value.get(value, 0) + 1
    ranked = sorted(by_value.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))
    parts = [f"{_count(n, 'node')} {'has' if n == 1 else 'have'} " +
             ("no such label" if value is None else f"{c.attr}={value}")
             for value, n in ranked[:VALUES_SHOWN]]
    rest = sum(n for _, n in ranked[VALUES_SHOWN:])
    return ", ".join(parts) + (f" and {rest} more with other values" if rest else "")


def _static_filters(demand: Demand) -> list[_Static]:
    filters = [
        _Static("not ready", lambda n: n.status.state == pb.NodeStatus.READY, _not_ready_reason),
        _Static("drained", lambda n: n.spec.availability != pb.DRAIN, _names),
        _Static("paused", lambda n: n.spec.availability != pb.PAUSE, _names),
    ]
    if demand.platforms:
        filters.append(_platform_filter(demand.platforms))
    for c in parse_constraints(demand.constraints):
        filters.append(_Static(f"constraint {c.text}", c.matches, functools.partial(_constraint_reason, c)))
    return filters


# ---------------------------------------------------------------- dynamic filters

def _port_free(port: Port, cand: _Cand) -> bool:
    return port not in cand.ports


class _Cand:
    """A node that passed the static filters, with what is left on it."""
    __slots__ = ("free_cpu", "free_mem", "id", "index", "node", "ports", "svc", "total")

    def __init__(self, index: int, node: pb.Node, capacity: tuple[int, int], load: NodeLoad | None,
                 demand: Demand):
        self.index, self.node, self.id = index, node, node.id
        self.free_cpu, self.free_mem = capacity
        self.svc = self.total = 0
        self.ports: set[Port] = set()
        if load:
            self.free_cpu -= load.nano_cpus
            self.free_mem -= load.memory_bytes
            self.svc, self.total = load.services.get(demand.service_id, 0), load.tasks
            # copied only when this group adds ports to it
            self.ports = set(load.host_ports) if demand.host_ports else load.host_ports


def _fits(demand: Demand) -> Callable[[_Cand], bool]:
    cpu, mem, ports, most = demand.nano_cpus, demand.memory_bytes, demand.host_ports, demand.max_replicas

    def fits(c: _Cand) -> bool:
        return ((not cpu or c.free_cpu >= cpu) and (not mem or c.free_mem >= mem)
                and (not ports or c.ports.isdisjoint(ports)) and (not most or c.svc < most))
    return fits


def _dynamic_exclusions(demand: Demand, cands: list[_Cand]) -> list[Exclusion]:
    """Why each remaining candidate cannot take one more task (the first reason of each)."""
    checks: list[tuple[str, Callable[[_Cand], bool], Callable[[list[_Cand]], str]]] = []
    if demand.nano_cpus:
        checks.append(("cpu", lambda c: c.free_cpu >= demand.nano_cpus,
                       lambda cs: _largest_free(cs, "free_cpu", f"{_cpus(demand.nano_cpus)}", _cpus)))
    if demand.memory_bytes:
        checks.append(("memory", lambda c: c.free_mem >= demand.memory_bytes,
                       lambda cs: _largest_free(cs, "free_mem", format_bytes(demand.memory_bytes),
                                                format_bytes)))
    for port in demand.host_ports:
        checks.append((f"host port {port[0]}/{port[1]}", functools.partial(_port_free, port),
                       functools.partial(_port_reason, port)))
    if demand.max_replicas:
        most = demand.max_replicas
        checks.append((f"max replicas per node ({most})", lambda c: c.svc < most,
                       lambda cs: f"{_names(c.node for c in cs)} already run{'s' if len(cs) == 1 else ''} {most}"))
    return _attribute(cands, checks)


def _port_reason(port: Port, cands: list[_Cand]) -> str:
    return (f"{_are([c.node for c in cands], 'running')} a task that publishes {port[0]}/{port[1]} "
            "in host mode (one per node)")


def _cpus(nano: int) -> str:
    cpus = nano / 1e9
    return f"{cpus:g} CPU" + ("" if cpus == 1 else "s")


def _largest_free(cands: list[_Cand], attr: str, needs: str, fmt: Callable[[int], str]) -> str:
    best = min(cands, key=lambda c: (-getattr(c, attr), _name(c.node)))
    return f"needs {needs}, largest free is {fmt(max(0, getattr(best, attr)))} on {_name(best.node)}"


def _attribute(items: list, checks: list) -> list[Exclusion]:
    """Count each item against the first check it fails; one Exclusion per failing check."""
    failed: list[list] = [[] for _ in checks]
    for item in items:
        for i, (_, passes, _) in enumerate(checks):
            if not passes(item):
                failed[i].append(item)
                break
    return [Exclusion(name, len(bad), reason(bad))
            for (name, _, reason), bad in zip(checks, failed, strict=True) if bad]


# ---------------------------------------------------------------- spread

class _Group:
    """Nodes sharing the values of the first k preference labels. A leaf's heap holds
    (service tasks, tasks, node id, node index); an inner group's heap holds
    (service tasks in the subtree, label key, child group)."""
    __slots__ = ("children", "count", "heap", "leaf")

    def __init__(self, leaf: bool):
        self.heap: list = []
        self.leaf = leaf
        self.children: dict = {}
        self.count = 0


def _tree(node_set: NodeSet, indices: list[int], loads: dict[str, NodeLoad], demand: Demand) -> _Group:
    prefs = parse_preferences(demand.preferences)
    keys = [node_set.preference_keys(p) for p in prefs]
    root = _Group(leaf=not prefs)
    ids, service_id = node_set.ids, demand.service_id
    for i in indices:
        held = loads.get(ids[i])
        svc, total = (held.services.get(service_id, 0), held.tasks) if held else (0, 0)
        group = root
        group.count += svc
        for depth, by_node in enumerate(keys):
            key = by_node[i]
            if key not in group.children:
                group.children[key] = _Group(leaf=depth == len(prefs) - 1)
            group = group.children[key]
            group.count += svc
        group.heap.append((svc, total, ids[i], i))
    _heapify(root)
    return root


def _heapify(group: _Group) -> None:
    if not group.leaf:
        group.heap = [(child.count, key, child) for key, child in group.children.items()]
        for child in group.children.values():
            _heapify(child)
    heapq.heapify(group.heap)


def _pick(group: _Group, cand: Callable[[int], _Cand], fits: Callable[[_Cand], bool]) -> _Cand | None:
    """The best candidate that can take one more task, leaving its path at the top of each
    heap; drops what can take no more (load only grows within a group, so it never will)."""
    heap = group.heap
    while heap:
        if group.leaf:
            found = cand(heap[0][3])
            if fits(found):
                return found
        else:
            deeper = _pick(heap[0][2], cand, fits)
            if deeper is not None:
                return deeper
        heapq.heappop(heap)
    return None


def _placed(group: _Group, cand: _Cand) -> None:
    """Re-key the path that _pick left at the tops after `cand` took a task."""
    if group.leaf:
        heapq.heapreplace(group.heap, (cand.svc, cand.total, cand.id, cand.index))
    else:
        count, key, child = group.heap[0]
        _placed(child, cand)
        heapq.heapreplace(group.heap, (count + 1, key, child))


# ---------------------------------------------------------------- schedule

class NodeSet:
    """The nodes of one scheduling pass, prepared once: the static filters' verdicts are kept
    per distinct (constraints, platforms) and label values per preference, so many services
    with the same rules cost one evaluation per node. Nodes must not change during the pass."""

    def __init__(self, nodes: Iterable[pb.Node]):
        self.nodes: list[pb.Node] = list({n.id: n for n in nodes}.values())
        self.ids = [n.id for n in self.nodes]
        self.capacity = [(n.description.resources.nano_cpus, n.description.resources.memory_bytes)
                         for n in self.nodes]
        self._eligible: dict[tuple, list[int]] = {}
        self._preference_keys: dict[Preference, list[tuple]] = {}

    def eligible(self, demand: Demand, statics: list[_Static]) -> list[int]:
        """Indices of the nodes that pass the static filters."""
        key = (demand.constraints, demand.platforms)
        if key not in self._eligible:
            self._eligible[key] = [i for i, n in enumerate(self.nodes) if all(f.passes(n) for f in statics)]
        return self._eligible[key]

    def preference_keys(self, pref: Preference) -> list[tuple]:
        """Per node, its group for the preference; nodes without the label are a group of their own."""
        if pref not in self._preference_keys:
            values = (pref.node_value(n) for n in self.nodes)
            self._preference_keys[pref] = [(0, v) if v is not None else (1, "") for v in values]
        return self._preference_keys[pref]


def schedule(demand: Demand, count: int, nodes: Sequence[pb.Node] | NodeSet, load: Load) -> Placement:
    """Place `count` identical tasks of `demand` in one pass; add them to `load`.

    `nodes`: the swarm's nodes, or a NodeSet of them to share the static work between the
    groups of one pass. Raises InvalidArgument for a bad constraint or preference (validate()
    catches it earlier)."""
    node_set = nodes if isinstance(nodes, NodeSet) else NodeSet(nodes)
    statics = _static_filters(demand)
    eligible = node_set.eligible(demand, statics)
    made: dict[int, _Cand] = {}  # a group of 100 tasks on 1,000 nodes needs few of them

    def cand(i: int) -> _Cand:
        if i not in made:
            made[i] = _Cand(i, node_set.nodes[i], node_set.capacity[i], load.nodes.get(node_set.ids[i]), demand)
        return made[i]

    root, fits = _tree(node_set, eligible, load.nodes, demand), _fits(demand)
    chosen: list[str] = []
    while len(chosen) < count:
        found = _pick(root, cand, fits)
        if found is None:
            break
        found.free_cpu -= demand.nano_cpus
        found.free_mem -= demand.memory_bytes
        found.svc += 1
        found.total += 1
        found.ports.update(demand.host_ports)
        _placed(root, found)
        chosen.append(found.id)
    _record(load, demand, chosen)
    if len(chosen) == count:
        return Placement(tuple(chosen))
    exclusions = _attribute(node_set.nodes, [(f.name, f.passes, f.reason) for f in statics])
    exclusions += _dynamic_exclusions(demand, [cand(i) for i in eligible])
    return Placement(tuple(chosen), count - len(chosen), Explanation(len(node_set.nodes), tuple(exclusions)))


def _record(load: Load, demand: Demand, chosen: list[str]) -> None:
    per_node: dict[str, int] = {}
    for node_id in chosen:
        per_node[node_id] = per_node.get(node_id, 0) + 1
    for node_id, n in per_node.items():
        load.add(node_id, demand, n)
