"""A restarted coveyd takes back the containers it started; several executors on one machine
never see each other's containers."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from proto import objects_pb2 as pb
from tests.e2e.executor.helpers_executor import settings_for
from tests.support.poll import until
from worker.executor import ContainerConfig, Executor
from worker.executor.rootfs import mounts_under
from worker.tasks import Reporter, TaskController, container_config

REPO = Path(__file__).resolve().parents[3]

FIRST_LIFE = """
import asyncio, json, sys
from pathlib import Path
from worker.executor import ContainerConfig, Executor, ExecutorSettings, Healthcheck
s = json.loads(sys.argv[1])
ex = Executor(ExecutorSettings(**{k: Path(v) if k.endswith(("_dir", "_root")) else v
                                  for k, v in s.items()}))
async def main():
    await ex.run(ContainerConfig(name="long", image=sys.argv[2], command=["sleep", "600"],
        stop_grace_period=0.3, healthcheck=Healthcheck(["CMD", "true"], interval=0.2)))
    await ex.run(ContainerConfig(name="short", image=sys.argv[3], env=["EXIT_CODE=9"]))
    await ex.wait("short", 10)
asyncio.run(main())
"""


def test_restarted_daemon_adopts_running_and_exited_and_cleans_half_made(workdir, run, ref):
    settings = settings_for(workdir, "r")
    plain = {k: str(v) if isinstance(v, Path) else v for k, v in vars(settings).items()
             if not isinstance(v, tuple)}
    subprocess.run([sys.executable, "-c", FIRST_LIFE, json.dumps(plain),
                    ref("covey/busybox:1"), ref("covey/exit:1")],
                   check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    ex = Executor(settings)                         # the daemon's second life
    try:
        # half made: files whose runc container is gone (e.g. a reboot), and a cut-short prepare
        ghost = ex.containers_dir / ex.cid("ghost")
        ghost.mkdir()
        shutil.copy(ex.containers_dir / ex.cid("short") / "covey.json", ghost / "covey.json")
        (ex.containers_dir / ex.cid("cut")).mkdir()
        adopted = {c.name: c for c in run(ex.adopt())}
        assert set(adopted) == {"long", "short"}
        assert adopted["long"].status == "running" and adopted["short"].exit_code == 9
        assert not ghost.exists() and not (ex.containers_dir / ex.cid("cut")).exists()
        run(until(lambda: ex.health("long") and ex.health("long").status == "healthy", 10))
        st = run(ex.stop("long"))
        assert st.exit_code == 137            # sleep as PID 1: SIGKILL after the grace period
        for name in ("long", "short"):
            run(ex.remove(name))
        assert not mounts_under(ex.containers_dir) and run(ex.runc.list()) == []
    finally:
        run(ex.destroy_all())


def test_two_executors_on_one_machine_do_not_collide(workdir, run, ref, executor, names):
    other = Executor(settings_for(workdir, "b"))
    try:
        name = names()
        run(executor.run(ContainerConfig(name=name, image=ref("covey/busybox:1"),
                                         command=["sleep", "600"], stop_grace_period=0.2)))
        run(other.run(ContainerConfig(name=name, image=ref("covey/busybox:1"),
                                      command=["sleep", "600"], stop_grace_period=0.2)))
        assert executor.cid(name) != other.cid(name)
        assert [c.name for c in run(other.list())] == [name]
        assert executor.cgroups_path(executor.cid(name)) != other.cgroups_path(other.cid(name))
        run(other.remove(name, force=True))
        assert run(executor.inspect(name)).status == "running"
    finally:
        run(other.destroy_all())


def test_a_container_created_before_a_restart_is_started_by_its_task(workdir, run, ref):
    """coveyd died between `runc create` and `runc start`: the next one starts it."""
    settings = settings_for(workdir, "c")
    task = pb.Task(id="created1", service_id="s1", service_name="web", slot=1, desired_state=pb.RUNNING)
    task.spec.container.image = ref("covey/busybox:1")
    task.spec.container.args.extend(["sleep", "600"])
    task.spec.container.stop_grace_period_ns = 200_000_000
    run(Executor(settings).prepare(container_config(task)))       # the first life ends here
    ex = Executor(settings)                                         # the second life

    async def second_life():
        await ex.adopt()
        reporter = Reporter()
        controller = TaskController(task, ex, reporter)
        await until(lambda: reporter._pending.get(task.id) and reporter._pending[task.id].state == pb.RUNNING,
                    what="the adopted task RUNNING")
        controller.runner.cancel()
        return (await ex.inspect(task.id)).status
    try:
        assert run(second_life()) == "running"
    finally:
        run(ex.destroy_all())
