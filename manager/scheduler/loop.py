"""The scheduler's leader loop: place pending tasks with manager/scheduler/placement.py.

Identical pending tasks (same service and spec version) are placed as a group in one
pass. A global task is checked against the one node it belongs to. A task that cannot be
placed stays PENDING and keeps the explanation; every change to nodes, tasks or services
triggers another pass, so it is retried when nodes, resources or labels change.
"""
import logging
import time

from covey.errors import InvalidArgument
from manager.allocator import ports
from manager.scheduler import placement
from manager.state import store as st
from manager.state.actions import update
from manager.state.loops import run_planner
from proto import objects_pb2 as pb
from proto import store_pb2

log = logging.getLogger(__name__)


def current_load(tasks: list[pb.Task], demands: dict[str, placement.Demand]) -> placement.Load:
    load = placement.Load()
    for task in tasks:
        holds = task.node_id and task.status.state >= pb.ASSIGNED and task.status.state < pb.COMPLETE
        if holds and task.service_id in demands:
            load.add(task.node_id, demands[task.service_id], host_ports=[ports.key(p) for p in task.host_ports])
    return load


def plan(services: list[pb.Service], tasks: list[pb.Task], nodes: list[pb.Node]) -> list[store_pb2.StoreAction]:
    """The assignments (and explanations) for every pending task: pure, testable alone."""
    demands = {s.id: placement.Demand.from_service(s) for s in services}
    load = current_load(tasks, demands)
    groups: dict[tuple, list[pb.Task]] = {}
    for task in tasks:
        if task.status.state == pb.PENDING and task.desired_state <= pb.RUNNING and task.service_id in demands:
            groups.setdefault((task.service_id, task.spec_version, task.node_id), []).append(task)
    by_id = {n.id: n for n in nodes}
    by_service = {s.id: s for s in services}
    avoid = ports.ingress_numbers(services)  # a host port the swarm picks is no ingress port
    every_node = placement.NodeSet(nodes)  # built once per pass: filters evaluated once per node
    actions = []
    for (service_id, _, node_id), group in sorted(groups.items()):
        group.sort(key=lambda t: (t.slot, t.id))
        candidates = [by_id[node_id]] if node_id in by_id else ([] if node_id else every_node)
        try:
            placed = placement.schedule(demands[service_id], len(group), candidates, load)
        except InvalidArgument as exc:  # a spec the control API let through: say so on the tasks
            actions += [_pending(t, pb.PlacementExplanation(text=str(exc))) for t in group]
            continue
        for task, chosen in zip(group, placed.node_ids, strict=False):
            given = ports.host_ports(by_service[service_id].spec.endpoint.ports, load.nodes[chosen].host_ports, avoid)
            load.nodes[chosen].host_ports.update(ports.key(p) for p in given)
            actions.append(_assign(task, chosen, given))
        if placed.explanation is None:  # every task was placed
            continue
        explanation = placed.explanation.to_proto()
        for task in group[len(placed.node_ids):]:
            if task.explanation != explanation:
                actions.append(_pending(task, explanation))
    return actions


def _assign(task: pb.Task, node_id: str, host_ports: list) -> store_pb2.StoreAction:
    placed = pb.Task()
    placed.CopyFrom(task)
    placed.node_id = node_id
    del placed.host_ports[:]
    placed.host_ports.extend(host_ports)
    placed.ClearField("explanation")
    placed.status.CopyFrom(pb.TaskStatus(state=pb.ASSIGNED, timestamp_ns=time.time_ns(),
                                         message="scheduler assigned task to node"))
    return update(placed)


def _pending(task: pb.Task, explanation: pb.PlacementExplanation) -> store_pb2.StoreAction:
    waiting = pb.Task()
    waiting.CopyFrom(task)
    waiting.explanation.CopyFrom(explanation)
    waiting.status.err = explanation.text
    return update(waiting)


async def run(store: st.Store, period: float) -> None:
    """Leader loop: another pass on every change (and every `period`)."""
    await run_planner(store, period, plan)
