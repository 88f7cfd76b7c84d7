"""`covey container ls`: Docker's columns, its quoted and shortened COMMAND, and the task's
name (<service>.<slot>.<task id>, or <service>.<node id>.<task id> for global services)."""
import argparse
import asyncio
import io
import os
import time
from types import SimpleNamespace

import pytest

from covey.cli import container
from covey.cli.container import list_containers
from covey.errors import InvalidArgument, NotFound
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
        other = task(slot=3)
        other.id = "t2"
        await ex.prepare(container_config(other))
        api = LocalContainers(ex)
        found = [await api._resolve(ref) for ref in ("web.2.t1", "web.2", "t2", "web.3")]
        with pytest.raises(InvalidArgument, match="container web is ambiguous"):
            await api._resolve("web")
        with pytest.raises(NotFound, match="no such container: db"):
            await api._resolve("db")
        return found
    assert asyncio.run(go()) == ["t1", "t1", "t2", "t2"]


def exec_args(*argv):
    parser = argparse.ArgumentParser()
    container.add_parser(parser.add_subparsers())
    return parser.parse_args(["container", "exec", *argv])


def test_exec_flags_make_the_start(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    start = container.exec_start(exec_args("-i", "-u", "app:extra", "-e", "A=1", "-e", "B=", "-w", "/srv",
                                           "web.1", "sh", "-c", "echo -n hi", "--not-ours"))
    assert (start.container, list(start.command)) == ("web.1", ["sh", "-c", "echo -n hi", "--not-ours"])
    assert (list(start.env), start.user, start.workdir, start.stdin, start.tty) == (
        ["A=1", "B="], "app:extra", "/srv", True, False)


@pytest.mark.parametrize("argv, says", [
    (["web.1"], "exec needs a command"),
    (["-e", "=x", "web.1", "true"], "invalid environment variable '=x'"),
    (["-w", "srv", "web.1", "true"], "invalid --workdir 'srv': it must be an absolute path"),
    (["-it", "web.1", "sh"], "the input device is not a TTY"),
])
def test_bad_exec_flags_are_named(monkeypatch, argv, says):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(InvalidArgument, match=says):
        container.exec_start(exec_args(*argv))


class FakeCall:
    def __init__(self):
        self.sent, self.closed = [], False

    async def write(self, message):
        self.sent.append(message)

    async def done_writing(self):
        self.closed = True


async def _chunks(*items):
    for item in items:
        yield item


def test_exec_sends_the_start_then_stdin_until_its_end():
    call, start = FakeCall(), local_pb2.ExecStart(container="c", command=["cat"], stdin=True)
    asyncio.run(container.send_input(call, start, _chunks(b"one", b"two")))
    assert call.sent[0].start == start and [m.stdin for m in call.sent[1:]] == [b"one", b"two"] and call.closed
    bare = FakeCall()
    asyncio.run(container.send_input(bare, local_pb2.ExecStart(container="c", command=["true"]), None))
    assert len(bare.sent) == 1 and bare.closed          # no -i: only the start, then the end of input
    terminal = FakeCall()
    asyncio.run(container.send_input(terminal, local_pb2.ExecStart(container="c", command=["sh"], tty=True), None))
    assert not terminal.closed                          # a terminal stays open for its sizes


def test_stdin_is_read_from_a_pipe_and_from_a_file(tmp_path):
    async def read_all(fd):
        return b"".join([chunk async for chunk in container.stdin_chunks(fd)])
    data = b"x" * (container.STDIN_CHUNK + 10)
    (tmp_path / "in").write_bytes(data)
    with open(tmp_path / "in", "rb") as f:
        assert asyncio.run(read_all(f.fileno())) == data
    reader, writer = os.pipe()
    os.write(writer, b"piped\n")
    os.close(writer)
    try:
        assert asyncio.run(read_all(reader)) == b"piped\n"
    finally:
        os.close(reader)
