"""`covey container ls`: Docker's columns, its quoted and shortened COMMAND, and the task's
name (<service>.<slot>.<task id>, or <service>.<node id>.<task id> for global services)."""
import asyncio
import time
from types import SimpleNamespace

from covey.cli.container import list_containers
from coveyd.localapi import LocalContainers, _summary
from proto import local_pb2
from proto import objects_pb2 as pb
from worker.executor.simulated import SimulatedExecutor
from worker.tasks import container_config


def task(slot=2, command=(), args=()) -> pb.Task:
    t = pb.Task(id="t1", service_id="s1", service_name="web", slot=slot, node_id="n1")
    t.spec.container.image = "registry.local/app:v1"
    t.spec.container.command.extend(command)
    t.spec.container.args.extend(args)
    return t


def summary(t: pb.Task) -> local_pb2.ContainerSummary:
    async def go():
        ex = SimulatedExecutor()
        await ex.prepare(container_config(t))
        return _summary(await ex.inspect(t.id))
    return asyncio.run(go())


def test_names_are_the_task_s_as_docker_shows_them():
    assert summary(task()).name == "web.2.t1"
    assert summary(task(slot=0)).name == "web.n1.t1"        # a global service's task


def test_the_command_is_the_one_the_container_runs():
    assert list(summary(task(command=["/bin/sh", "-c"], args=["echo hi"])).command) == ["/bin/sh", "-c", "echo hi"]


def ls_lines(capsys, *containers) -> list[str]:
    conn = SimpleNamespace(containers=SimpleNamespace(List=lambda request: local_pb2.ListContainersResponse(
        containers=list(containers))))
    assert list_containers(conn, SimpleNamespace(all=True, quiet=False, format="table")) == 0
    return capsys.readouterr().out.splitlines()


def test_ls_quotes_and_shortens_the_command_as_docker(capsys):
    now = time.time()
    long = local_pb2.ContainerSummary(name="web.2.t1", id="covey-t1", image="app:v1", status="running",
                               created_at=now, started_at=now, command=["/bin/sh", "-c", "echo hello world"])
    short = local_pb2.ContainerSummary(name="web.3.t2", id="covey-t2", image="app:v1", status="created",
                                created_at=now, command=["sh"])
    header, first, second = ls_lines(capsys, long, short)
    assert header.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"]
    # an argument with spaces in single quotes; 20 characters at most
    assert '"/bin/sh -c \'echo he…"' in first and first.endswith("web.2.t1")
    assert '"sh"' in second and second.endswith("web.3.t2")


def test_the_name_shown_finds_the_container():
    async def go():
        ex = SimulatedExecutor()
        await ex.prepare(container_config(task()))
        return LocalContainers(ex)._resolve("web.2.t1")
    assert asyncio.run(go()) == "t1"
