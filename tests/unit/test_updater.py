"""Rolling updates, one orchestrator pass at a time: order, parallelism, delay, monitor, failures."""
import functools

from manager.orchestrator.services import plan
from proto import objects_pb2 as pb
from proto import store_pb2
from tests.support import builders

S = 10**9


def service(replicas=3, version=2, order="STOP_FIRST", parallelism=1, delay=0, monitor=1,
            failure_action="PAUSE", ratio=0.0, state=pb.UpdateStatus.UPDATING):
    """Service s updating from img:v1 to img:v2 (delay and monitor in seconds)."""
    s = builders.service("s", name="web", version=version, image="img:v2", replicas=replicas,
                         update={"order": order, "parallelism": parallelism, "delay": delay, "monitor": monitor,
                                 "failure_action": failure_action, "max_failure_ratio": ratio})
    s.previous_spec.CopyFrom(builders.with_image(s.spec, "img:v1"))
    s.update_status.state = state
    return s


task = functools.partial(builders.task, service_id="s", node_id="n1")


def step(svc, tasks, now):
    out = {"shutdown": [], "created": [], "status": None, "service": None}
    for a in plan([svc], tasks, [builders.node("n1")], now_ns=now):
        if a.HasField("service"):
            out["service"] = a.service
            out["status"] = out["service"].update_status.state
        elif a.kind == store_pb2.StoreAction.CREATE:
            out["created"].append(a.task.slot)
        elif a.task.desired_state == pb.SHUTDOWN:
            out["shutdown"].append(a.task.id)
    return out


def test_stop_first_replaces_one_slot_at_a_time():
    old = [task(f"o{i}", i) for i in (1, 2, 3)]
    first = step(service(), old, now=10 * S)
    assert first["shutdown"] == ["o1"] and first["created"] == [1]
    # Slot 1 has a new task, not yet healthy (running for less than the monitor): nothing more.
    new1 = task("n1", 1, version=2, created=10 * S)
    waiting = step(service(), [new1] + old[1:], now=10 * S + S // 2)
    assert waiting["created"] == [] and waiting["shutdown"] == []
    after = step(service(), [new1] + old[1:], now=11 * S)
    assert after["shutdown"] == ["o2"] and after["created"] == [2]


def test_start_first_keeps_the_old_task_until_the_new_one_runs():
    old = [task("o1", 1)]
    svc = service(replicas=1, order="START_FIRST")
    first = step(svc, old, now=0)
    assert first["created"] == [1] and first["shutdown"] == []
    starting = task("n1", 1, version=2, state=pb.STARTING)
    assert step(svc, old + [starting], now=S)["shutdown"] == []
    running = task("n1", 1, version=2, state=pb.RUNNING, created=S)
    assert step(svc, old + [running], now=S)["shutdown"] == ["o1"]


def test_parallelism_and_delay_between_batches():
    old = [task(f"o{i}", i) for i in (1, 2, 3, 4)]
    svc = service(replicas=4, parallelism=2, delay=10)
    assert step(svc, old, now=0)["created"] == [1, 2]
    new = [task("n1", 1, version=2, created=0), task("n2", 2, version=2, created=0)]
    # Healthy after 1 s of monitor, then 10 s of delay before the next batch.
    assert step(svc, new + old[2:], now=5 * S)["created"] == []
    assert step(svc, new + old[2:], now=11 * S)["created"] == [3, 4]


def test_completion_is_recorded():
    new = [task(f"n{i}", i, version=2, created=0) for i in (1, 2, 3)]
    assert step(service(), new, now=2 * S)["status"] == pb.UpdateStatus.COMPLETED


def test_a_failed_new_task_pauses_by_default():
    tasks = [task("n1", 1, version=2, state=pb.FAILED), task("o2", 2), task("o3", 3)]
    out = step(service(), tasks, now=10 * S)
    assert out["status"] == pb.UpdateStatus.PAUSED and "failed" in out["service"].update_status.message
    assert out["created"] == [1]  # the restart policy (any, 5 s) still retries the failed slot


def test_failure_action_rollback_returns_to_the_previous_spec():
    tasks = [task("n1", 1, version=2, state=pb.REJECTED), task("o2", 2), task("o3", 3)]
    out = step(service(failure_action="ROLLBACK"), tasks, now=10 * S)
    rolled = out["service"]
    assert out["status"] == pb.UpdateStatus.ROLLBACK_STARTED
    assert rolled.spec.task.container.image == "img:v1" and rolled.spec_version == 3
    assert rolled.previous_spec.task.container.image == "img:v2"


def test_max_failure_ratio_tolerates_some_failures():
    tasks = [task("n1", 1, version=2, state=pb.FAILED), task("o2", 2), task("o3", 3), task("o4", 4)]
    out = step(service(replicas=4, ratio=0.5), tasks, now=10 * S)
    assert out["status"] is None  # 1 of 4 failed, at most half may


def test_global_service_updates_node_by_node_and_restarts_its_failed_tasks():
    svc = service(parallelism=1)
    svc.spec.ClearField("replicated")
    getattr(svc.spec, "global").SetInParent()  # a Python keyword as a field name
    nodes = [builders.node(n) for n in ("n1", "n2")]
    old = [task("a", 0), task("b", 0)]
    old[1].node_id = "n2"

    def created(tasks, now):
        return [(a.task.node_id, a.task.spec_version)
                for a in plan([svc], tasks, nodes, now_ns=now) if a.kind == store_pb2.StoreAction.CREATE]
    assert created(old, now=0) == [("n1", 2)], "one node at a time, on that node"
    svc.update_status.state = pb.UpdateStatus.COMPLETED
    failed = task("c", 0, version=2, state=pb.FAILED, created=0)
    assert created([failed, old[1]], now=10 * S) == [("n1", 2)], "a failed global task is restarted in place"


def test_a_rollback_keeps_the_tasks_it_never_reached():
    svc = service(version=3, state=pb.UpdateStatus.ROLLBACK_STARTED)  # back to v1: img:v1 again
    svc.spec.task.container.image = "img:v1"
    untouched = [task(f"o{i}", i) for i in (2, 3)]
    for t in untouched:
        t.spec.container.image = "img:v1"
    failed_new = task("n1", 1, version=2, state=pb.FAILED)
    failed_new.spec.container.image = "img:v2"
    actions = plan([svc], [failed_new] + untouched, [builders.node("n1")],
                   now_ns=10 * S)
    updates = {a.task.id: a.task for a in actions if a.HasField("task") and a.kind == store_pb2.StoreAction.UPDATE}
    assert {i: t.spec_version for i, t in updates.items() if i.startswith("o")} == {"o2": 3, "o3": 3}
    assert {i: t.desired_state for i, t in updates.items() if i.startswith("o")} == {"o2": pb.RUNNING, "o3": pb.RUNNING}
    created = [a.task for a in actions if a.kind == store_pb2.StoreAction.CREATE]
    assert [(t.slot, t.spec.container.image) for t in created] == [(1, "img:v1")], "only the slot it reached"
