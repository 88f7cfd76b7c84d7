"""Why and when a node is Down: a node that leaves says so, and is Down at once."""
import time

from manager.orchestrator.services import DEFAULT_RESTART_DELAY_NS
from proto import control_pb2, local_pb2
from proto import objects_pb2 as pb
from tests.integration.simkit import HEARTBEAT, Watch
from tests.integration.swarmtest import swarm_test
from tests.support.builders import SECOND, service_spec


@swarm_test(managers=1, workers=2, drain_managers=True)
async def test_a_node_that_leaves_is_down_at_once_and_its_tasks_move(swarm):
    await swarm.create(service_spec("web", replicas=2))
    before = await swarm.until(lambda: swarm.converged("web", 2), what="web: 2 running")
    leaving = next(t for t in before if swarm.hostname_of(t.node_id) == "w1")

    left = time.time_ns()
    await swarm.nodes["w1"].node.leave(local_pb2.SwarmLeaveRequest())
    node = await swarm.node("w1")
    assert node.status.state == pb.NodeStatus.DOWN and node.status.message == "left the swarm"
    assert (node.meta.updated_at_ns - left) / SECOND < HEARTBEAT  # not a heartbeat deadline

    async def moved():
        live = await swarm.converged("web", 2)
        return live if live and all(swarm.hostname_of(t.node_id) == "w2" for t in live) else None
    after = await swarm.until(moved, what="web: both tasks on w2")
    assert leaving.id not in {t.id for t in after}
    refilled = next(t for t in after if t.slot == leaving.slot)
    # At once: a node that left does not end its tasks, so no restart delay holds the slot.
    assert (refilled.meta.created_at_ns - left) / SECOND < DEFAULT_RESTART_DELAY_NS / SECOND


@swarm_test(managers=3, workers=2, drain_managers=True)
async def test_agents_reach_a_new_leader_at_once_and_no_healthy_node_goes_down(swarm):
    await swarm.create(service_spec("web", replicas=2))
    await swarm.until(lambda: swarm.converged("web", 2), what="web: 2 running")
    old = swarm.leader()
    others = [sim for sim in swarm.nodes.values() if sim is not old]

    def healthy_ones_ready() -> bool:
        nodes = {n.id: n for n in swarm.leader().node.manager.store.nodes.view()} if swarm.leader() else {}
        return all(nodes[s.id].status.state == pb.NodeStatus.READY for s in others if s.id in nodes)

    async with Watch(healthy_ones_ready, "every healthy node Ready") as watch:
        await swarm.stop(old.hostname)
        new = await swarm.until(lambda: swarm.leader(), what="a new leader")
        elected = time.monotonic()
        leader_addr = new.node.membership.advertise_addr
        await swarm.until(lambda: all(s.node.agent.leader == leader_addr for s in others),
                          what="every agent in session with the new leader")
        reached = time.monotonic() - elected
        await swarm.use(new.hostname)
        await swarm.until(lambda: swarm.converged("web", 2), what="web: 2 running")
    assert reached < 1.0, f"the agents reached the new leader {reached:.2f} s after its election"
    assert not watch.violations, watch.violations


@swarm_test(managers=3, workers=0)
async def test_the_leader_records_a_silent_manager_unreachable_for_every_manager(swarm):
    leader = swarm.leader()
    gone, other = [sim for sim in swarm.nodes.values() if sim is not leader]
    await swarm.stop(gone.hostname)

    def recorded():   # in the store, as the leader wrote it: every replica reads the same
        node = leader.node.manager.store.nodes.get(gone.id)
        return node.manager_status.reachability == pb.ManagerStatus.UNREACHABLE
    await swarm.until(recorded, what=f"the leader to record {gone.hostname} unreachable")
    await swarm.use(other.hostname)
    node = next(n for n in (await swarm.control.ListNodes(control_pb2.ListNodesRequest())).nodes if n.id == gone.id)
    assert node.manager_status.reachability == pb.ManagerStatus.UNREACHABLE
    assert not node.manager_status.leader
