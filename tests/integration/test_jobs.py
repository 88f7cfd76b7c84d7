"""Jobs end to end with real managers and agents (simulated executor): completions, concurrency,
no restart after success, retries on failure, reruns on update, global jobs."""
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from tests.integration.swarmtest import swarm_test
from tests.support.builders import service_spec
from tests.support.poll import holds

RUN = 0.2  # seconds each simulated job task runs


def replicated_job(name, total, concurrent=0, env=None, restart=None) -> specs.ServiceSpec:
    s = service_spec(name, env={"SIM_RUN": RUN, **(env or {})}, restart=restart)
    s.replicated_job.total_completions = total
    s.replicated_job.max_concurrent = concurrent
    return s


async def completed(swarm, name, count, version=1):
    tasks = [t for t in await swarm.tasks(name) if t.spec_version == version]
    done = [t for t in tasks if t.status.state == pb.COMPLETE and t.desired_state == pb.COMPLETE]
    return done if len(done) == count else None


async def most_at_once(swarm, name) -> int:
    """The most containers of the service that ran at the same time, from the executors' records."""
    ids = {t.id for t in await swarm.tasks(name)}
    edges = []
    for sim in swarm.nodes.values():
        for c in sim.executor._containers.values():
            if c.cfg.name in ids and c.exit is not None:
                edges += [(c.started_at, 1), (c.exit.finished_at, -1)]
    most = now = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        now += step
        most = max(most, now)
    return most


async def tasks_of(swarm, name) -> list[tuple[str, int, int]]:
    return sorted((t.id, t.status.state, t.desired_state) for t in await swarm.tasks(name))


@swarm_test(workers=2)
async def test_replicated_job_completes_n_times_m_at_a_time_and_reruns_on_update(swarm):
    await swarm.create(replicated_job("batch", total=5, concurrent=2))
    done = await swarm.until(lambda: completed(swarm, "batch", 5), what="5 completions")
    assert sorted(t.slot for t in done) == [1, 2, 3, 4, 5]
    assert len(await swarm.tasks("batch")) == 5  # one task per completion: none restarted
    assert await most_at_once(swarm, "batch") == 2
    before = await tasks_of(swarm, "batch")
    await holds(lambda: _same(swarm, "batch", before), 1.5, "no restart after success")

    service = await swarm.get("batch")
    spec = specs.ServiceSpec()
    spec.CopyFrom(service.spec)
    spec.task.force_update += 1  # `service update --force`
    await swarm.update("batch", spec)
    rerun = await swarm.until(lambda: completed(swarm, "batch", 5, version=2), what="the job run again")
    assert sorted(t.slot for t in rerun) == [1, 2, 3, 4, 5]
    assert len(await swarm.tasks("batch")) == 10
    assert (await swarm.get("batch")).update_status.state == pb.UpdateStatus.NONE  # no rolling update


async def _same(swarm, name, before) -> bool:
    return await tasks_of(swarm, name) == before


@swarm_test(workers=1)
async def test_a_failing_job_task_is_retried_by_its_restart_policy(swarm):
    restart = {"condition": "ON_FAILURE", "delay": 0, "max_attempts": 2}
    await swarm.create(replicated_job("flaky", total=1, env={"SIM_EXIT": 3}, restart=restart))

    async def three_failed():
        tasks = await swarm.tasks("flaky")
        return tasks if len(tasks) == 3 and all(t.status.state == pb.FAILED for t in tasks) else None
    failed = await swarm.until(three_failed, what="the first run and two retries failed")
    assert {t.slot for t in failed} == {1}
    before = await tasks_of(swarm, "flaky")
    await holds(lambda: _same(swarm, "flaky", before), 1.5, "no retry past max attempts")


@swarm_test(workers=2)
async def test_global_job_runs_once_on_every_node(swarm):
    s = service_spec("everywhere", env={"SIM_RUN": RUN})
    s.global_job.SetInParent()
    await swarm.create(s)
    done = await swarm.until(lambda: completed(swarm, "everywhere", 3), what="one completion per node")
    assert swarm.by_host(done) == {"m1": 1, "w1": 1, "w2": 1}
    before = await tasks_of(swarm, "everywhere")
    await holds(lambda: _same(swarm, "everywhere", before), 1.5, "no restart after success")
