"""`covey volume` against the real local API (coveyd/localapi.LocalVolumes) over a unix socket,
served from a real executor's volume store in a temporary data dir."""
import argparse
import asyncio
import json
from pathlib import Path

import grpc
import pytest

from covey.cli import volume
from covey.cli.client import Connection
from coveyd.localapi import LocalVolumes
from proto import local_pb2_grpc
from worker.executor import ContainerConfig, Executor, ExecutorSettings, Mount


def parse(*argv):
    parser = argparse.ArgumentParser()
    volume.add_parser(parser.add_subparsers())
    return parser.parse_args(["volume", *argv])


def uses_volume(executor: Executor, container: str, source: str) -> None:
    """A container of this executor that mounts the volume (as a prepared one's record is)."""
    cdir = executor.containers_dir / executor.cid(container)
    cdir.mkdir()
    cfg = ContainerConfig(name=container, image="img", mounts=[Mount("volume", "/data", source)])
    (cdir / "covey.json").write_text(json.dumps({"config": cfg.to_dict()}))


async def serve(executor: Executor, socket: Path, cli_steps):
    server = grpc.aio.server()
    local_pb2_grpc.add_LocalVolumesServicer_to_server(LocalVolumes(executor), server)
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    try:
        return await asyncio.to_thread(cli_steps)
    finally:
        await server.stop(None)


@pytest.fixture
def node(tmp_path):
    executor = Executor(ExecutorSettings(data_dir=tmp_path / "data", run_dir=tmp_path / "run",
                                         runc_root=tmp_path / "runc", cgroup_parent="unused"))
    socket = tmp_path / "covey.sock"

    def run(steps):
        return asyncio.run(serve(executor, socket, lambda: steps(
            Connection(f"unix://{socket}", grpc.insecure_channel(f"unix://{socket}"), local=True))))
    return executor, run


def cli(conn, capsys, *argv) -> tuple[int, str, str]:
    args = parse(*argv)
    code = args.run(conn, args)
    out, err = capsys.readouterr()
    return code, out, err


def test_create_ls_inspect_rm_as_docker(node, capsys):
    executor, run = node

    def steps(conn):
        assert cli(conn, capsys, "create", "--label", "team=db", "data") == (0, "data\n", "")
        code, out, _ = cli(conn, capsys, "create")
        anonymous = out.strip()
        assert code == 0 and len(anonymous) == 64  # a random name, as Docker's
        code, out, _ = cli(conn, capsys, "ls")
        assert out.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
        assert sorted(line.split()[1] for line in out.splitlines()[1:]) == sorted([anonymous, "data"])
        assert cli(conn, capsys, "ls", "-q")[1].split() == sorted([anonymous, "data"])
        [view] = json.loads(cli(conn, capsys, "inspect", "data")[1])
        assert view["Name"] == "data" and view["Driver"] == "local" and view["Scope"] == "local"
        assert view["Labels"] == {"team": "db"} and view["CreatedAt"].endswith("Z")
        assert Path(view["Mountpoint"]).is_dir() and view["Mountpoint"].startswith(str(executor.data_dir))
        assert cli(conn, capsys, "rm", "data") == (0, "data\n", "")
        assert not Path(view["Mountpoint"]).exists()
        cli(conn, capsys, "inspect", "data")  # gone
    with pytest.raises(grpc.RpcError, match="no such volume: data"):
        run(steps)


def test_a_volume_in_use_is_refused_naming_its_container_and_prune_keeps_it(node, capsys):
    executor, run = node
    executor.volumes.ensure("cache")  # made by a task's mount
    uses_volume(executor, "web.1.abc", "cache")

    def steps(conn):
        code, out, err = cli(conn, capsys, "rm", "cache", "nosuch")
        assert code == 1 and out == ""
        assert "volume cache is in use by container(s) web.1.abc" in err
        assert "remove nosuch: no such volume: nosuch" in err
        cli(conn, capsys, "create", "spare")
        (executor.volumes.path("spare") / "blob").write_bytes(b"x" * 2048)
        code, out, _ = cli(conn, capsys, "prune", "-f")
        assert code == 0 and out == "Deleted Volumes:\nspare\n\nTotal reclaimed space: 2KiB\n"
        return cli(conn, capsys, "ls", "-q")[1].split()
    assert run(steps) == ["cache"]


@pytest.mark.parametrize("bad", ["-x", "a/b"])
def test_bad_volume_names_are_refused_by_name(node, capsys, bad):
    _, run = node
    with pytest.raises(grpc.RpcError, match=f"invalid volume name '{bad}'"):
        run(lambda conn: cli(conn, capsys, "create", "--", bad))
