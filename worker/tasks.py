"""Task controllers: the agent's side of running tasks (DESIGN.md section 3).

Each assigned task gets a controller that walks it through ACCEPTED, PREPARING, READY,
STARTING, RUNNING and a final state, driving the executor, never past the task's
desired state, and reporting every step. Reports are batched and resent after a
reconnect; the dispatcher drops the ones that would move a state backwards.
"""
import asyncio
import logging
import time

from proto import dispatcher_pb2

from proto import objects_pb2 as pb

from proto import specs_pb2 as specs

from worker.executor import ContainerConfig, ExecutorError
from worker.executor.config import Healthcheck, Mount, Ulimit

log = logging.getLogger(__name__)

MOUNT_TYPES = {specs.Mount.BIND: "bind", specs.Mount.VOLUME: "volume", specs.Mount.TMPFS: "tmpfs"}


def container_config(task: pb.Task) -> ContainerConfig:
    """The executor's view of a task: Docker's names (command = entrypoint, args = cmd)."""
    c, limits = task.spec.container, task.spec.resources.limits
    config = ContainerConfig(
        name=task.id, image=c.image, entrypoint=list(c.command) or None, command=list(c.args) or None,
        env=list(c.env), workdir=c.dir, user=c.user, hostname=c.hostname, read_only=c.read_only,
        cap_add=list(c.capability_add), cap_drop=list(c.capability_drop), sysctls=dict(c.sysctls),
        ulimits=[Ulimit(u.name, u.soft, u.hard) for u in c.ulimits],
        init=c.init if c.HasField("init") else False,
        memory=limits.memory_bytes, cpus=limits.nano_cpus / 1e9, pids_limit=limits.pids,
        stop_signal=c.stop_signal or "SIGTERM",
        labels={**c.labels, "covey.task.id": task.id, "covey.service.id": task.service_id,
                "covey.service.name": task.service_name})
    if c.HasField("stop_grace_period_ns"):
        config.stop_grace_period = c.stop_grace_period_ns / 1e9
    config.mounts = [Mount(MOUNT_TYPES[m.type], m.target, m.source, m.read_only,
                           m.tmpfs_options.size_bytes if m.type == specs.Mount.TMPFS else 0)
                     for m in c.mounts if m.type in MOUNT_TYPES]
    if c.HasField("healthcheck") and c.healthcheck.test:
        h = c.healthcheck
        config.healthcheck = Healthcheck(
            list(h.test), interval=h.interval_ns / 1e9 if h.HasField("interval_ns") else 30.0,
            timeout=h.timeout_ns / 1e9 if h.HasField("timeout_ns") else 30.0,
            retries=h.retries if h.HasField("retries") else 3,
            start_period=h.start_period_ns / 1e9 if h.HasField("start_period_ns") else 0.0)
    return config


class Reporter:
    """Collects status reports; the agent's session sends them in batches."""

    def __init__(self):
        self._pending: dict[str, pb.TaskStatus] = {}
        self.ready = asyncio.Event()

    def report(self, task_id: str, state: int, message: str = "", err: str = "", exit_code: int = 0) -> None:
        waiting = self._pending.get(task_id)
        if waiting is not None and waiting.state > state:
            return  # states only move forward; the later one waiting to be sent stands
        self._pending[task_id] = pb.TaskStatus(state=state, message=message, err=err, exit_code=exit_code,
                                               timestamp_ns=time.time_ns(), container_id=task_id)
        self.ready.set()

    def take(self) -> list[dispatcher_pb2.TaskStatusUpdate]:
        batch = [dispatcher_pb2.TaskStatusUpdate(task_id=i, status=s) for i, s in self._pending.items()]
        self._pending.clear()
        self.ready.clear()
        return batch

    def put_back(self, batch: list[dispatcher_pb2.TaskStatusUpdate]) -> None:
        for update in batch:  # a newer report for the same task wins
            self._pending.setdefault(update.task_id, update.status)
        if self._pending:
            self.ready.set()


class TaskController:
    def __init__(self, task: pb.Task, executor, reporter: Reporter):
        self.task = task
        self._executor = executor
        self._reporter = reporter
        self._changed = asyncio.Event()
        self._health = asyncio.Event()    # the executor's healthcheck said something
        self._health_status = ""
        self.runner = asyncio.create_task(self._run(), name=f"task-{task.id}")

    def update(self, task: pb.Task) -> None:
        self.task = task
        self._changed.set()

    def health_changed(self, status: str) -> None:
        self._health_status = status
        self._health.set()

    def _checks_health(self) -> bool:
        test = self.task.spec.container.healthcheck.test
        return bool(test) and test[0] != "NONE"

    def _report(self, state: int, **kwargs) -> None:
        self._reporter.report(self.task.id, state, **kwargs)

    async def _wait_desired(self, at_least: int) -> None:
        while self.task.desired_state < at_least:
            self._changed.clear()
            await self._changed.wait()

    async def _run(self) -> None:
        try:
            if await self._adopted():
                return await self._supervise()
            if self.task.desired_state >= pb.SHUTDOWN:
                return self._report(pb.SHUTDOWN, message="shut down before it started")
            self._report(pb.ACCEPTED, message="accepted")
            self._report(pb.PREPARING, message="preparing")
            await self._executor.prepare(container_config(self.task))
            self._report(pb.READY, message="prepared")
            await self._wait_desired(pb.RUNNING)
            if self.task.desired_state >= pb.SHUTDOWN:
                return await self._shut_down()
            self._report(pb.STARTING, message="starting")
            await self._executor.start(self.task.id)
            if self._checks_health():
                self._report(pb.STARTING, message="started; waiting for the healthcheck to pass")
            else:
                self._report(pb.RUNNING, message="started")
            await self._supervise()
        except ExecutorError as exc:
            self._report(pb.REJECTED, err=str(exc), message="rejected by the executor")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected failure: the task fails, the agent goes on
            log.exception("task %s failed", self.task.id)
            self._report(pb.FAILED, err=f"agent error: {exc}")

    async def _adopted(self) -> bool:
        """After a restart of coveyd: the container may already exist; take it back."""
        try:
            info = await self._executor.inspect(self.task.id)
        except Exception:
            return False
        if info.status == "running":
            self._report(pb.RUNNING, message="adopted after a restart")
        return True

    async def _supervise(self) -> None:
        """Until the container exits, turns unhealthy, or the managers want it stopped."""
        exited = asyncio.create_task(self._executor.wait(self.task.id))
        stop = asyncio.create_task(self._wait_desired(pb.SHUTDOWN))
        unhealthy = asyncio.create_task(self._follow_health()) if self._checks_health() else None
        watched = {t for t in (exited, stop, unhealthy) if t is not None}
        try:
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in watched:
                t.cancel()
        if exited in done and not exited.cancelled():
            return self._report_exit(exited.result())
        if unhealthy in done:
            await self._executor.stop(self.task.id)
            return self._report(pb.FAILED, err="task: unhealthy container")
        await self._shut_down()

    async def _follow_health(self) -> None:
        """Running once the healthcheck passes (as Docker); returns when it fails."""
        while True:
            await self._health.wait()
            self._health.clear()
            if self._health_status == "healthy":
                self._report(pb.RUNNING, message="started; healthy")
            elif self._health_status == "unhealthy":
                return

    def _report_exit(self, status) -> None:
        if status.oom_killed:
            self._report(pb.FAILED, err="task: killed by the kernel: out of memory", exit_code=status.exit_code)
        elif status.exit_code:
            self._report(pb.FAILED, err=f"task: non-zero exit ({status.exit_code})", exit_code=status.exit_code)
        else:
            self._report(pb.COMPLETE, message="finished", exit_code=0)

    async def _shut_down(self) -> None:
        await self._executor.stop(self.task.id)
        self._report(pb.SHUTDOWN, message="shut down")

    async def forget(self) -> None:
        """The task is no longer assigned here: stop and remove its container."""
        self.runner.cancel()
        await asyncio.gather(self.runner, return_exceptions=True)
        try:
            await self._executor.remove(self.task.id, force=True)
        except ExecutorError:
            pass  # never created, or already gone
        # Final, so the managers' reaper can delete the task (a state already past it is kept:
        # the dispatcher drops a report that would move backwards).
        self._report(pb.SHUTDOWN, message="removed")


class TaskManager:
    """All the controllers of this node, fed by the assignments stream."""

    def __init__(self, executor, reporter: Reporter):
        self._executor = executor
        self.reporter = reporter
        self._controllers: dict[str, TaskController] = {}
        if hasattr(executor, "on_health"):  # healthchecks drive STARTING -> RUNNING -> FAILED
            executor.on_health = self._health_changed

    def _health_changed(self, task_id: str, state) -> None:
        controller = self._controllers.get(task_id)
        if controller is not None:
            controller.health_changed(state.status)

    @property
    def executor(self):
        return self._executor

    def task_ids(self, service_id: str) -> list[str]:
        return [i for i, c in self._controllers.items() if c.task.service_id == service_id]

    async def apply(self, message: dispatcher_pb2.AssignmentsMessage) -> None:
        if message.type == dispatcher_pb2.AssignmentsMessage.COMPLETE:
            current = {t.id for t in message.updated}
            for task_id in list(self._controllers):
                if task_id not in current:
                    await self._forget(task_id)
        for task in message.updated:
            controller = self._controllers.get(task.id)
            if controller is None:
                self._controllers[task.id] = TaskController(task, self._executor, self.reporter)
            else:
                controller.update(task)
            if task.desired_state >= pb.REMOVE:
                await self._forget(task.id)
        for task_id in message.removed:
            await self._forget(task_id)

    async def _forget(self, task_id: str) -> None:
        controller = self._controllers.pop(task_id, None)
        if controller is not None:
            await controller.forget()

    async def remove_all(self) -> None:
        """The node left the swarm: every container of its tasks goes, then whatever else
        the executor made (its cgroup parent above all), so that nothing outlives the node."""
        for name in self._executor.names():
            try:
                await self._executor.remove(name, force=True)
            except ExecutorError as exc:
                log.warning("leaving the swarm: container %s: %s", name, exc)
        await self._executor.destroy_all()

    async def close(self) -> None:
        """coveyd stops: controllers stop watching; containers keep running (adopted later)."""
        for controller in self._controllers.values():
            controller.runner.cancel()
        await asyncio.gather(*(c.runner for c in self._controllers.values()), return_exceptions=True)
        self._controllers.clear()

