"""The job orchestrator's plan: completions, concurrency, retries and reruns."""
from manager.orchestrator.services import plan
from proto import objects_pb2 as pb
from proto import store_pb2
from tests.support import builders
from tests.support.builders import node

SECOND = 10**9


def job(total=3, concurrent=0, version=1, restart=None, sid="j1") -> pb.Service:
    s = builders.service(sid, version=version, image="img", restart=restart)
    s.spec.replicated_job.total_completions = total
    s.spec.replicated_job.max_concurrent = concurrent
    return s


def global_job(version=1) -> pb.Service:
    s = builders.service("g1", version=version, image="img")
    s.spec.global_job.SetInParent()
    return s


def task(tid, slot=0, **kw):
    kw.setdefault("service_id", "j1")
    return builders.task(tid, slot, **kw)


def created(actions) -> list[pb.Task]:
    return [a.task for a in actions if a.kind == store_pb2.StoreAction.CREATE]


def desired(actions) -> dict[str, int]:
    return {a.task.id: a.task.desired_state for a in actions if a.kind == store_pb2.StoreAction.UPDATE}


def test_replicated_job_starts_at_most_max_concurrent_lowest_slots_first():
    made = created(plan([job(total=5, concurrent=2)], [], []))
    assert sorted(t.slot for t in made) == [1, 2]
    assert {t.desired_state for t in made} == {pb.RUNNING}


def test_max_concurrent_unset_runs_every_completion_at_once():
    assert sorted(t.slot for t in created(plan([job(total=3)], [], []))) == [1, 2, 3]


def test_a_completed_slot_is_done_and_frees_a_place_for_the_next():
    tasks = [task("a", 1, state=pb.COMPLETE), task("b", 2, state=pb.RUNNING)]
    actions = plan([job(total=4, concurrent=2)], tasks, [])
    assert [t.slot for t in created(actions)] == [3]
    assert desired(actions) == {"a": pb.COMPLETE}  # never restarted, and its addresses freed


def test_a_finished_job_creates_nothing_more():
    tasks = [task(f"t{s}", s, state=pb.COMPLETE, desired=pb.COMPLETE) for s in (1, 2)]
    assert plan([job(total=2)], tasks, []) == []


def test_a_failed_task_is_retried_by_default_after_the_delay():
    failed = task("f", 1, state=pb.FAILED, at=0)
    early = plan([job(total=1)], [failed], [], now_ns=1 * SECOND)
    assert created(early) == [] and desired(early) == {}  # Docker's 5 s delay
    later = plan([job(total=1)], [failed], [], now_ns=6 * SECOND)
    assert [t.slot for t in created(later)] == [1]
    assert desired(later) == {"f": pb.SHUTDOWN}


def test_restart_condition_none_leaves_a_failed_job_task_alone():
    failed = task("f", 1, state=pb.FAILED, at=0)
    actions = plan([job(total=1, restart={"condition": "NONE"})], [failed], [],
                   now_ns=60 * SECOND)
    assert actions == []


def test_max_attempts_bounds_the_retries_of_a_slot():
    restart = {"condition": "ON_FAILURE", "delay": 0, "max_attempts": 2}
    history = [task("f0", 1, state=pb.FAILED, desired=pb.SHUTDOWN), task("f1", 1, state=pb.FAILED, desired=pb.SHUTDOWN),
               task("f2", 1, state=pb.FAILED, created=1)]  # the first run and two restarts
    assert plan([job(total=1, restart=restart)], history, [], now_ns=SECOND) == []


def test_an_update_reruns_the_job_and_stops_tasks_of_the_old_run():
    old = [task("a", 1, state=pb.COMPLETE, desired=pb.COMPLETE), task("b", 2, state=pb.RUNNING)]
    actions = plan([job(total=2, version=2)], old, [])
    assert sorted(t.slot for t in created(actions)) == [1, 2]
    assert {t.spec_version for t in created(actions)} == {2}
    assert desired(actions) == {"b": pb.SHUTDOWN}


def test_global_job_runs_once_per_eligible_node_including_new_ones():
    nodes = [node("n1"), node("n2"), node("n3", availability=pb.DRAIN)]
    first = created(plan([global_job()], [], nodes))
    assert sorted(t.node_id for t in first) == ["n1", "n2"]
    done = [builders.task(f"t-{n}", service_id="g1", node_id=n, state=pb.COMPLETE, desired=pb.COMPLETE)
            for n in ("n1", "n2")]
    assert plan([global_job()], done, nodes) == []
    joined = created(plan([global_job()], done, nodes + [node("n4")]))
    assert [t.node_id for t in joined] == ["n4"]
