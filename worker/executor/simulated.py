"""A simulated executor for scale and integration tests: the interface of `Executor`
(prepare, start, wait, stop, remove, inspect, names, cid, list, logs, adopt, close), but a
container is a record in memory and nothing runs. docs/design.md, "The lab and the tests": real parts
everywhere else; this stands in for runc only where thousands of nodes share one process.

What a container does is read from its image name and environment:

    an image whose name (last path part) starts with "missing"   prepare fails: ImageError
    SIM_EXIT=N                   exits with code N (after SIM_RUN seconds, default 0)
    SIM_RUN=S                    runs S seconds, then exits (code SIM_EXIT, default 0)
    SIM_OOM=1                    its exit is an out-of-memory kill (code 137)
    SIM_START_FAIL=TEXT          start fails: ExecutorError with TEXT
    SIM_PREPARE_DELAY=S          prepare takes S seconds (a slow pull)
    SIM_HEALTH=unhealthy         with a healthcheck in the config: it turns unhealthy (else
                                 healthy), SIM_HEALTH_AFTER seconds after start (default 0)

A `SimulatedRegistry` shared by the executors of a swarm can also fail pulls: of an image
it lacks (`missing`), or the next N pulls of an image (`flaky`, a transient failure).

Without SIM_EXIT or SIM_RUN it runs until stopped. `stop` ends it as SIGTERM would
(code 143). Every container logs one line when it starts and one when it exits.
"""
from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .config import ContainerConfig
from .errors import ContainerNotFound, ExecutorError, ImageError
from .executor import ContainerInfo, ExitStatus
from .health import HealthState
from .logfile import LogEntry

SIGTERM_EXIT = 128 + 15     # what `stop` leaves, as a process ended by SIGTERM
SIGKILL_EXIT = 128 + 9      # an OOM kill, or a forced remove


def behaviour(cfg: ContainerConfig) -> dict[str, str]:
    """The SIM_* variables of a container's environment."""
    env = dict(item.partition("=")[::2] for item in cfg.env)
    return {k: v for k, v in env.items() if k.startswith("SIM_")}


def missing_image(image: str) -> bool:
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return name.startswith("missing")


@dataclass
class SimulatedRegistry:
    """What every simulated node pulls from: images it lacks, images whose next pulls fail."""
    missing: set[str] = field(default_factory=set)
    flaky: dict[str, int] = field(default_factory=dict)   # image -> pulls that still fail

    def pull(self, image: str) -> None:
        if missing_image(image) or image in self.missing:
            raise ImageError(f"image {image}: not found (the simulated registry has no such image)")
        if self.flaky.get(image, 0) > 0:
            self.flaky[image] -= 1
            raise ImageError(f"image {image}: pull failed (simulated transient registry error)")


@dataclass
class _Container:
    cfg: ContainerConfig
    created_at: float
    status: str = "created"                       # created | running | exited
    started_at: float = 0.0
    exit: ExitStatus | None = None
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None
    health: HealthState | None = None
    log: list[LogEntry] = field(default_factory=list)
    logged: asyncio.Event = field(default_factory=asyncio.Event)  # set (and reset) on each line


class SimulatedExecutor:
    def __init__(self, registry: SimulatedRegistry | None = None, prefix: str = "sim-"):
        self.registry = registry or SimulatedRegistry()
        self.prefix = prefix
        self.on_health = None     # (name, HealthState) -> None, as the real executor's
        self._containers: dict[str, _Container] = {}
        self.started = 0          # counters, for tests and benchmarks
        self.stopped = 0

    # ---- names ------------------------------------------------------------------------
    def cid(self, name: str) -> str:
        return self.prefix + name

    def _get(self, name: str) -> _Container:
        try:
            return self._containers[name]
        except KeyError:
            raise ContainerNotFound(f"no such container: {name}") from None

    def names(self) -> list[str]:
        return sorted(self._containers)

    def running(self) -> list[str]:
        """Names of the containers that run now."""
        return sorted(n for n, c in self._containers.items() if c.status == "running")

    # ---- lifecycle --------------------------------------------------------------------
    async def prepare(self, cfg: ContainerConfig) -> ContainerInfo:
        if cfg.name in self._containers:
            raise ExecutorError(f"container {cfg.name} already exists")
        sim = behaviour(cfg)
        if float(sim.get("SIM_PREPARE_DELAY", 0)):
            await asyncio.sleep(float(sim["SIM_PREPARE_DELAY"]))
        self.registry.pull(cfg.image)
        self._containers[cfg.name] = _Container(cfg, time.time())
        return await self.inspect(cfg.name)

    async def start(self, name: str) -> ContainerInfo:
        c = self._get(name)
        if c.status != "created":
            raise ExecutorError(f"container {name} is {c.status}: it cannot be started")
        sim = behaviour(c.cfg)
        if "SIM_START_FAIL" in sim:
            raise ExecutorError(f"container {name}: start failed: {sim['SIM_START_FAIL']}")
        c.status, c.started_at = "running", time.time()
        self.started += 1
        self._log(c, "stdout", f"{name}: started ({c.cfg.image})\n")
        if "SIM_EXIT" in sim or "SIM_RUN" in sim:
            code = int(sim.get("SIM_EXIT", 0))
            oom = sim.get("SIM_OOM", "") not in ("", "0")
            code = SIGKILL_EXIT if oom else code
            delay = float(sim.get("SIM_RUN", 0))
            c.timer = asyncio.get_running_loop().call_later(delay, self._exit, c, code, oom)
        hc = c.cfg.healthcheck
        if hc and hc.test and hc.test[0] != "NONE":
            status = "unhealthy" if sim.get("SIM_HEALTH") == "unhealthy" else "healthy"
            c.health = HealthState(status="starting")
            asyncio.get_running_loop().call_later(float(sim.get("SIM_HEALTH_AFTER", 0)), self._health, c, status)
        return await self.inspect(name)

    def _health(self, c: _Container, status: str) -> None:
        if c.status == "running":
            c.health = HealthState(status=status)
            if self.on_health is not None:
                self.on_health(c.cfg.name, c.health)

    async def run(self, cfg: ContainerConfig) -> ContainerInfo:
        await self.prepare(cfg)
        return await self.start(cfg.name)

    def _exit(self, c: _Container, code: int, oom: bool = False, signal: int = 0) -> None:
        if c.exit is not None:
            return
        if c.timer is not None:
            c.timer.cancel()
            c.timer = None
        c.status = "exited"
        c.exit = ExitStatus(exit_code=code, oom_killed=oom, signal=signal, finished_at=time.time())
        self._log(c, "stderr" if code else "stdout", f"{c.cfg.name}: exited with code {code}\n")
        c.exited.set()

    def _log(self, c: _Container, stream: str, line: str) -> None:
        c.log.append(LogEntry(time.time(), stream, line))
        c.logged.set()
        c.logged = asyncio.Event()

    async def wait(self, name: str, timeout: float | None = None) -> ExitStatus:
        c = self._get(name)
        if timeout is None:  # the common case, and the cheaper one with 100,000 simulated tasks
            await c.exited.wait()
        else:
            async with asyncio.timeout(timeout):
                await c.exited.wait()
        if c.exit is None:  # _exit sets exit before exited
            raise ExecutorError(f"container {name} exited without an exit status")
        return c.exit

    async def stop(self, name: str, grace: float | None = None) -> ExitStatus | None:
        c = self._get(name)
        if c.status == "created":
            return None
        if c.status == "running":
            self.stopped += 1
            self._exit(c, SIGTERM_EXIT, signal=15)
        return c.exit

    async def remove(self, name: str, *, force: bool = False) -> None:
        c = self._get(name)
        if c.status == "running" and not force:
            raise ExecutorError(f"container {name} is running: stop it first or force")
        if c.status == "running":
            self.stopped += 1
        self._exit(c, SIGKILL_EXIT, signal=9)   # anyone still waiting sees it end
        del self._containers[name]

    # ---- queries ----------------------------------------------------------------------
    async def inspect(self, name: str) -> ContainerInfo:
        c = self._get(name)
        return ContainerInfo(
            name=name, id=self.cid(name), image=c.cfg.image, image_digest="sha256:" + "0" * 64,
            status=c.status, pid=0, exit_code=c.exit.exit_code if c.exit else None,
            oom_killed=bool(c.exit and c.exit.oom_killed), created_at=c.created_at,
            started_at=c.started_at, finished_at=c.exit.finished_at if c.exit else 0.0,
            health=c.health.to_dict() if c.health else None, config=c.cfg,
            command=[*(c.cfg.entrypoint or []), *(c.cfg.command or [])])

    async def list(self, all: bool = False) -> list[ContainerInfo]:
        infos = [await self.inspect(n) for n in self.names()]
        return [i for i in infos if all or i.status in ("running", "created")]

    async def logs(self, name: str, *, follow: bool = False, tail: int | None = None,
                   since: float = 0.0) -> AsyncIterator[LogEntry]:
        """Entries oldest first; with follow, new ones until the container has exited."""
        c = self._get(name)
        entries = [e for e in c.log if e.time >= since]
        if tail is not None:
            entries = entries[-tail:] if tail > 0 else []
        for entry in entries:
            yield entry
        seen = len(c.log)
        while follow and c.exit is None:
            await c.logged.wait()
            for entry in c.log[seen:]:
                if entry.time >= since:
                    yield entry
            seen = len(c.log)

    def health(self, name: str) -> HealthState | None:
        return self._get(name).health

    async def exec(self, name: str, opts) -> None:
        """No process runs here, so none can be started in a container."""
        self._get(name)
        raise ExecutorError(f"container {name} is simulated: nothing runs in it, so exec cannot start a command")

    async def adopt(self) -> builtins.list[ContainerInfo]:
        """Nothing survives a restart of the process: there is nothing to adopt."""
        return []

    async def close(self) -> None:
        """Containers keep "running" (as with the real executor)."""

    async def destroy_all(self) -> None:
        for name in list(self._containers):
            await self.remove(name, force=True)
