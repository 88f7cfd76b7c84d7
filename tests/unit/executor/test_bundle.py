from pathlib import Path

import pytest

from worker.executor.bundle import (
    DEFAULT_CAPS,
    INIT_PATH,
    HostMount,
    build_spec,
    capabilities,
    merge_env,
    resolve_args,
    resolve_user,
)
from worker.executor.config import ContainerConfig, Ulimit
from worker.executor.errors import ExecutorError
from worker.executor.images import ImageConfig

IMG = ImageConfig(entrypoint=["/entry"], cmd=["img-cmd"], env=["A=1", "B=2"], workdir="/w",
                  user="app")


def cfg(**kw):
    return ContainerConfig(name="t1", image="reg.io/x:1", **kw)


def test_image_entrypoint_and_cmd_by_default():
    assert resolve_args(cfg(), IMG) == ["/entry", "img-cmd"]


def test_command_replaces_cmd_keeps_entrypoint():
    assert resolve_args(cfg(command=["a", "b"]), IMG) == ["/entry", "a", "b"]


def test_entrypoint_drops_image_cmd():
    assert resolve_args(cfg(entrypoint=["/bin/sh"]), IMG) == ["/bin/sh"]
    assert resolve_args(cfg(entrypoint=["/bin/sh"], command=["-c", "x"]), IMG) == \
        ["/bin/sh", "-c", "x"]


def test_no_command_at_all_is_an_error():
    with pytest.raises(ExecutorError, match="no command"):
        resolve_args(cfg(), ImageConfig())


def test_env_merge_spec_wins_and_path_default():
    env = merge_env(["A=1", "PATH=/img"], ["A=2", "C"], "host")
    assert "A=2" in env and "C=" in env and "PATH=/img" in env and "HOSTNAME=host" in env
    assert sum(e.startswith("A=") for e in env) == 1


@pytest.fixture
def rootfs(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/h:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    return tmp_path


def test_users(rootfs):
    assert resolve_user("", rootfs) == (0, 0, [])
    assert resolve_user("app", rootfs) == (1000, 1000, [2000])
    assert resolve_user("app:extra", rootfs) == (1000, 2000, [])
    assert resolve_user("4321", rootfs) == (4321, 0, [])
    assert resolve_user("4321:55", rootfs) == (4321, 55, [])
    with pytest.raises(ExecutorError, match="not found"):
        resolve_user("ghost", rootfs)


def test_capabilities():
    assert capabilities([], []) == DEFAULT_CAPS
    caps = capabilities(["net_admin"], ["CHOWN", "cap_kill"])
    assert "CAP_NET_ADMIN" in caps and "CAP_CHOWN" not in caps and "CAP_KILL" not in caps
    assert capabilities(["NET_ADMIN"], ["ALL"]) == ["CAP_NET_ADMIN"]


def test_spec_resources_and_options(rootfs):
    c = cfg(memory=64 << 20, cpus=0.5, cpu_shares=512, pids_limit=20, read_only=True,
            init=True, netns="/var/run/netns/x", hostname="h1", sysctls={"net.ipv4.ip_forward": "1"},
            ulimits=[Ulimit("nofile", 100, 200)])
    spec = build_spec(c, IMG, rootfs=Path("/r"), image_rootfs=rootfs,
                      mounts=[HostMount("tmpfs", "/t", "", ("size=1024",))],
                      cgroups_path="/p/c", init_binary="/usr/bin/tini")
    res = spec["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert res["cpu"] == {"period": 100000, "quota": 50000, "shares": 512}
    assert res["pids"] == {"limit": 20}
    assert spec["root"] == {"path": "/r", "readonly": True}
    assert spec["process"]["args"] == [INIT_PATH, "--", "/entry", "img-cmd"]
    assert spec["process"]["user"]["uid"] == 1000 and spec["process"]["cwd"] == "/w"
    assert spec["process"]["terminal"] is False
    assert {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200} in spec["process"]["rlimits"]
    assert {"type": "network", "path": "/var/run/netns/x"} in spec["linux"]["namespaces"]
    assert spec["hostname"] == "h1" and spec["linux"]["cgroupsPath"] == "/p/c"
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts[INIT_PATH]["source"] == "/usr/bin/tini" and "ro" in mounts[INIT_PATH]["options"]
    assert mounts["/t"]["type"] == "tmpfs" and "size=1024" in mounts["/t"]["options"]
