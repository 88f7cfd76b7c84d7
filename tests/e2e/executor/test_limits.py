"""Memory (OOM reported), CPU and pids limits, as the kernel enforces them."""
from pathlib import Path

from tests.e2e.executor.helpers_executor import output
from worker.executor import ContainerConfig


def cgroup_file(executor, name, controller, file) -> str:
    path = Path("/sys/fs/cgroup") / controller / executor.cgroups_path(executor.cid(name)).lstrip("/")
    return (path / file).read_text().strip()


def test_memory_limit_oom_kill_is_reported(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(
        name=name, image=ref("covey/busybox:1"), memory=16 << 20,
        entrypoint=["/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1"])))
    st = run(executor.wait(name, 20))
    assert st.oom_killed and st.exit_code == 137
    assert run(executor.inspect(name)).oom_killed


def test_cpu_and_memory_settings_reach_the_cgroup(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/busybox:1"), cpus=0.5,
                                     cpu_shares=512, memory=48 << 20, command=["sleep", "600"],
                                     stop_grace_period=0.2)))
    assert cgroup_file(executor, name, "cpu", "cpu.cfs_quota_us") == "50000"
    assert cgroup_file(executor, name, "cpu", "cpu.cfs_period_us") == "100000"
    assert cgroup_file(executor, name, "cpu", "cpu.shares") == "512"
    assert cgroup_file(executor, name, "memory", "memory.limit_in_bytes") == str(48 << 20)


def test_pids_limit(executor, run, ref, names):
    name = names()
    # no $(...) or pipes: they fork too; echo is a builtin
    run(executor.run(ContainerConfig(
        name=name, image=ref("covey/busybox:1"), pids_limit=10,
        entrypoint=["/bin/sh", "-c", "i=0; while [ $i -lt 30 ]; do i=$((i+1)); "
                                     "sleep 30 & echo forked; done"])))
    assert cgroup_file(executor, name, "pids", "pids.max") == "10"
    out = run(output(executor, name, 20))
    assert 1 <= out.count("forked") < 10 and "can't fork" in out, out
