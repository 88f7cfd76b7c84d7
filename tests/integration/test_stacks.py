"""Stacks through the Control API of in-process swarms (real managers and agents, simulated
executor): deploy, the same files again restart nothing, a change rolls only its service,
prune, rollback, rm; bad input stores nothing; a dry run writes nothing; depends_on with
service_healthy holds the dependent's tasks until the dependency is healthy."""
import io

import grpc

from covey.compose import load_stack
from proto import control_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.swarmtest import swarm_test

Change = control_pb2.StackChange
SHOP = """
services:
  db:
    image: lab/db:1
    environment: {SIM_HEALTH_AFTER: "__HEALTH__"}
    healthcheck: {test: ["CMD", "true"], interval: 1s}
    secrets: [db_password]
  api:
    image: lab/api:1
    deploy: {replicas: 2, update_config: {monitor: 200ms}}
    depends_on: {db: {condition: service_healthy}}
    networks: [default, back]
    secrets: [db_password]
  web:
    image: lab/web:1
    deploy: {update_config: {monitor: 200ms}}
networks:
  back: {}
secrets:
  db_password: {environment: DB_PASSWORD}
"""


def stack_spec(text: str = SHOP, health_after: float = 0, password: str = "s3cret", **replace) -> specs.StackSpec:
    text = text.replace("__HEALTH__", str(health_after))
    for old, new in replace.items():
        text = text.replace(old.replace("__", ":"), new)
    spec, _ = load_stack(["-"], stack_name="shop", environ={"DB_PASSWORD": password},
                         stdin=io.BytesIO(text.encode()))
    return spec


async def deploy(swarm, spec: specs.StackSpec, **flags) -> control_pb2.DeployStackResponse:
    return await swarm.control.DeployStack(control_pb2.DeployStackRequest(spec=spec, **flags))


def done(answer) -> list[str]:
    return [f"{Change.Action.Name(c.action)} {c.kind} {c.name}" for c in answer.changes
            if c.action != Change.UNCHANGED]


async def everything(swarm) -> dict[str, list[str]]:
    """The names of every stored service, network (but the swarm's own ingress), secret,
    config and stack."""
    c = swarm.control
    return {"services": [s.spec.name for s in (await c.ListServices(control_pb2.ListServicesRequest())).services],
            "networks": [n.spec.name for n in (await c.ListNetworks(control_pb2.ListNetworksRequest())).networks
                         if not n.spec.ingress],
            "stacks": [s.spec.name for s in (await c.ListStacks(control_pb2.ListStacksRequest())).stacks],
            "secrets": sorted(s.spec.name for s in swarm.leader().node.manager.store.secrets.list())}


async def all_running(swarm, counts: dict[str, int]) -> dict[str, list[pb.Task]] | None:
    out = {}
    for name, count in counts.items():
        tasks = await swarm.converged(name, count)
        if tasks is None:
            return None
        out[name] = tasks
    return out


async def settled(swarm, counts: dict[str, int]) -> dict[str, list[pb.Task]] | None:
    """Converged, and every rolling update ended."""
    running = await all_running(swarm, counts)
    for name in counts:
        if (await swarm.get(name)).update_status.state == pb.UpdateStatus.UPDATING:
            return None
    return running


STACK = {"shop_db": 1, "shop_api": 2, "shop_web": 1}


def ids(tasks: dict[str, list[pb.Task]]) -> dict[str, set[str]]:
    return {name: {t.id for t in group} for name, group in tasks.items()}


@swarm_test(workers=2, timeout=90)
async def test_deploy_redeploy_change_prune_rollback_and_remove(swarm):
    first = await deploy(swarm, stack_spec())
    assert done(first) == ["CREATE network shop_back", "CREATE network shop_default", "CREATE secret shop_db_password",
                           "CREATE service shop_db", "CREATE service shop_api", "CREATE service shop_web"]
    before = ids(await swarm.until(lambda: all_running(swarm, STACK), what="the stack running"))

    again = await deploy(swarm, stack_spec())
    assert done(again) == [] and again.stack.generation == 1
    assert ids(await swarm.until(lambda: all_running(swarm, STACK))) == before
    assert {t.id for t in await swarm.tasks()} == set().union(*before.values())   # no task was replaced

    changed = await deploy(swarm, stack_spec(**{"lab/web__1": "lab/web:2"}))
    assert done(changed) == ["UPDATE service shop_web"]
    after = ids(await swarm.until(lambda: settled(swarm, STACK), what="web updated"))
    assert after["shop_db"] == before["shop_db"] and after["shop_api"] == before["shop_api"]
    assert after["shop_web"].isdisjoint(before["shop_web"])

    without_web = SHOP.replace("  web:\n    image: lab/web:1\n    deploy: {update_config: {monitor: 200ms}}\n", "")
    pruned = await deploy(swarm, stack_spec(without_web), prune=True)
    assert done(pruned) == ["REMOVE service shop_web"]
    await swarm.until(lambda: _gone(swarm, "shop_web"), what="web's tasks gone")

    rolled = await swarm.control.RollbackStack(control_pb2.RollbackStackRequest(stack="shop"))
    assert done(rolled) == ["CREATE service shop_web"]
    assert (await swarm.until(lambda: all_running(swarm, {"shop_web": 1})))["shop_web"][0].spec.container.image \
        == "lab/web:2"

    removed = await swarm.control.RemoveStack(control_pb2.RemoveStackRequest(stack="shop"))
    assert sorted(done(removed)) == sorted(["REMOVE service shop_db", "REMOVE service shop_api",
                                            "REMOVE service shop_web", "REMOVE secret shop_db_password",
                                            "REMOVE network shop_back", "REMOVE network shop_default"])
    assert await everything(swarm) == {"services": [], "networks": [], "stacks": [], "secrets": []}
    await swarm.until(lambda: _no_tasks_running(swarm), what="every container of the stack stopped")


async def _gone(swarm, name: str) -> bool:
    return not any(t.service_name == name and t.status.state == pb.RUNNING for t in await swarm.tasks()) \
        and not swarm.containers(name)


async def _no_tasks_running(swarm) -> bool:
    return all(not swarm.containers(name) for name in STACK)


@swarm_test(workers=1)
async def test_a_changed_secret_rolls_only_its_users_to_a_new_version(swarm):
    await deploy(swarm, stack_spec())
    before = ids(await swarm.until(lambda: all_running(swarm, STACK)))
    answer = await deploy(swarm, stack_spec(password="n3w"))
    assert done(answer) == ["CREATE secret shop_db_password-v2", "UPDATE service shop_db", "UPDATE service shop_api",
                            "REMOVE secret shop_db_password"]
    after = ids(await swarm.until(lambda: settled(swarm, STACK), what="the secret's users rolled"))
    assert after["shop_web"] == before["shop_web"] and after["shop_api"].isdisjoint(before["shop_api"])
    assert (await everything(swarm))["secrets"] == ["shop_db_password-v2"]
    got = (await swarm.control.GetStack(control_pb2.GetStackRequest(stack="shop"))).stack
    assert got.spec.secrets[0].data == b"" and got.generation == 2     # the API never shows the data


@swarm_test(workers=1)
async def test_bad_input_fails_before_anything_is_written(swarm):
    external = SHOP.replace("networks:\n  back: {}", "networks:\n  back: {external: true}")
    unknown = stack_spec()
    unknown.services[1].task.networks.add(target="nowhere")
    await swarm.create(specs.ServiceSpec(name="shop_web", task=specs.TaskSpec(
        container=specs.ContainerSpec(image="lab/other:1"))))
    stored = await everything(swarm)
    cases = [(stack_spec(external), "NOT_FOUND", "stack shop: external network back not found"),
             (unknown, "INVALID_ARGUMENT", "service shop_api: network 'nowhere' is neither a network of stack shop"),
             (stack_spec(), "ALREADY_EXISTS", "service shop_web already exists (outside any stack)")]
    for spec, code, message in cases:
        try:
            await deploy(swarm, spec)
        except grpc.aio.AioRpcError as exc:
            assert (exc.code().name, message in exc.details()) == (code, True), exc.details()
        else:
            raise AssertionError(f"deploy succeeded; expected {message}")
        assert await everything(swarm) == stored
    dry = await deploy(swarm, stack_spec(SHOP.replace("web:", "front:")), dry_run=True)
    assert "CREATE service shop_front" in done(dry) and await everything(swarm) == stored


@swarm_test(workers=1)
async def test_depends_on_service_healthy_holds_the_dependent_until_the_dependency_is_healthy(swarm):
    await deploy(swarm, stack_spec(health_after=1.5))

    async def held():
        api = await swarm.tasks("shop_api")
        db = await swarm.tasks("shop_db")
        waiting = [t for t in api if t.desired_state == pb.READY and t.status.state == pb.READY]
        return waiting if len(waiting) == 2 and db and db[0].status.state < pb.RUNNING else None
    waiting = await swarm.until(held, what="api prepared, held while db is not healthy")
    assert {t.explanation.text for t in waiting} == {"waiting for shop_db to be healthy"}
    assert not swarm.containers("shop_api")

    running = await swarm.until(lambda: all_running(swarm, STACK), what="api started once db is healthy")
    db_up = running["shop_db"][0].status.timestamp_ns
    assert all(t.status.timestamp_ns >= db_up for t in running["shop_api"])
    assert {t.id for t in running["shop_api"]} == {t.id for t in waiting}   # the held tasks started


MIGRATE = """
services:
  migrate:
    image: lab/migrate:1
    environment: {SIM_RUN: "1"}
    deploy: {mode: replicated-job}
  app:
    image: lab/app:1
    depends_on: {migrate: {condition: service_completed_successfully}}
"""


@swarm_test(workers=1)
async def test_depends_on_a_job_that_must_complete_first(swarm):
    await deploy(swarm, stack_spec(MIGRATE))

    async def app_held_while_migrating():
        app, job = await swarm.tasks("shop_app"), await swarm.tasks("shop_migrate")
        told = app and app[0].explanation.text == "waiting for shop_migrate to complete"
        return app if told and app[0].desired_state == pb.READY and job and job[0].status.state == pb.RUNNING \
            else None
    await swarm.until(app_held_while_migrating, what="app held, saying why, while the job runs")
    running = await swarm.until(lambda: all_running(swarm, {"shop_app": 1}), what="app started after the job")
    (job,) = await swarm.tasks("shop_migrate")
    assert job.status.state == pb.COMPLETE and running["shop_app"][0].status.timestamp_ns >= job.status.timestamp_ns
