"""Who the managers are: quorum rules and promotion / demotion.

A role change is two steps, in an order that keeps Raft safe:
- promote: the node becomes a manager in the store first; it then renews its
  certificate, and only that renewal adds it to Raft and hands it the Raft key,
  right before it starts its Raft replica (manager/ca/server.py);
- demote: the node leaves Raft first; only then is its role set to worker, so
  its renewal can never give a worker certificate to a Raft member.
"""
import asyncio
import logging
import time

from covey import addr
from covey.errors import Conflict, FailedPrecondition, NotFound
from manager.state import store as st
from manager.state.actions import modify
from manager.state.loops import each_change
from proto import objects_pb2 as pb

log = logging.getLogger(__name__)



def quorum(members: int) -> int:
    return members // 2 + 1


def managers(store: st.Store) -> list[pb.Node]:
    return [n for n in store.nodes.view() if n.role == pb.MANAGER]


def reachable(store: st.Store, node: pb.Node) -> bool:
    """Connected to this replica, and not found silent by the leader (track_reachability):
    a manager that cannot write its journal keeps its connections but answers nothing."""
    return (store.members().get(node.manager_status.raft_addr, False)
            and node.manager_status.reachability != pb.ManagerStatus.UNREACHABLE)


async def track_reachability(store: st.Store, self_raft_addr: str, period: float, silent_after: float) -> None:
    """Leader loop: record in each other manager's node whether it answers this leader's
    appends, so that every manager's `node ls` shows the leader's view (one write per change)."""
    while True:
        answering = store.answering(silent_after)
        for node in managers(store):
            raft_addr = node.manager_status.raft_addr
            if raft_addr == self_raft_addr or raft_addr not in answering:
                continue
            await _record_reachability(store, node, answering[raft_addr], silent_after)
        await asyncio.sleep(period)


async def _record_reachability(store: st.Store, node: pb.Node, answers: bool, silent_after: float) -> None:
    want = pb.ManagerStatus.REACHABLE if answers else pb.ManagerStatus.UNREACHABLE
    if node.manager_status.reachability == want:
        return

    def change(n: pb.Node):
        if n.role != pb.MANAGER:
            raise NotFound(f"{n.id} is no longer a manager")
        n.manager_status.reachability = want
    name = node.description.hostname or node.id
    try:
        await modify(store, pb.Node, node.id, change, time.time_ns())
    except NotFound:                                  # demoted or removed meanwhile
        return
    except Conflict as exc:                           # a busy node: the next pass
        log.info("could not record that manager %s is %s: %s", name,
                 pb.ManagerStatus.Reachability.Name(want).lower(), exc)
        return
    if answers:
        log.info("manager %s answers Raft again", name)
    else:
        log.warning("manager %s is unreachable: no Raft answer for %gs", name, silent_after)


def check_can_lose(store: st.Store, node: pb.Node, action: str) -> None:
    """Refuse to take `node` out of the managers when the rest could not keep a quorum."""
    current = managers(store)
    if len(current) <= 1:
        raise FailedPrecondition(f"cannot {action} the last manager of the swarm")
    if len(current) == 2 and node.manager_status.raft_addr == store.leader_addr():
        raise FailedPrecondition(
            f"cannot {action} the leader of a two-manager swarm: its Raft group could not elect "
            "another leader while it steps down; demote the other manager first, or promote a third")
    up = [m for m in current if reachable(store, m)]
    remaining_up = len([m for m in up if m.id != node.id])
    needed = quorum(len(current) - 1)
    if remaining_up < needed:
        raise FailedPrecondition(
            f"cannot {action} {node.description.hostname or node.id}: the swarm would be left with "
            f"{remaining_up} reachable managers out of {len(current) - 1}, fewer than the {needed} a "
            "quorum needs; bring the unreachable managers back, or demote them first")


async def reconcile_roles(store: st.Store, self_raft_addr: str, period: float, step_down) -> None:
    """Leader loop: carry out role changes that node specs ask for.

    `step_down()` is called when this leader itself is being demoted.
    """
    class SteppedDown(Exception):
        pass

    async def step():
        for node in store.nodes.view():
            if node.spec.desired_role != node.role and await _step(store, node, self_raft_addr):
                step_down()
                raise SteppedDown()
    try:
        await each_change(store, period, step, kinds=(pb.Node,))
    except SteppedDown:
        return


async def _step(store: st.Store, node: pb.Node, self_raft_addr: str) -> bool:
    """One role change; True when this leader must step down for its own demotion."""
    if node.spec.desired_role == pb.MANAGER:
        await _promote(store, node)
        return False
    return await _demote(store, node, self_raft_addr)


async def _promote(store: st.Store, node: pb.Node) -> None:
    host = addr.host_of(node.status.addr)
    if not host:
        return  # it has never opened a session: we do not know where it is yet

    api_addr = addr.join(host, addr.API_PORT)

    def change(n: pb.Node):
        n.role = pb.MANAGER
        n.manager_status.CopyFrom(pb.ManagerStatus(api_addr=api_addr, raft_addr=addr.raft_addr(api_addr)))
    await modify(store, pb.Node, node.id, change, time.time_ns())
    log.info("node %s promoted: it joins Raft when it renews its certificate", node.id)


async def _demote(store: st.Store, node: pb.Node, self_raft_addr: str) -> bool:
    raft_addr = node.manager_status.raft_addr
    if raft_addr and raft_addr in store.members():
        if raft_addr == self_raft_addr:
            # pysyncobj cannot remove its own leader: this one steps down (stops its
            # replica), the others elect a leader, and that one finishes the demotion.
            log.info("this leader is being demoted: stepping down")
            return True
        await store.remove_member(raft_addr)

    def change(n: pb.Node):
        n.role = pb.WORKER
        n.ClearField("manager_status")
    await modify(store, pb.Node, node.id, change, time.time_ns())
    log.info("node %s demoted: it left Raft and is now a worker", node.id)
    return False
