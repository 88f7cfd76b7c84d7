"""The simulated executor keeps the real executor's contract (what the task controllers and
the node's container API rely on): behaviour from the image name and SIM_* variables."""
import asyncio

import pytest

from worker.executor import ContainerConfig, ContainerNotFound, ExecutorError, ImageError
from worker.executor.config import Healthcheck
from worker.executor.simulated import SimulatedExecutor, SimulatedRegistry


def cfg(name, image="registry.local/app:v1", **env):
    return ContainerConfig(name=name, image=image, env=[f"{k}={v}" for k, v in env.items()])


def test_lifecycle_exit_codes_and_errors(run):
    async def scenario():
        ex = SimulatedExecutor()
        out = {}
        with pytest.raises(ContainerNotFound):
            await ex.inspect("nope")
        with pytest.raises(ImageError, match="registry.local/missing-db:v1"):
            await ex.prepare(cfg("a", "registry.local/missing-db:v1"))
        assert ex.names() == []                                   # a failed prepare leaves nothing

        created = await ex.prepare(cfg("forever"))
        out["created"] = (created.status, created.exit_code)
        with pytest.raises(ExecutorError, match="already exists"):
            await ex.prepare(cfg("forever"))
        await ex.start("forever")
        with pytest.raises(asyncio.TimeoutError):
            await ex.wait("forever", timeout=0.1)                 # runs until stopped
        with pytest.raises(ExecutorError, match="is running"):
            await ex.remove("forever")
        out["stopped"] = (await ex.stop("forever")).exit_code
        out["after stop"] = (await ex.inspect("forever")).status

        await ex.run(cfg("exits", SIM_EXIT=3, SIM_RUN=0.05))
        out["exit"] = (await ex.wait("exits", timeout=2)).exit_code
        await ex.run(cfg("oom", SIM_OOM=1, SIM_RUN=0))
        status = await ex.wait("oom", timeout=2)
        out["oom"] = (status.oom_killed, status.exit_code)
        await ex.prepare(cfg("nostart", SIM_START_FAIL="no such binary"))
        with pytest.raises(ExecutorError, match="no such binary"):
            await ex.start("nostart")
        out["listed"] = sorted(i.name for i in await ex.list())
        out["all"] = sorted(i.name for i in await ex.list(all=True))
        await ex.remove("exits")
        with pytest.raises(ContainerNotFound):
            await ex.wait("exits")
        out["counters"] = (ex.started, ex.stopped)
        return out
    out = run(scenario())
    assert out["created"] == ("created", None)
    assert out["stopped"] == 143 and out["after stop"] == "exited"
    assert out["exit"] == 3 and out["oom"] == (True, 137)
    assert out["listed"] == ["nostart"]                           # created, never started
    assert out["all"] == ["exits", "forever", "nostart", "oom"]
    assert out["counters"] == (3, 1)


def test_registry_missing_and_flaky_images(run):
    async def scenario():
        registry = SimulatedRegistry(missing={"registry.local/gone:v1"}, flaky={"registry.local/app:v2": 1})
        a, b = SimulatedExecutor(registry), SimulatedExecutor(registry)
        with pytest.raises(ImageError, match="gone:v1: not found"):
            await a.prepare(cfg("x", "registry.local/gone:v1"))
        with pytest.raises(ImageError, match="transient"):
            await a.prepare(cfg("y", "registry.local/app:v2"))
        await b.prepare(cfg("y", "registry.local/app:v2"))        # the next pull, on any node, works
        return b.names()
    assert run(scenario()) == ["y"]


def test_logs_tail_since_follow_and_health(run):
    async def scenario():
        ex = SimulatedExecutor()
        seen = []
        ex.on_health = lambda name, state: seen.append((name, state.status))
        hc = Healthcheck(["CMD", "true"])
        ok, sick = cfg("ok"), cfg("sick", SIM_HEALTH="unhealthy")
        ok.healthcheck = sick.healthcheck = hc
        await ex.run(ok)
        await ex.run(sick)
        await ex.run(cfg("short", SIM_RUN=0.1, SIM_EXIT=2))
        follow = [e.line async for e in ex.logs("short", follow=True)]   # ends when it exits
        everything = [e async for e in ex.logs("short")]
        tail = [e.line async for e in ex.logs("short", tail=1)]
        since = [e.line async for e in ex.logs("short", since=everything[-1].time)]
        await asyncio.wait_for(_until(lambda: len(seen) == 2), 2)
        return follow, [e.stream for e in everything], tail, since, sorted(seen), ex.health("ok").status
    follow, streams, tail, since, seen, health = run(scenario())
    assert follow == ["short: started (registry.local/app:v1)\n", "short: exited with code 2\n"]
    assert streams == ["stdout", "stderr"]
    assert tail == since == ["short: exited with code 2\n"]
    assert seen == [("ok", "healthy"), ("sick", "unhealthy")] and health == "healthy"


async def _until(predicate):
    while not predicate():
        await asyncio.sleep(0.01)
