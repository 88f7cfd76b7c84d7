"""Leader failover with 3 in-process managers (real Raft) and 3 workers (simulated executor):
the tasks keep running, no node is marked down, nothing is started twice, and the new leader
goes on orchestrating."""
import asyncio

from manager.dispatcher.sessions import DOWN_AFTER_PERIODS, NEW_LEADER_GRACE, NEW_LEADER_GRACE_MIN
from manager.state.tables import Event
from proto import control_pb2, store_pb2
from proto import objects_pb2 as pb
from tests.integration.simkit import HEARTBEAT, Watch
from tests.integration.swarmtest import swarm_test
from tests.support.builders import service_spec
from tests.support.poll import holds

# How long a new leader waits before it marks any node Down.
GRACE = max(NEW_LEADER_GRACE * DOWN_AFTER_PERIODS * HEARTBEAT, NEW_LEADER_GRACE_MIN)


@swarm_test(managers=3, workers=3, drain_managers=True)   # tasks only on the workers
async def test_leader_failover_keeps_tasks_running_without_duplicates(swarm):
    await swarm.create(service_spec("web", replicas=6))
    before = await swarm.until(lambda: swarm.converged("web", 6), what="6 running")
    assert swarm.by_host(before) == {"w1": 2, "w2": 2, "w3": 2}
    workers = [swarm.nodes[h] for h in ("w1", "w2", "w3")]
    started = [w.executor.started for w in workers]

    old = swarm.leader()

    def containers_intact():   # every container of before keeps running, and no other
        running = sorted((w.id, cfg.name) for w in workers for cfg in w.running("web"))
        return running == sorted((t.node_id, t.id) for t in before)
    async with Watch(containers_intact, "the 6 containers running, no other") as watch:
        await swarm.stop(old.hostname)
        new = await swarm.until(lambda: swarm.leader(), timeout=10, what="a new leader")
        # Read through the new leader once it has applied its election's no-op: a follower's
        # reads may still lag by the last commits (linearizable reads are issue #12's).
        await swarm.until(lambda: new.node.manager.store.leads_current(), what="the new leader current")
        await swarm.use(new.hostname)
        await swarm.until(lambda: _answers(swarm), what="the control API through the new leader")

        async def same_tasks():
            tasks = await swarm.converged("web", 6)
            nodes = {n.description.hostname: n.status.state
                     for n in (await swarm.control.ListNodes(control_pb2.ListNodesRequest())).nodes}
            assert tasks and sorted(t.id for t in tasks) == sorted(t.id for t in before), \
                f"tasks changed: {_summary(await swarm.tasks('web'))}; running: {swarm.containers('web')}"
            assert all(nodes[w.hostname] == pb.NodeStatus.READY for w in workers), f"a worker is {nodes}"
            return True
        # Past the new leader's grace period: the workers found it; nobody was marked down.
        await holds(same_tasks, GRACE + 1.0, "the same 6 tasks running, every worker Ready")
    assert not watch.violations and watch.samples > 50
    assert [w.executor.started for w in workers] == started

    await swarm.scale("web", 9)                        # the new leader orchestrates
    nine = await swarm.until(lambda: swarm.converged("web", 9), what="9 running")
    assert new.hostname != old.hostname
    assert sorted(t.slot for t in nine) == list(range(1, 10))
    assert {t.id for t in before} <= {t.id for t in nine}


async def _answers(swarm):
    try:
        return await swarm.node("w1")
    except Exception:
        return None


@swarm_test()
async def test_leader_loops_stop_when_leadership_is_lost_even_as_a_change_arrives(swarm):
    """docs/design.md, "Control plane": the orchestrators and the scheduler run only on the leader, and are
    cancelled when it loses leadership. A change arriving at that moment must not keep them
    going (they would go on writing beside the new leader's)."""
    await swarm.create(service_spec("web", replicas=2))
    await swarm.until(lambda: swarm.converged("web", 2), what="2 running")
    manager = swarm.nodes["m1"].node.manager
    await swarm.until(lambda: _quiet(manager.store, 0.3), what="no change for 0.3 s")
    loops = {t.get_name(): t for t in manager._leader_tasks}
    changed = Event(store_pb2.StoreAction.UPDATE, "x", pb.Service())
    manager.store._publish([changed])          # a change arrives...
    manager._leadership_changed(False)         # ...as this manager loses leadership
    _, still = await asyncio.wait(loops.values(), timeout=2.0)
    still_running = sorted(t.get_name() for t in still)
    while still:                               # cancel again, so that the test ends
        for t in still:
            t.cancel()
        _, still = await asyncio.wait(still, timeout=0.1)
    assert {"orchestrator", "scheduler"} <= set(loops)
    assert still_running == [], f"leader loops still running after losing leadership: {still_running}"


async def _quiet(store, seconds):
    events = store.subscribe()
    try:
        await asyncio.wait_for(events.get(), seconds)
        return False
    except TimeoutError:
        return True
    finally:
        store.unsubscribe(events)


@swarm_test(managers=3)
async def test_three_managers_commit_a_service_of_a_thousand_tasks(swarm):
    """A large write (1,000 task creates in one batch, ~200 KB) must commit with 3 managers as
    it does with one: the followers receive it in pieces."""
    await swarm.create(service_spec("big", replicas=1000))

    async def placed():
        tasks = await swarm.tasks("big")
        return tasks if len(tasks) == 1000 and all(t.status.state >= pb.ASSIGNED for t in tasks) else None
    tasks = await swarm.until(placed, timeout=20, what="1,000 tasks created and assigned")
    per_host = swarm.by_host(tasks)
    assert sorted(per_host.values()) == [333, 333, 334]


def _summary(tasks) -> list[str]:
    return [f"{t.slot}:{t.id[:6]}@{t.node_id[:6]} {pb.TaskState.Name(t.status.state)}/"
            f"{pb.TaskState.Name(t.desired_state)} {t.status.message!r}" for t in tasks]
