"""Orchestrators (leader only): turn services into tasks, and remove what is no longer wanted.

- replicated: N slots each hold one live task; scaling down removes tasks that do not run
  yet, then those on the nodes that run the most of the service;
  a task on a node that is Down or drained is replaced at once (when a Down node returns,
  its agent stops the old one, since its desired state is then SHUTDOWN);
- restart supervisor: a finished task is replaced per its restart policy (Docker's
  defaults: condition any, delay 5 s; max attempts counted within the window);
- global: one live task per eligible node (ready, active, meeting the constraints), including
  nodes that join later; the task of a node that goes down, is drained or no longer meets
  the constraints is shut down (a node that returns gets a new one);
- jobs (replicated-job, global-job): run to completion, see jobs.py;
- reaper: deletes tasks told to go that never reached a node, and keeps the newest finished
  tasks of each slot (per node for global services): the cluster's task history limit, 5.

Every change is a store write; nothing here touches a node directly. Managers steer only
through desired_state (docs/design.md, "Control plane").
"""
import heapq
import logging
import time

from covey.errors import InvalidArgument
from manager.orchestrator import jobs, updater
from manager.orchestrator.dependencies import DependencyGate
from manager.orchestrator.tasks import new_task, set_desired
from manager.scheduler.constraints import parse_constraints
from manager.state import store as st
from manager.state.actions import create, delete
from manager.state.loops import run_planner
from proto import objects_pb2 as pb
from proto import store_pb2

log = logging.getLogger(__name__)

HISTORY_PER_SLOT = 5
LIVE = pb.RUNNING  # a task whose desired state is at most this still counts as wanted


def eligible_for_global(node: pb.Node) -> bool:
    return node.status.state == pb.NodeStatus.READY and node.spec.availability == pb.ACTIVE


DEFAULT_RESTART_DELAY_NS = 5 * 10**9


def plan(services: list[pb.Service], tasks: list[pb.Task], nodes: list[pb.Node],
         now_ns: int | None = None, stacks: list[pb.Stack] | None = None,
         history: int = HISTORY_PER_SLOT) -> list[store_pb2.StoreAction]:
    """Every write that brings the tasks in line with the services: pure (the clock is
    passed in), so it can be tested alone. `stacks` give the services' depends_on."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    # A replicated task on a node that is down, drained or no longer in the swarm (a manager
    # that a restore or force-new-cluster removed) moves: its slot gets a new task.
    known = {n.id for n in nodes}
    gone = {n.id for n in nodes if n.status.state == pb.NodeStatus.DOWN or n.spec.availability == pb.DRAIN}
    gone |= {t.node_id for t in tasks if t.node_id and t.node_id not in known}
    actions: list[store_pb2.StoreAction] = []
    by_service: dict[str, list[pb.Task]] = {}
    for task in tasks:
        by_service.setdefault(task.service_id, []).append(task)
    for service in services:
        mine = by_service.pop(service.id, [])
        if jobs.is_job(service.spec):
            meets = _meets_constraints(service)
            eligible = [n.id for n in nodes if eligible_for_global(n) and meets(n)]
            actions += jobs.plan(service, mine, eligible, now_ns, _restart_due)
        elif service.spec.WhichOneof("mode") == "global":
            actions += _global(service, mine, nodes, now_ns)
        else:
            actions += _replicated(service, mine, gone, now_ns)
    for orphans in by_service.values():  # their service is gone
        actions += [set_desired(t, pb.REMOVE) for t in orphans if t.desired_state < pb.REMOVE]
    actions += _reap(tasks, {n.id for n in nodes}, history)
    if stacks and any(s.spec.dependencies for s in stacks):
        actions = DependencyGate(stacks, services, tasks).apply(actions, tasks)
    return actions


def _live_by(tasks: list[pb.Task], key) -> dict:
    """The live tasks per slot (or node), newest spec first: two while start-first replaces one."""
    live: dict = {}
    for task in sorted(tasks, key=lambda t: (-t.spec_version, -t.meta.created_at_ns)):
        if task.desired_state <= LIVE:
            live.setdefault(key(task), []).append(task)
    return live


def _replace_finished(service: pb.Service, live: dict, tasks: list[pb.Task], now_ns: int,
                      lost=lambda task: False) -> list[store_pb2.StoreAction]:
    """Tell finished tasks that are due for a restart (and lost ones) to shut down, and
    drop them from `live`, so that their slot or node gets a new task."""
    actions = []
    for key, group in list(live.items()):
        task = group[0]
        if lost(task) or _restart_due(service, task, tasks, now_ns):
            actions.append(set_desired(task, pb.SHUTDOWN))  # history
            group.pop(0)
            if not group:
                del live[key]
    return actions


def _replicated(service: pb.Service, tasks: list[pb.Task], gone: set[str], now_ns: int) -> list[store_pb2.StoreAction]:
    wanted = service.spec.replicated.replicas
    slots = _live_by(tasks, key=lambda t: t.slot)
    going = _scale_down(slots, wanted)
    actions = [set_desired(t, pb.REMOVE) for slot in sorted(going) for t in slots[slot]]
    kept = {slot: live for slot, live in slots.items() if slot not in going}
    filled = set(kept)
    actions += _replace_finished(service, kept, tasks, now_ns,
                                 lambda t: t.node_id in gone and t.status.state < pb.COMPLETE)
    # A replaced task's slot comes back first (its restart history is per slot); then the
    # lowest free numbers.
    free = sorted(filled - set(kept)) + [n for n in range(1, wanted + len(slots) + 1) if n not in slots]
    actions += [create(new_task(service, slot=slot)) for slot in free[:wanted - len(kept)]]
    return actions + updater.step(service, kept, tasks, now_ns, lambda slot: new_task(service, slot=slot))


def _scale_down(slots: dict[int, list[pb.Task]], wanted: int) -> set[int]:
    """The slots to remove when there are too many: those whose task is not running first,
    then from the nodes that run the most tasks of the service (docs/design.md, "Control plane"),
    the highest slot first on a tie."""
    extra = len(slots) - wanted
    if extra <= 0:
        return set()
    idle = sorted((s for s, live in slots.items() if live[0].status.state != pb.RUNNING), reverse=True)
    going = set(idle[:extra])
    per_node: dict[str, list[int]] = {}
    for slot in sorted(slots):
        if slot not in going:
            per_node.setdefault(slots[slot][0].node_id, []).append(slot)
    busiest = [(-len(held), node_id) for node_id, held in per_node.items()]
    heapq.heapify(busiest)
    while len(going) < extra:
        _, node_id = heapq.heappop(busiest)
        going.add(per_node[node_id].pop())
        if per_node[node_id]:
            heapq.heappush(busiest, (-len(per_node[node_id]), node_id))
    return going


def _restart_due(service: pb.Service, task: pb.Task, tasks: list[pb.Task], now_ns: int) -> bool:
    """A finished task whose restart policy says: replace it, now."""
    if task.status.state < pb.COMPLETE:
        return False
    policy = service.spec.task.restart
    default = policy.ON_FAILURE if jobs.is_job(service.spec) else policy.ANY  # Docker's defaults
    condition = policy.condition if service.spec.task.HasField("restart") else default
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


def _global(service: pb.Service, tasks: list[pb.Task], nodes: list[pb.Node],
            now_ns: int) -> list[store_pb2.StoreAction]:
    """One task per eligible node that meets the service's constraints (as Docker: a node
    that does not gets none, rather than a task pending forever)."""
    by_node = _live_by(tasks, key=lambda t: t.node_id)
    meets = _meets_constraints(service)
    eligible = {n.id for n in nodes if eligible_for_global(n) and meets(n)}
    known = {n.id: n for n in nodes}
    actions = []
    for node_id, live in list(by_node.items()):
        if node_id not in known:
            actions += [set_desired(t, pb.REMOVE) for t in live]    # the node left the swarm
            del by_node[node_id]
        elif node_id not in eligible and not _paused(known[node_id]):
            actions += [set_desired(t, pb.SHUTDOWN) for t in live]  # down, drained, or no longer matches
            del by_node[node_id]
    in_place = {node_id: live for node_id, live in by_node.items() if node_id in eligible}
    actions += _replace_finished(service, in_place, tasks, now_ns)
    actions += [create(new_task(service, node_id=node_id))
                for node_id in sorted(eligible) if node_id not in in_place]
    return actions + updater.step(service, in_place, tasks, now_ns, lambda node_id: new_task(service, node_id=node_id))


def _paused(node: pb.Node) -> bool:
    """Paused: no new tasks, but the ones it runs stay."""
    return node.spec.availability == pb.PAUSE and node.status.state == pb.NodeStatus.READY


def _meets_constraints(service: pb.Service):
    try:
        parsed = parse_constraints(service.spec.task.placement.constraints)
    except InvalidArgument:  # refused at create; should one get here, the scheduler explains it
        return lambda node: True
    return lambda node: all(c.matches(node) for c in parsed)


def _reap(tasks: list[pb.Task], node_ids: set[str], history: int) -> list[store_pb2.StoreAction]:
    actions = []
    for task in tasks:
        never_sent = task.status.state < pb.ASSIGNED
        node_gone = task.node_id and task.node_id not in node_ids
        if task.desired_state >= pb.REMOVE and (never_sent or node_gone or task.status.state >= pb.COMPLETE):
            actions.append(delete(task))
    # History: the newest finished tasks of a slot are kept, older ones deleted.
    finished: dict[tuple, list[pb.Task]] = {}
    for task in tasks:
        if task.status.state >= pb.COMPLETE and task.desired_state < pb.REMOVE:
            finished.setdefault((task.service_id, task.slot or task.node_id), []).append(task)
    for group in finished.values():
        group.sort(key=lambda t: t.meta.created_at_ns, reverse=True)
        actions += [delete(t) for t in group[history:]]
    return actions


async def run(store: st.Store, period: float) -> None:
    """Leader loop: re-plan whenever services, tasks or nodes change (and every `period`)."""
    def planned(services, tasks, nodes):
        return plan(services, tasks, nodes, stacks=store.stacks.view(), history=history_limit(store))
    await run_planner(store, period, planned)


def history_limit(store: st.Store) -> int:
    """Finished tasks kept per slot: `swarm update --task-history-limit`, else Docker's 5."""
    clusters = store.clusters.view()
    spec = clusters[0].spec if clusters else None
    return spec.task_history_limit if spec is not None and spec.HasField("task_history_limit") else HISTORY_PER_SLOT
