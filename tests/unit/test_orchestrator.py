"""The orchestrators' plan: which tasks to create, which to tell to go, which to delete."""
from manager.orchestrator.services import HISTORY_PER_SLOT, plan
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from proto import store_pb2
from tests.support import builders
from tests.support.builders import node


def service(sid="s1", replicas=None, mode="replicated"):
    return builders.service(sid, replicas=None if mode == "global" else replicas, image="img")


def task(tid, sid="s1", slot=0, **kw):
    return builders.task(tid, slot, service_id=sid, **kw)


def decoded(actions):
    out = []
    for a in actions:
        obj = a.task if a.kind != store_pb2.StoreAction.DELETE else None
        task_id = a.task.id if a.kind != store_pb2.StoreAction.CREATE else None
        out.append((store_pb2.StoreAction.Kind.Name(a.kind), task_id, obj))
    return out


def test_replicated_fills_every_slot_once():
    created = [obj for kind, _, obj in decoded(plan([service(replicas=3)], [], [])) if kind == "CREATE"]
    assert sorted(t.slot for t in created) == [1, 2, 3]
    assert {t.desired_state for t in created} == {pb.RUNNING}
    assert {t.status.state for t in created} == {pb.NEW}  # the allocator makes them PENDING
    assert {t.service_name for t in created} == {"svc-s1"} and {t.spec_version for t in created} == {1}


def test_replicated_replaces_only_missing_slots_and_ignores_finished_ones():
    tasks = [task("a", slot=1), task("b", slot=2, desired=pb.SHUTDOWN, state=pb.SHUTDOWN)]
    created = [obj.slot for kind, _, obj in decoded(plan([service(replicas=2)], tasks, [])) if kind == "CREATE"]
    assert created == [2]


def test_scale_down_tells_the_highest_slots_to_go():
    tasks = [task(f"t{i}", slot=i) for i in range(1, 5)]
    actions = decoded(plan([service(replicas=2)], tasks, []))
    assert [(kind, tid, obj.desired_state) for kind, tid, obj in actions] == [
        ("UPDATE", "t3", pb.REMOVE), ("UPDATE", "t4", pb.REMOVE)]


def test_scale_down_removes_tasks_not_yet_running_then_from_the_busiest_nodes():
    placed = {1: "n1", 2: "n1", 3: "n1", 4: "n2", 5: "n2", 6: "n3"}
    tasks = [task(f"t{s}", slot=s, node_id=n) for s, n in placed.items()] + [task("p7", slot=7, state=pb.PENDING)]
    nodes = [node("n1"), node("n2"), node("n3")]
    planned = decoded(plan([service(replicas=4)], tasks, nodes))
    removed = [tid for kind, tid, obj in planned if obj.desired_state == pb.REMOVE]
    assert sorted(removed) == ["p7", "t2", "t3"]  # n1 and n2 tie at 2 after t3: the node ID decides
    kept = [t for t in tasks if t.id not in removed]
    assert sorted(placed[t.slot] for t in kept) == ["n1", "n2", "n2", "n3"]
    # Scaling up again fills the lowest free slot numbers.
    created = [obj.slot for kind, _, obj in decoded(plan([service(replicas=6)], kept, nodes)) if kind == "CREATE"]
    assert created == [2, 3]


def test_global_one_task_per_eligible_node():
    nodes = [node("n1"), node("n2"), node("n3", state=pb.NodeStatus.DOWN), node("n4", availability=pb.PAUSE)]
    tasks = [task("old", node_id="n2")]
    planned = decoded(plan([service(mode="global")], tasks, nodes))
    created = [obj.node_id for kind, _, obj in planned if kind == "CREATE"]
    assert created == ["n1"]


def test_global_drained_node_stops_its_task_and_a_removed_node_loses_it():
    nodes = [node("n1", availability=pb.DRAIN)]
    tasks = [task("t1", node_id="n1"), task("t2", node_id="gone")]
    actions = {tid: obj.desired_state for kind, tid, obj in decoded(plan([service(mode="global")], tasks, nodes))}
    assert actions == {"t1": pb.SHUTDOWN, "t2": pb.REMOVE}


def test_tasks_of_a_removed_service_are_told_to_go_then_reaped():
    first = decoded(plan([], [task("t1", slot=1)], []))
    assert [(k, tid, o.desired_state) for k, tid, o in first] == [("UPDATE", "t1", pb.REMOVE)]
    never_sent = task("t2", slot=1, desired=pb.REMOVE, state=pb.PENDING)
    still_running = task("t3", slot=2, desired=pb.REMOVE, state=pb.RUNNING, node_id="n1")
    done = task("t4", slot=3, desired=pb.REMOVE, state=pb.SHUTDOWN, node_id="n1")
    deleted = [tid for kind, tid, _ in decoded(plan([], [never_sent, still_running, done], [node("n1")]))
               if kind == "DELETE"]
    assert deleted == ["t2", "t4"]  # the running one waits for its node to stop it


def test_history_keeps_five_finished_tasks_per_slot():
    finished = [task(f"f{i}", slot=1, desired=pb.SHUTDOWN, state=pb.FAILED, created=i) for i in range(8)]
    live = task("live", slot=1, created=99)
    deleted = sorted(tid for kind, tid, _ in decoded(plan([service(replicas=1)], finished + [live], []))
                     if kind == "DELETE")
    assert deleted == ["f0", "f1", "f2"] and HISTORY_PER_SLOT == 5


def test_nothing_to_do_when_converged():
    assert plan([service(replicas=2)], [task("a", slot=1), task("b", slot=2)], []) == []


SECOND = 10**9


def finished(tid, slot=1, state=pb.FAILED, at=0, created=0):
    t = task(tid, slot=slot, state=state, created=created)
    t.status.timestamp_ns = at
    return t


def restart_service(condition=None, delay=None, max_attempts=0, window=0):
    s = service(replicas=1)
    if condition is not None:
        s.spec.task.restart.condition = condition
        if delay is not None:
            s.spec.task.restart.delay_ns = delay
        s.spec.task.restart.max_attempts = max_attempts
        s.spec.task.restart.window_ns = window
    return s


def outcome(svc, tasks, now):
    actions = decoded(plan([svc], tasks, [], now_ns=now))
    return ([(tid, obj.desired_state) for kind, tid, obj in actions if kind == "UPDATE"],
            [obj.slot for kind, _, obj in actions if kind == "CREATE"])


def test_a_task_on_a_down_node_is_replaced_at_once():
    nodes = [node("n1", state=pb.NodeStatus.DOWN), node("n2")]
    tasks = [task("t1", slot=1, node_id="n1"), task("t2", slot=2, node_id="n2")]
    actions = decoded(plan([service(replicas=2)], tasks, nodes))
    assert [(k, tid, o.desired_state) for k, tid, o in actions if k == "UPDATE"] == [("UPDATE", "t1", pb.SHUTDOWN)]
    assert [o.slot for k, _, o in actions if k == "CREATE"] == [1]


def test_a_task_on_a_node_no_longer_in_the_swarm_is_replaced():
    tasks = [task("t1", slot=1, node_id="removed"), task("t2", slot=2, node_id="n2")]
    actions = decoded(plan([service(replicas=2)], tasks, [node("n2")]))
    assert [(k, tid, o.desired_state) for k, tid, o in actions if k == "UPDATE"] == [("UPDATE", "t1", pb.SHUTDOWN)]
    assert [o.slot for k, _, o in actions if k == "CREATE"] == [1]


def test_default_restart_policy_is_any_after_five_seconds():
    svc, dead = restart_service(), finished("t1", at=100 * SECOND)
    assert outcome(svc, [dead], now=104 * SECOND) == ([], [])
    assert outcome(svc, [dead], now=105 * SECOND) == ([("t1", pb.SHUTDOWN)], [1])
    assert outcome(svc, [finished("t1", state=pb.COMPLETE, at=0)], now=5 * SECOND) == ([("t1", pb.SHUTDOWN)], [1])


def test_restart_conditions_none_and_on_failure():
    RP = specs.RestartPolicy
    assert outcome(restart_service(RP.NONE, 0), [finished("t1")], now=SECOND) == ([], [])
    on_failure = restart_service(RP.ON_FAILURE, 0)
    assert outcome(on_failure, [finished("t1", state=pb.COMPLETE)], now=SECOND) == ([], [])
    assert outcome(on_failure, [finished("t1", state=pb.FAILED)], now=SECOND) == ([("t1", pb.SHUTDOWN)], [1])


def test_max_attempts_within_the_window():
    RP = specs.RestartPolicy
    svc = restart_service(RP.ON_FAILURE, 0, max_attempts=2, window=60 * SECOND)
    history = [finished("h1", created=10 * SECOND), finished("h2", created=20 * SECOND)]
    for h in history:
        h.desired_state = pb.SHUTDOWN
    latest = finished("t3", created=30 * SECOND)
    assert outcome(svc, history + [latest], now=40 * SECOND) == ([], [])      # 2 restarts used up
    assert outcome(svc, history + [latest], now=75 * SECOND) == ([("t3", pb.SHUTDOWN)], [1])  # h1 out of window


def test_history_follows_the_clusters_task_history_limit():
    finished = [task(f"f{i}", slot=1, desired=pb.SHUTDOWN, state=pb.FAILED, created=i) for i in range(4)]
    for limit, kept in ((2, ["f2", "f3"]), (0, [])):
        deleted = {tid for kind, tid, _ in decoded(plan([service(replicas=1)], finished, [], history=limit))
                   if kind == "DELETE"}
        assert sorted({t.id for t in finished} - deleted) == kept
