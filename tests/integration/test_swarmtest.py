"""The invariant checks of @swarm_test can fail: each one, given a bad state, names the task
and its slot; and the decorator fails a test whose swarm broke one."""
import time

import pytest

from manager.state.actions import modify
from manager.state.tables import Event
from proto import objects_pb2 as pb
from proto import store_pb2
from tests.integration.swarmtest import (
    StateHistory,
    containers_running,
    known_nodes,
    one_live_per_slot,
    state_violations,
    swarm_test,
)
from tests.support.builders import node, service, service_spec, task


def web_task(tid, slot=1, **kw):
    return task(tid, slot, service_id="s1", service_name="web", **kw)


def test_two_live_tasks_in_a_slot_are_named():
    web = service("s1", name="web", replicas=2)
    tasks = [web_task("a", node_id="n1"), web_task("b", node_id="n2", state=pb.PENDING),
             web_task("old", node_id="n1", desired=pb.SHUTDOWN), web_task("done", state=pb.FAILED),
             web_task("c", slot=2, node_id="n1")]
    assert one_live_per_slot([web], tasks) == ["two live tasks for web.1 (task b): a and b"]


def test_two_live_tasks_of_a_global_service_on_one_node_are_named():
    agent = service("s1", name="agent", replicas=None)
    tasks = [task(i, service_id="s1", service_name="agent", node_id=n)
             for i, n in (("a", "n1"), ("b", "n1"), ("c", "n2"))]
    assert one_live_per_slot([agent], tasks) == ["two live tasks for agent.n1 (task b): a and b"]


def test_a_task_on_an_unknown_node_is_named():
    tasks = [web_task("a", node_id="n1"), web_task("b", slot=2, node_id="ghost"), web_task("p", slot=3)]
    assert known_nodes(tasks, [node("n1")]) == ["web.2 (task b) is assigned to unknown node ghost"]


def test_a_running_task_without_its_container_is_named():
    tasks = [web_task("a", node_id="n1"), web_task("b", slot=2, node_id="n2"),
             web_task("c", slot=3, node_id="n2", state=pb.STARTING)]
    assert containers_running(tasks, {"n1": {"a"}, "n2": {"a"}}) == \
        ["web.2 (task b) is RUNNING but its node n2 runs no container for it"]


def test_a_state_moving_back_is_named_per_store():
    history = StateHistory()
    for store, state in (("m1", pb.ASSIGNED), ("m1", pb.RUNNING), ("m2", pb.ASSIGNED), ("m1", pb.ASSIGNED)):
        history.observe(store, Event(store_pb2.StoreAction.UPDATE, "a", web_task("a", state=state)))
    history.observe("m1", Event(store_pb2.StoreAction.DELETE, "a", web_task("a", state=pb.NEW)))
    assert history.violations == ["web.1 (task a) moved back from RUNNING to ASSIGNED in m1's store"]


def test_skipped_checks_are_not_run_and_unknown_ones_refused():
    bad = [web_task("a", node_id="ghost")]
    assert state_violations([], bad, [], {}, checks=("one_live_per_slot",)) == []
    with pytest.raises(AssertionError, match="unknown checks \\['no_such_check'\\]"):
        swarm_test(skip_checks=("no_such_check",))


def test_the_decorator_fails_a_test_whose_swarm_moved_a_state_back(tmp_path):
    @swarm_test()
    async def moves_back(swarm):
        await swarm.create(service_spec("web"))
        running = (await swarm.until(lambda: swarm.converged("web", 1), what="web running"))[0]
        store = swarm.leader().node.manager.store
        await modify(store, pb.Task, running.id, lambda t: setattr(t.status, "state", pb.ASSIGNED), time.time_ns())

    with pytest.raises(AssertionError, match=r"web\.1 \(task \w+\) moved back from RUNNING to ASSIGNED in m1's"):
        moves_back(tmp_path)


def test_the_decorator_fails_a_test_that_left_a_running_task_without_its_container(tmp_path):
    @swarm_test(settle=0.5)
    async def loses_a_container(swarm):
        await swarm.create(service_spec("web"))
        running = (await swarm.until(lambda: swarm.converged("web", 1), what="web running"))[0]
        swarm.nodes["m1"].executor._containers[running.id].status = "exited"  # behind the agent's back

    with pytest.raises(AssertionError, match=r"web\.1 \(task \w+\) is RUNNING but its node \w+ runs no container"):
        loses_a_container(tmp_path)
