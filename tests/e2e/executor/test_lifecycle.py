"""Exit codes, stop with grace then SIGKILL, and removal that leaves nothing behind."""
import time
from pathlib import Path

from tests.e2e.executor.helpers_executor import output
from tests.support.poll import until
from worker.executor import ContainerConfig
from worker.executor.rootfs import mounts_under


def test_exit_code(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/exit:1"), env=["EXIT_CODE=42"])))
    st = run(executor.wait(name, 10))
    assert st.exit_code == 42 and not st.oom_killed
    info = run(executor.inspect(name))
    assert info.status == "exited" and info.exit_code == 42 and info.finished_at >= info.started_at


def test_stop_sigkills_after_the_grace_period(executor, run, ref, names):
    name = names()
    # sleep as PID 1 ignores SIGTERM (no handler): only SIGKILL ends it
    run(executor.run(ContainerConfig(name=name, image=ref("covey/busybox:1"),
                                     command=["sleep", "600"], stop_grace_period=0.7)))
    start = time.monotonic()
    st = run(executor.stop(name))
    took = time.monotonic() - start
    assert st.exit_code == 137 and 0.7 <= took < 8


def test_stop_signal_is_used(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(
        name=name, image=ref("covey/busybox:1"), stop_signal="SIGUSR1", stop_grace_period=10,
        entrypoint=["/bin/sh", "-c", "trap 'echo got-usr1; exit 3' USR1; echo ready; "
                                     "while true; do sleep 0.1; done"])))

    async def trap_set():  # before this, PID 1 would ignore the signal
        return any(["ready" in e.line async for e in executor.logs(name)])
    run(until(trap_set))
    st = run(executor.stop(name))
    assert st.exit_code == 3 and "got-usr1" in run(output(executor, name))


def test_remove_leaves_no_mounts_cgroups_or_runc_state(executor, run, ref, names):
    name = names()
    run(executor.run(ContainerConfig(name=name, image=ref("covey/busybox:1"), memory=64 << 20,
                                     command=["sleep", "600"])))
    cid = executor.cid(name)
    cgroup = Path("/sys/fs/cgroup/memory") / executor.cgroups_path(cid).lstrip("/")
    cdir = executor.containers_dir / cid
    assert cgroup.is_dir() and mounts_under(cdir)
    run(executor.remove(name, force=True))
    assert not cgroup.exists() and not mounts_under(cdir) and not cdir.exists()
    assert run(executor.runc.state(cid)) is None
    assert name not in [c.name for c in run(executor.list(all=True))]
