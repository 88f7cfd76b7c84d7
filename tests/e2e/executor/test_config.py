"""Image config defaults and the container options, checked from inside real containers."""
from tests.e2e.executor.helpers_executor import output
from worker.executor import ContainerConfig, Mount, Ulimit


def sh(script: str, **kw) -> dict:
    return dict(entrypoint=["/bin/sh", "-c", script], **kw)


def test_image_defaults_apply(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/defaults:1"))))
    assert run(output(executor, name)) == "entry from-image-cmd\n"


def test_command_keeps_image_entrypoint_env_workdir_user(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/defaults:1"),
                                     command=["spec-args"], env=["BAR=spec-bar"])))
    assert run(output(executor, name)) == "entry spec-args\n"
    name = names()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/defaults:1"), env=["BAR=spec-bar"],
                                     **sh('echo "$FOO $BAR $(id -u) $(pwd) $HOSTNAME"'))))
    assert run(output(executor, name)) == f"image-foo spec-bar 1000 /work {name}\n"


def test_spec_overrides_user_workdir_hostname(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/defaults:1"), user="4321:2000",
                                     workdir="/tmp", hostname="web-1",
                                     **sh('echo "$(id -u):$(id -g) $(pwd) $(hostname)"'))))
    assert run(output(executor, name)) == "4321:2000 /tmp web-1\n"


def test_read_only_root_with_tmpfs(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(
        name=name, image=ref("covey/busybox:1"), read_only=True,
        mounts=[Mount("tmpfs", "/scratch", tmpfs_size=1 << 20)],
        **sh("touch /rootfile 2>/dev/null && echo root-writable || echo root-ro; "
             "echo x > /scratch/f && echo tmpfs-ok; "
             "dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>/dev/null || echo tmpfs-full; "
             "df -k /scratch | tail -1 | awk '{print $2}'"))))
    assert run(output(executor, name)).split() == ["root-ro", "tmpfs-ok", "tmpfs-full", "1024"]


def test_capabilities_sysctls_ulimits(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(
        name=name, image=ref("covey/busybox:1"), cap_drop=["CHOWN"], cap_add=["NET_ADMIN"],
        sysctls={"net.ipv4.ip_forward": "1"}, ulimits=[Ulimit("nofile", 321, 654)],
        **sh("chown 1:1 /tmp 2>/dev/null && echo chown-ok || echo chown-denied; "
             "ip link set lo up && echo netadmin-ok; "
             "cat /proc/sys/net/ipv4/ip_forward; ulimit -n; ulimit -Hn"))))
    assert run(output(executor, name)).split() == ["chown-denied", "netadmin-ok", "1", "321", "654"]


def test_init_is_tini_and_forwards_the_stop_signal(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/busybox:1"), init=True,
                                     command=["sleep", "600"], stop_grace_period=10)))
    res = run(executor.runc.exec(executor.cid(name), ["cat", "/proc/1/cmdline"], 10))
    assert res.out.split("\0")[0] == "/sbin/docker-init"
    status = run(executor.stop(name))
    assert status.exit_code == 143, "sleep got SIGTERM from tini, long before the grace period"
