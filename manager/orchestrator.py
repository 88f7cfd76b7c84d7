"""Orchestrators (leader only): turn services into tasks, and remove what is no longer wanted.

- replicated: slots 1..N each hold one live task; scaling down tells the highest slots to go;
  a task on a node that is Down is replaced at once (when the node returns, its agent stops
  the old one, since its desired state is then SHUTDOWN);
- restart supervisor: a finished task is replaced per its restart policy (Docker's
  defaults: condition any, delay 5 s; max attempts counted within the window);
- global: one live task per eligible node (ready, active), including nodes that join later;
- reaper: deletes tasks told to go that never reached a node, and keeps 5 finished
  tasks of history per slot (per node for global services).

Every change is a store write; nothing here touches a node directly. Managers steer only
through desired_state (DESIGN.md section 3).
"""
import logging
import time

from manager import store as st
from manager import updater
from manager.taskops import new_task, set_desired
from proto import covey_pb2 as pb

log = logging.getLogger(__name__)

HISTORY_PER_SLOT = 5
LIVE = pb.RUNNING  # a task whose desired state is at most this still counts as wanted


def eligible_for_global(node: pb.Node) -> bool:
    return node.status.state == pb.NodeStatus.READY and node.spec.availability == pb.ACTIVE


DEFAULT_RESTART_DELAY_NS = 5 * 10**9


def plan(services: list[pb.Service], tasks: list[pb.Task], nodes: list[pb.Node],
         now_ns: int | None = None) -> list[pb.StoreAction]:
    """Every write that brings the tasks in line with the services: pure (the clock is
    passed in), so it can be tested alone."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    down = {n.id for n in nodes if n.status.state == pb.NodeStatus.DOWN}
    actions: list[pb.StoreAction] = []
    by_service: dict[str, list[pb.Task]] = {}
    for task in tasks:
        by_service.setdefault(task.service_id, []).append(task)
    for service in services:
        mine = by_service.pop(service.id, [])
        if service.spec.WhichOneof("mode") == "global":
            actions += _global(service, mine, nodes)
        else:
            actions += _replicated(service, mine, down, now_ns)
    for orphans in by_service.values():  # their service is gone
        actions += [set_desired(t, pb.REMOVE) for t in orphans if t.desired_state < pb.REMOVE]
    actions += _reap(tasks, {n.id for n in nodes})
    return actions


def _replicated(service: pb.Service, tasks: list[pb.Task], down: set[str], now_ns: int) -> list[pb.StoreAction]:
    wanted = service.spec.replicated.replicas
    slots: dict[int, list[pb.Task]] = {}  # live tasks per slot, newest spec first (start-first: two)
    for task in sorted(tasks, key=lambda t: (-t.spec_version, -t.meta.created_at_ns)):
        if task.desired_state <= LIVE:
            slots.setdefault(task.slot, []).append(task)
    actions = []
    for slot, live in list(slots.items()):
        task = live[0]
        lost = task.node_id in down and task.status.state < pb.COMPLETE
        if lost or (slot <= wanted and _restart_due(service, task, tasks, now_ns)):
            actions.append(set_desired(task, pb.SHUTDOWN))  # history; the slot gets a new task
            live.pop(0)
            if not live:
                del slots[slot]
    actions += [st.create("task", new_task(service, slot=slot))
                for slot in range(1, wanted + 1) if slot not in slots]
    for slot, live in slots.items():
        if slot > wanted:
            actions += [set_desired(t, pb.REMOVE) for t in live]
    in_range = {slot: live for slot, live in slots.items() if slot <= wanted}
    return actions + updater.step(service, in_range, tasks, now_ns)


def _restart_due(service: pb.Service, task: pb.Task, tasks: list[pb.Task], now_ns: int) -> bool:
    """A finished task whose restart policy says: replace it, now."""
    if task.status.state < pb.COMPLETE:
        return False
    policy = service.spec.task.restart
    condition = policy.condition if service.spec.task.HasField("restart") else policy.ANY
    if condition == policy.NONE or (condition == policy.ON_FAILURE and task.status.state == pb.COMPLETE):
        return False
    delay = policy.delay_ns if policy.HasField("delay_ns") else DEFAULT_RESTART_DELAY_NS
    if now_ns < task.status.timestamp_ns + delay:
        return False  # the loop wakes up again within its period
    if policy.max_attempts:
        since = now_ns - policy.window_ns if policy.window_ns else 0
        restarts = [t for t in tasks if t.slot == task.slot and t.id != task.id
                    and t.status.state >= pb.COMPLETE and t.meta.created_at_ns >= since]
        if len(restarts) + 1 > policy.max_attempts:
            return False
    return True


def _global(service: pb.Service, tasks: list[pb.Task], nodes: list[pb.Node]) -> list[pb.StoreAction]:
    live = {t.node_id: t for t in tasks if t.desired_state <= LIVE}
    eligible = {n.id for n in nodes if eligible_for_global(n)}
    known = {n.id for n in nodes}
    actions = [st.create("task", new_task(service, node_id=node_id))
               for node_id in sorted(eligible) if node_id not in live]
    for node_id, task in live.items():
        if node_id not in known:
            actions.append(set_desired(task, pb.REMOVE))      # the node left the swarm
        elif node_id not in eligible and _drained(nodes, node_id):
            actions.append(set_desired(task, pb.SHUTDOWN))    # drained: stop it there
    return actions


def _drained(nodes: list[pb.Node], node_id: str) -> bool:
    return any(n.id == node_id and n.spec.availability == pb.DRAIN for n in nodes)


def _reap(tasks: list[pb.Task], node_ids: set[str]) -> list[pb.StoreAction]:
    actions = []
    for task in tasks:
        never_sent = task.status.state < pb.ASSIGNED
        node_gone = task.node_id and task.node_id not in node_ids
        if task.desired_state >= pb.REMOVE and (never_sent or node_gone or task.status.state >= pb.COMPLETE):
            actions.append(st.delete("task", task))
    # History: the newest finished tasks of a slot are kept, older ones deleted.
    finished: dict[tuple, list[pb.Task]] = {}
    for task in tasks:
        if task.status.state >= pb.COMPLETE and task.desired_state < pb.REMOVE:
            finished.setdefault((task.service_id, task.slot or task.node_id), []).append(task)
    for group in finished.values():
        group.sort(key=lambda t: t.meta.created_at_ns, reverse=True)
        actions += [st.delete("task", t) for t in group[HISTORY_PER_SLOT:]]
    return actions


async def run(store: st.Store, period: float) -> None:
    """Leader loop: re-plan whenever services, tasks or nodes change (and every `period`)."""
    async def step():
        await st.write_plan(store, plan(store.list("service"), store.list("task"), store.list("node")))
    await st.each_change(store, period, step)
