"""The task controllers' shell (worker/tasks.py) driving the simulated executor: what the
managers see reported, and what becomes of the container."""
import asyncio
import time

import pytest

from proto import dispatcher_pb2
from proto import objects_pb2 as pb
from worker.executor.simulated import SimulatedExecutor
from worker.tasks import Reporter, TaskController, TaskManager, container_config


class Recorder(Reporter):
    """A reporter that also keeps every report, in order."""

    def __init__(self):
        super().__init__()
        self.history: list[tuple[int, str, str]] = []

    def report(self, task_id, state, message="", err="", exit_code=0):
        self.history.append((state, message, err))
        super().report(task_id, state, message=message, err=err, exit_code=exit_code)

    def states(self) -> list[str]:
        return [pb.TaskState.Name(s) for s, _, _ in self.history]

    def last(self) -> str:
        return self.states()[-1] if self.history else ""


def task(desired=pb.RUNNING, image="registry.local/app:v1", health=None, **env) -> pb.Task:
    t = pb.Task(id="t1", service_id="s1", service_name="web", slot=2, node_id="n1", desired_state=desired)
    t.spec.container.image = image
    t.spec.container.env.extend(f"{k}={v}" for k, v in env.items())
    if health:
        t.spec.container.healthcheck.test.extend(health)
    return t


async def until(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached in {timeout}s"
        await asyncio.sleep(0.005)


def scenario(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_walks_to_running_then_shuts_down_when_asked():
    async def go():
        ex, rec = SimulatedExecutor(), Recorder()
        c = TaskController(task(), ex, rec)
        await until(lambda: rec.last() == "RUNNING")
        c.update(task(desired=pb.SHUTDOWN))
        await until(lambda: rec.last() == "SHUTDOWN")
        await c.runner
        return rec.states(), (await ex.inspect("t1")).status
    states, status = scenario(go())
    assert states == ["ACCEPTED", "PREPARING", "READY", "STARTING", "RUNNING", "SHUTDOWN"]
    assert status == "exited"


@pytest.mark.parametrize("env, final, err", [
    ({"SIM_EXIT": 0}, "COMPLETE", ""),
    ({"SIM_EXIT": 3}, "FAILED", "task: non-zero exit (3)"),
    ({"SIM_OOM": 1, "SIM_RUN": 0}, "FAILED", "task: killed by the kernel: out of memory"),
    ({"SIM_START_FAIL": "no such binary"}, "REJECTED", "container t1: start failed: no such binary"),
])
def test_the_container_s_end_is_the_task_s(env, final, err):
    async def go():
        rec = Recorder()
        c = TaskController(task(**env), SimulatedExecutor(), rec)
        await c.runner
        return rec
    rec = scenario(go())
    assert rec.last() == final and rec.history[-1][2] == err


def test_an_image_that_cannot_be_pulled_rejects_the_task():
    async def go():
        rec = Recorder()
        await TaskController(task(image="registry.local/missing:v1"), SimulatedExecutor(), rec).runner
        return rec
    rec = scenario(go())
    assert rec.states() == ["ACCEPTED", "PREPARING", "REJECTED"] and "not found" in rec.history[-1][2]


def test_starting_is_held_until_healthy():
    async def go():
        ex, rec = SimulatedExecutor(), Recorder()
        manager = TaskManager(ex, rec)     # routes the executor's health events
        await manager.apply(dispatcher_pb2.AssignmentsMessage(type=dispatcher_pb2.AssignmentsMessage.COMPLETE, updated=[
            task(health=["CMD", "true"], SIM_HEALTH_AFTER=0.2)]))
        await until(lambda: ex.running() == ["t1"])
        held = rec.last()
        await until(lambda: rec.last() == "RUNNING")
        await manager.close()
        return held
    assert scenario(go()) == "STARTING"


def test_unhealthy_fails_the_task_and_stops_the_container():
    async def go():
        ex, rec = SimulatedExecutor(), Recorder()
        manager = TaskManager(ex, rec)
        await manager.apply(dispatcher_pb2.AssignmentsMessage(type=dispatcher_pb2.AssignmentsMessage.COMPLETE, updated=[
            task(health=["CMD", "false"], SIM_HEALTH="unhealthy")]))
        await until(lambda: rec.last() == "FAILED")
        await until(lambda: ex.running() == [])
        await manager.close()
        return rec
    rec = scenario(go())
    assert "RUNNING" not in rec.states() and rec.history[-1][2] == "task: unhealthy container"


def test_desired_ready_holds_at_ready_until_running_is_wanted():
    async def go():
        ex, rec = SimulatedExecutor(), Recorder()
        c = TaskController(task(desired=pb.READY), ex, rec)
        await until(lambda: rec.last() == "READY")
        held = (await ex.inspect("t1")).status
        c.update(task(desired=pb.RUNNING))
        await until(lambda: rec.last() == "RUNNING")
        c.runner.cancel()
        return held
    assert scenario(go()) == "created"


def test_remove_takes_the_container_away():
    async def go():
        ex, rec = SimulatedExecutor(), Recorder()
        manager = TaskManager(ex, rec)
        complete = dispatcher_pb2.AssignmentsMessage.COMPLETE
        await manager.apply(dispatcher_pb2.AssignmentsMessage(type=complete, updated=[task()]))
        await until(lambda: rec.last() == "RUNNING")
        await manager.apply(dispatcher_pb2.AssignmentsMessage(type=dispatcher_pb2.AssignmentsMessage.INCREMENTAL,
                                                  updated=[task(desired=pb.REMOVE)]))
        return ex.names(), rec.history[-1]
    names, last = scenario(go())
    assert names == [] and last[:2] == (pb.SHUTDOWN, "removed")


def _restarted(ex: SimulatedExecutor, desired=pb.RUNNING):
    """coveyd's second life: a new controller finds the container the first one left."""
    rec = Recorder()
    return TaskController(task(desired=desired), ex, rec), rec


def test_adoption_of_a_running_container_reports_it_running():
    async def go():
        ex = SimulatedExecutor()
        await ex.run(container_config(task()))
        c, rec = _restarted(ex)
        await until(lambda: rec.last() == "RUNNING")
        c.runner.cancel()
        return rec, ex.started
    rec, started = scenario(go())
    assert rec.history == [(pb.RUNNING, "adopted after a restart", "")] and started == 1


def test_adoption_of_an_exited_container_reports_its_exit():
    async def go():
        ex = SimulatedExecutor()
        await ex.run(container_config(task(SIM_EXIT=4)))
        await ex.wait("t1")
        c, rec = _restarted(ex)
        await c.runner
        return rec
    assert scenario(go()).history[-1] == (pb.FAILED, "", "task: non-zero exit (4)")


def test_adoption_of_a_created_container_starts_it():
    async def go():
        ex = SimulatedExecutor()
        await ex.prepare(container_config(task()))    # coveyd died between create and start
        c, rec = _restarted(ex)
        await until(lambda: rec.last() == "RUNNING", timeout=1)
        c.runner.cancel()
        return ex.running()
    assert scenario(go()) == ["t1"]


def test_a_full_set_removes_the_containers_of_tasks_the_managers_do_not_know():
    async def go():
        ex = SimulatedExecutor()
        await ex.run(container_config(task()))          # left by coveyd's first life: task t1
        manager = TaskManager(ex, Recorder())
        other = task()
        other.id = "t2"
        await manager.apply(dispatcher_pb2.AssignmentsMessage(type=dispatcher_pb2.AssignmentsMessage.COMPLETE,
                                                              updated=[other]))
        await until(lambda: ex.names() == ["t2"])
        return ex.names()
    assert scenario(go()) == ["t2"]


def test_registry_credentials_from_the_assignments_reach_the_pull_and_are_then_forgotten():
    async def go():
        ex, rec = SimulatedExecutor(), Recorder()
        manager = TaskManager(ex, rec)
        message = dispatcher_pb2.AssignmentsMessage(type=dispatcher_pb2.AssignmentsMessage.COMPLETE, updated=[task()])
        message.registry_auths["t1"].CopyFrom(pb.RegistryAuth(registry="registry.local", username="alice",
                                                              password="s3cret"))
        await manager.apply(message)
        await until(lambda: rec.last() == "RUNNING")
        controller = manager._controllers["t1"]
        pulled_with = ex._containers["t1"].cfg.registry_auth
        await manager.close()
        return pulled_with, controller.registry_auth
    pulled_with, kept = scenario(go())
    assert pulled_with == ("alice", "s3cret")
    assert kept is None  # not held in memory after the pull
