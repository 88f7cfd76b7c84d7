"""Task controllers: the agent's side of running tasks (docs/design.md, "Control plane").

Each assigned task gets a controller that walks it through ACCEPTED, PREPARING, READY,
STARTING, RUNNING and a final state, never past the task's desired state, and reports
every step. What to do next is decided by the pure `worker.lifecycle.step`; the controller
here only executes it with the executor. Reports are batched and resent after a
reconnect; the dispatcher drops the ones that would move a state backwards.
"""
import asyncio
import logging
import time
from dataclasses import replace

from covey import hostname
from covey.hostname import TaskFacts
from proto import dispatcher_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from worker import lifecycle
from worker.executor import ContainerConfig, ContainerNotFound, ExecutorError
from worker.executor.config import Healthcheck, Mount, Ulimit
from worker.lifecycle import Do
from worker.network import TaskNetworks
from worker.secrets import SecretStore

log = logging.getLogger(__name__)

MOUNT_TYPES = {specs.Mount.BIND: "bind", specs.Mount.VOLUME: "volume", specs.Mount.TMPFS: "tmpfs"}
TASK_NAME_LABEL = "covey.task.name"     # what `covey container ls` shows as NAMES


def task_name(task: pb.Task) -> str:
    """Docker's name for a task's container (covey/hostname.py). The runc id stays the task
    id (adoption finds it)."""
    return hostname.task_name(TaskFacts(task.service_name, task.service_id, task.slot, task.id, task.node_id, ""))


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
                "covey.service.name": task.service_name, TASK_NAME_LABEL: task_name(task)})
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

    def report(self, task_id: str, state: pb.TaskState, message: str = "", err: str = "", exit_code: int = 0) -> None:
        waiting = self._pending.get(task_id)
        if waiting is not None and waiting.state > state:
            return  # states only move forward; the later one waiting to be sent stands
        now = time.time_ns()
        self._pending[task_id] = pb.TaskStatus(state=state, message=message, err=err, exit_code=exit_code,
                                               timestamp_ns=now, container_id=task_id)
        log.debug("task %s %s at %d ns", task_id, pb.TaskState.Name(state), now)  # bench_task_start reads it
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
    """The shell around `lifecycle.step`: executes each action with the executor, reports,
    and feeds the outcome back; the managers steer it only through the desired state."""

    def __init__(self, task: pb.Task, executor, reporter: Reporter, networks: TaskNetworks | None = None,
                 secrets: SecretStore | None = None):
        self.task = task
        self._executor = executor
        self._networks = networks
        self._secrets = secrets
        self._reporter = reporter
        self._changed = asyncio.Event()     # the desired state or the health changed
        self._health = ""                   # the executor's last healthcheck status
        self._removing = False              # unassigned, or desired REMOVE
        self._reported = 0
        self._container: lifecycle.Container | None = None
        self._failed: lifecycle.Failure | None = None
        # (user, password) to pull the image with, from the assignments: in memory until pulled
        self.registry_auth: tuple[str, str] | None = None
        self.runner = asyncio.create_task(self._run(), name=f"task-{task.id}")

    def update(self, task: pb.Task) -> None:
        self.task = task
        self._changed.set()

    def health_changed(self, status: str) -> None:
        self._health = status
        self._changed.set()

    def _view(self) -> lifecycle.View:
        c = self._container
        if c is not None and c.status in lifecycle.RUNNING_STATUSES and self._health:
            c = replace(c, health=self._health)
        test = self.task.spec.container.healthcheck.test
        return lifecycle.View(desired=pb.REMOVE if self._removing else self.task.desired_state,
                              reported=self._reported, container=c, failed=self._failed,
                              checks_health=bool(test) and test[0] != "NONE")

    async def _run(self) -> None:
        """From what is there (nothing, or a container left by coveyd's previous life)."""
        try:
            self._container = await self._observe()
            while (action := lifecycle.step(self._view())).do is not Do.DONE:
                await self._do(action)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or an unexpected failure: the task fails, the agent goes on
            log.exception("task %s failed", self.task.id)
            self._reporter.report(self.task.id, pb.FAILED, err=f"agent error: {exc}")

    async def _observe(self) -> lifecycle.Container | None:
        try:
            return _container_view(await self._executor.inspect(self.task.id))
        except ExecutorError:
            return None

    async def _do(self, action: lifecycle.Action) -> None:
        if action.do is Do.REPORT:
            self._reporter.report(self.task.id, action.state, message=action.message, err=action.err,
                                  exit_code=action.exit_code)
            self._reported = max(self._reported, action.state)
        elif action.do is Do.WAIT:
            await self._wait()
        else:
            try:
                await self._execute(action.do)
            except ExecutorError as exc:
                log.warning("task %s: %s failed: %s", self.task.id, action.do.value, exc)
                self._failed = lifecycle.Failure(action.do, str(exc))

    async def _execute(self, do: Do) -> None:
        ex, name, before = self._executor, self.task.id, self._view().container
        if do is Do.PREPARE:
            config = await self._config()
            config.registry_auth = self.registry_auth
            self._container = _container_view(await ex.prepare(config))
            self.registry_auth = None  # pulled: not kept a moment longer
        elif do is Do.START:
            self._container = _container_view(await ex.start(name))
        elif do is Do.STOP:
            self._container = _exited(await ex.stop(name), before)
        elif do is Do.REMOVE:
            try:
                await ex.remove(name, force=True)
            except ContainerNotFound:
                pass                        # gone already: what removing wanted
            self._container = None
            if self._networks is not None:
                await self._networks.release(name)

    async def _config(self) -> ContainerConfig:
        """The container's config, with its network namespace, resolv.conf and hosts."""
        config = container_config(self.task)
        if self._secrets is not None:
            config.files = self._secrets.files(self.task)
        if self._networks is None:
            return config
        config.hostname = self._networks.hostname(self.task)
        net = await self._networks.prepare(self.task)
        if net is not None:
            config.netns, config.resolv_conf, config.extra_hosts = net.netns, net.resolv_conf, net.hosts
        return config

    async def _wait(self) -> None:
        """Until the desired state or the health changes, or the running container exits."""
        self._changed.clear()
        watched = {asyncio.create_task(self._changed.wait())}
        exited = None
        if self._container is not None and self._container.status in lifecycle.RUNNING_STATUSES:
            exited = asyncio.create_task(self._executor.wait(self.task.id))
            watched.add(exited)
        try:
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in watched:
                t.cancel()
        if exited in done:
            try:
                self._container = _exited(exited.result(), self._view().container)
            except ExecutorError as exc:
                self._failed = lifecycle.Failure(Do.WAIT, str(exc))

    async def forget(self) -> None:
        """The task is no longer assigned here (or desired REMOVE): its container goes."""
        self.runner.cancel()
        await asyncio.gather(self.runner, return_exceptions=True)
        self._removing, self._failed = True, None
        self.runner = asyncio.create_task(self._run(), name=f"task-{self.task.id}-remove")
        await self.runner


def _container_view(info) -> lifecycle.Container:
    dead = info.status == "dead"
    return lifecycle.Container("exited" if dead else info.status, exit_code=-1 if dead else info.exit_code or 0,
                               oom_killed=info.oom_killed, health=(info.health or {}).get("status", ""))


def _exited(status, before: lifecycle.Container | None) -> lifecycle.Container:
    """After a stop or an exit; the last health stays (an unhealthy stop fails the task)."""
    health = before.health if before else ""
    if status is None:                      # stop found it not running: it is over
        return lifecycle.Container("exited", exit_code=-1, health=health)
    return lifecycle.Container("exited", status.exit_code, status.oom_killed, health)


class TaskManager:
    """All the controllers of this node, fed by the assignments stream."""

    def __init__(self, executor, reporter: Reporter, networks: TaskNetworks | None = None):
        self._executor = executor
        self.reporter = reporter
        self.networks = networks
        self.secrets = SecretStore()           # in memory only
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
        if self.networks is not None:          # views first: the tasks below may need them
            await self.networks.apply(message)
        self.secrets.apply(message)            # before the tasks that use them
        if message.type == dispatcher_pb2.AssignmentsMessage.COMPLETE:
            current = {t.id for t in message.updated}
            for task_id in list(self._controllers):
                if task_id not in current:
                    await self._forget(task_id)
            await self._remove_unknown(current)
        for task in message.updated:
            controller = self._controllers.get(task.id)
            if controller is None:
                controller = self._controllers[task.id] = TaskController(task, self._executor, self.reporter,
                                                                         self.networks, self.secrets)
            else:
                controller.update(task)
            if task.id in message.registry_auths:
                auth = message.registry_auths[task.id]
                controller.registry_auth = (auth.username, auth.password)
            if task.desired_state >= pb.REMOVE:
                await self._forget(task.id)
        for task_id in message.removed:
            await self._forget(task_id)

    async def _remove_unknown(self, current: set[str]) -> None:
        """Containers of tasks that the managers no longer have (deleted while this node was
        away, or made after the backup that a restored swarm came from) go: no controller
        would ever stop them."""
        for name in self._executor.names():
            if name not in current and name not in self._controllers:
                log.info("container of task %s, which the managers do not know: removing it", name)
                try:
                    await self._executor.remove(name, force=True)
                except ExecutorError as exc:
                    log.warning("container %s: %s", name, exc)

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
        if self.networks is not None:
            await self.networks.remove_all()
            self.networks = None            # a swarm joined next has other networks

    async def close(self) -> None:
        """coveyd stops: controllers stop watching; containers keep running (adopted later)."""
        for controller in self._controllers.values():
            controller.runner.cancel()
        await asyncio.gather(*(c.runner for c in self._controllers.values()), return_exceptions=True)
        self._controllers.clear()
        if self.networks is not None:
            await self.networks.close()

