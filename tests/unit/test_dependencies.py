"""depends_on in the orchestrator's plan (manager/orchestrator/dependencies.py): a dependent's
new tasks are held at READY with the reason until every task of what it depends on runs, then
raised to RUNNING; a held task that the scheduler placed is told why it waits."""
from manager.orchestrator.services import plan
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from proto import store_pb2
from tests.support import builders

DEP = specs.ServiceDependency


def stack(condition=DEP.HEALTHY) -> pb.Stack:
    spec = specs.StackSpec(name="shop")
    spec.dependencies.add(service="shop_api", depends_on="shop_db", condition=condition, required=True)
    return pb.Stack(id="st", spec=spec)


def services(db_replicas: int = 2) -> list[pb.Service]:
    return [builders.service("db", name="shop_db", replicas=db_replicas),
            builders.service("api", name="shop_api", replicas=1)]


def db_task(tid: str, slot: int, state: int) -> pb.Task:
    return builders.task(tid, slot, service_id="db", service_name="shop_db", state=state)


def created(actions) -> dict[str, pb.Task]:
    return {a.task.service_name: a.task for a in actions if a.kind == store_pb2.StoreAction.CREATE}


def updated(actions) -> dict[str, pb.Task]:
    return {a.task.id: a.task for a in actions if a.kind == store_pb2.StoreAction.UPDATE}


def test_a_dependent_is_created_held_until_every_task_of_its_dependency_runs():
    first = created(plan(services(), [], [], stacks=[stack()]))
    assert first["shop_db"].desired_state == pb.RUNNING
    api = first["shop_api"]
    assert (api.desired_state, api.explanation.text) == (pb.READY, "waiting for shop_db to be healthy")
    held = builders.task("a1", 1, service_id="api", service_name="shop_api", desired=pb.READY, state=pb.READY)
    held.explanation.text = api.explanation.text
    one_up = [db_task("d1", 1, pb.RUNNING), db_task("d2", 2, pb.STARTING), held]
    assert updated(plan(services(), one_up, [], stacks=[stack()])) == {}
    all_up = [db_task("d1", 1, pb.RUNNING), db_task("d2", 2, pb.RUNNING), held]
    raised = updated(plan(services(), all_up, [], stacks=[stack()]))["a1"]
    assert (raised.desired_state, raised.explanation.text) == (pb.RUNNING, "")


def test_without_dependencies_nothing_is_held():
    first = created(plan(services(), [], [], stacks=[pb.Stack(id="st", spec=specs.StackSpec(name="shop"))]))
    assert {t.desired_state for t in first.values()} == {pb.RUNNING}


def test_a_placed_held_task_is_told_again_why_it_waits():
    placed = builders.task("a1", 1, service_id="api", service_name="shop_api", desired=pb.READY, state=pb.ASSIGNED)
    told = updated(plan(services(), [db_task("d1", 1, pb.PENDING), placed], [], stacks=[stack(DEP.STARTED)]))
    assert (told["a1"].desired_state, told["a1"].explanation.text) == (pb.READY, "waiting for shop_db to run")


def test_a_dependency_that_is_gone_holds_nothing():
    held = builders.task("a1", 1, service_id="api", service_name="shop_api", desired=pb.READY, state=pb.READY)
    only_api = [builders.service("api", name="shop_api", replicas=1)]
    assert updated(plan(only_api, [held], [], stacks=[stack()]))["a1"].desired_state == pb.RUNNING
