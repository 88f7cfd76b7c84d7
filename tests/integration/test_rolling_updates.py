"""Rolling updates and rollbacks end to end (real managers and agents, simulated executor):
parallelism and delay, start-first never below the replica count, failure actions (rollback,
pause), max failure ratio, and a manual rollback through UpdateService(rollback=true)."""
import grpc
import pytest

from proto import objects_pb2 as pb
from tests.integration.simkit import Watch
from tests.integration.swarmtest import swarm_test
from tests.support.builders import SECOND, service_spec, with_image
from tests.support.poll import holds

US = pb.UpdateStatus
V1, V2 = "registry.local/app:v1", "registry.local/app:v2"
MONITOR = 0.3
FAST_RESTART = {"condition": "ANY", "delay": 0.1}


async def update_state(swarm, name, *states):
    service = await swarm.get(name)
    return service if service.update_status.state in states else None


async def running_image(swarm, name, image, count):
    """Converged, every task on `image`."""
    tasks = await swarm.converged(name, count)
    return tasks if tasks and all(t.spec.container.image == image for t in tasks) else None


def running_containers(swarm, name) -> int:
    return sum(swarm.containers(name).values())


@swarm_test(workers=2)
async def test_rolling_update_parallelism_and_delay(swarm):
    delay = 0.4

    spec = service_spec("web", V1, replicas=4, restart=FAST_RESTART,
                        update={"parallelism": 2, "delay": delay, "monitor": MONITOR})
    await swarm.create(spec)
    old = await swarm.until(lambda: swarm.converged("web", 4), what="4 running")
    # stop-first, 2 at a time: never fewer than 2 running
    async with Watch(lambda: running_containers(swarm, "web") >= 2, ">= 2 running") as watch:
        await swarm.update("web", with_image(spec, V2))
        await swarm.until(lambda: update_state(swarm, "web", US.COMPLETED), what="update completed")
    new = await swarm.until(lambda: running_image(swarm, "web", V2, 4), what="4 running v2")
    history = await swarm.tasks("web")
    assert not watch.violations and watch.samples > 10
    assert sorted(t.slot for t in new) == [1, 2, 3, 4] and not {t.id for t in old} & {t.id for t in new}
    batches = sorted(new, key=lambda t: t.meta.created_at_ns)
    first, second = batches[:2], batches[2:]
    assert (first[1].meta.created_at_ns - first[0].meta.created_at_ns) / SECOND < 0.2   # together
    # The second batch waited until the first had run for the monitor period, plus the delay.
    healthy = max(t.status.timestamp_ns for t in first) + int(MONITOR * SECOND)
    assert min(t.meta.created_at_ns for t in second) >= healthy + int(delay * SECOND)
    replaced = [t for t in history if t.id in {o.id for o in old}]
    assert len(replaced) == 4 and all(t.status.state == pb.SHUTDOWN and t.desired_state == pb.SHUTDOWN
                                      for t in replaced)


@swarm_test(workers=2)
async def test_start_first_never_runs_below_the_replica_count(swarm):
    spec = service_spec("web", V1, replicas=3, restart=FAST_RESTART,
                        update={"parallelism": 1, "order": "START_FIRST", "monitor": MONITOR})
    await swarm.create(spec)
    await swarm.until(lambda: swarm.converged("web", 3), what="3 running")
    most = []

    def enough():
        n = running_containers(swarm, "web")
        most.append(n)
        return n >= 3
    async with Watch(enough, ">= 3 running") as watch:
        await swarm.update("web", with_image(spec, V2))
        await swarm.until(lambda: update_state(swarm, "web", US.COMPLETED), what="update completed")
        await swarm.until(lambda: running_image(swarm, "web", V2, 3), what="3 running v2")
    watch, most = watch, max(most)
    assert not watch.violations and watch.samples > 10
    assert most == 4        # the new task started beside the old one, one slot at a time


@swarm_test(workers=2)
async def test_failed_update_rolls_back_by_itself(swarm):
    spec = service_spec("web", V1, replicas=4, restart=FAST_RESTART,
                        update={"parallelism": 1, "monitor": MONITOR, "failure_action": "ROLLBACK"},
                        rollback={"parallelism": 0, "monitor": MONITOR})
    await swarm.create(spec)
    before = await swarm.until(lambda: swarm.converged("web", 4), what="4 running")
    await swarm.update("web", with_image(spec, "registry.local/missing-app:v2"))
    done = await swarm.until(lambda: update_state(swarm, "web", US.ROLLBACK_COMPLETED, US.ROLLBACK_PAUSED),
                             what="the update rolled back")
    after = await swarm.until(lambda: running_image(swarm, "web", V1, 4), what="4 running v1")
    rejected = [t for t in await swarm.tasks("web") if t.status.state == pb.REJECTED]
    assert US.State.Name(done.update_status.state) == "ROLLBACK_COMPLETED"
    assert done.spec.task.container.image == V1
    assert done.previous_spec.task.container.image == "registry.local/missing-app:v2"
    assert len(rejected) == 1                                     # one batch of one, then rollback
    assert "missing-app:v2: not found" in rejected[0].status.err
    assert "update rolled back" in done.update_status.message and rejected[0].id in done.update_status.message
    # Only the slot the update touched was redeployed: the 3 others never stopped (as Docker).
    untouched = {t.id for t in before} & {t.id for t in after}
    assert len(untouched) == 3, "the rollback restarted tasks that had never left the old spec"


@swarm_test(workers=2)
async def test_failed_update_pauses_and_leaves_the_rest_alone(swarm):
    spec = service_spec("web", V1, replicas=4, restart={"condition": "ANY", "delay": 30},
                        update={"parallelism": 1, "monitor": MONITOR, "failure_action": "PAUSE"})
    await swarm.create(spec)
    before = await swarm.until(lambda: swarm.converged("web", 4), what="4 running")
    await swarm.update("web", with_image(spec, "registry.local/missing-app:v2"))
    paused = await swarm.until(lambda: update_state(swarm, "web", US.PAUSED), what="update paused")

    async def three_old_running():
        live = {t.id: t for t in await swarm.live("web")}
        old = [i for i in (t.id for t in before) if i in live and live[i].status.state == pb.RUNNING]
        return len(old) == 3 and (await swarm.get("web")).update_status.state == US.PAUSED
    await holds(three_old_running, 1.5, "3 slots on v1 while paused")
    tasks = await swarm.tasks("web")
    assert paused.update_status.message.startswith("update paused: task ")
    assert "not found" in paused.update_status.message
    assert [t.spec.container.image for t in tasks if t.status.state == pb.REJECTED] == \
        ["registry.local/missing-app:v2"]


@swarm_test(workers=2)
async def test_max_failure_ratio_tolerates_failures_up_to_it(swarm):
    """One new task of 4 fails (a pull that fails once): with max_failure_ratio 0.5 the update
    goes on to the end; with 0 it pauses at that failure."""
    specs = {}
    for name, ratio in (("tolerant", 0.5), ("strict", 0.0)):
        specs[name] = service_spec(name, f"registry.local/{name}:v1", replicas=4, restart=FAST_RESTART,
                                   update={"parallelism": 1, "monitor": MONITOR, "max_failure_ratio": ratio})
        await swarm.create(specs[name])
        await swarm.until(lambda n=name: swarm.converged(n, 4), what=f"{name}: 4 running")
    for name, s in specs.items():
        swarm.registry.flaky[f"registry.local/{name}:v2"] = 1
        await swarm.update(name, with_image(s, f"registry.local/{name}:v2"))
    tolerant = await swarm.until(lambda: update_state(swarm, "tolerant", US.COMPLETED, US.PAUSED),
                                 what="tolerant: update finished")
    strict = await swarm.until(lambda: update_state(swarm, "strict", US.COMPLETED, US.PAUSED),
                               what="strict: update finished")
    await swarm.until(lambda: running_image(swarm, "tolerant", "registry.local/tolerant:v2", 4),
                      what="tolerant: 4 running v2")
    failed = [t for t in await swarm.tasks("tolerant") if t.status.state == pb.REJECTED]
    assert US.State.Name(tolerant.update_status.state) == "COMPLETED"
    assert len(failed) == 1 and "transient" in failed[0].status.err
    assert US.State.Name(strict.update_status.state) == "PAUSED"
    assert "simulated transient registry error" in strict.update_status.message


@swarm_test(workers=1)
async def test_manual_rollback_through_update_service(swarm):
    spec = service_spec("web", V1, replicas=2, restart=FAST_RESTART,
                        update={"parallelism": 0, "monitor": MONITOR},
                        rollback={"parallelism": 1, "monitor": MONITOR})
    await swarm.create(spec)
    await swarm.until(lambda: swarm.converged("web", 2), what="2 running")
    with pytest.raises(grpc.RpcError) as nothing_to_roll_back:
        await swarm.update("web", rollback=True)

    await swarm.update("web", with_image(spec, V2))
    await swarm.until(lambda: update_state(swarm, "web", US.COMPLETED), what="update completed")
    await swarm.until(lambda: running_image(swarm, "web", V2, 2), what="2 running v2")
    started = (await swarm.update("web", rollback=True)).update_status
    done = await swarm.until(lambda: update_state(swarm, "web", US.ROLLBACK_COMPLETED),
                             what="rollback completed")
    back = await swarm.until(lambda: running_image(swarm, "web", V1, 2), what="2 running v1")
    refused = nothing_to_roll_back.value
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no previous spec" in refused.details()
    assert US.State.Name(started.state) == "ROLLBACK_STARTED" and started.message == "manually requested rollback"
    assert done.spec.task.container.image == V1 and done.previous_spec.task.container.image == V2
    assert done.update_status.message.startswith("rollback completed")
    assert sorted(t.slot for t in back) == [1, 2]
