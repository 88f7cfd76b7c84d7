"""@swarm_test: an in-process swarm (simkit) built around an async test, torn down after it
(also when it fails or overruns its deadline), and the swarm's invariants checked after it.

    @swarm_test(managers=1, workers=2)
    async def test_web(swarm):
        await swarm.create(service_spec("web", replicas=3))
        await swarm.until(lambda: swarm.converged("web", 3), what="3 running")

Managers are m1..mN (m1 inits), workers w1..wN. The checks (CHECKS), after every test:
- one_live_per_slot: at most one live task per slot of a replicated service and per node of
  a global one; live = desired state <= RUNNING and not in a final state;
- known_nodes: no task assigned to a node the swarm does not know;
- monotonic_states: no task's state moved backwards in any manager's store during the test;
- containers_running: every RUNNING task's container runs on its node's simulated executor.
The state checks poll (`settle` seconds) until they hold: a test may end mid-change.
A test that breaks one on purpose opts out by name, saying why: skip_checks=("known_nodes",).
"""
from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field

from coveyd.settings import Settings
from proto import objects_pb2 as pb
from proto import store_pb2
from tests.integration.simkit import HEARTBEAT, Swarm, fast_settings
from tests.support.poll import until

CHECKS = ("one_live_per_slot", "known_nodes", "monotonic_states", "containers_running")


def swarm_test(managers: int = 1, workers: int = 0, *, settings: Settings | None = None,
               heartbeat: float = HEARTBEAT, drain_managers: bool = False, timeout: float = 60.0,
               settle: float = 5.0, skip_checks=()):
    """Decorate `async def test_x(swarm, ...)`; drain_managers leaves the tasks to the workers."""
    unknown = set(skip_checks) - set(CHECKS)
    assert not unknown, f"unknown checks {sorted(unknown)}: the checks are {CHECKS}"
    checks = tuple(c for c in CHECKS if c not in skip_checks)

    def decorate(test):
        async def scenario(tmp_path, kwargs):
            swarm = Swarm(tmp_path, heartbeat=heartbeat, settings=settings or fast_settings())
            async with swarm:
                await _build(swarm, managers, workers, drain_managers)
                history = StateHistory()
                async with history.watching(swarm):
                    await test(swarm, **kwargs)
                await check_swarm(swarm, history, checks, settle)

        def wrapper(tmp_path, **kwargs):
            asyncio.run(asyncio.wait_for(scenario(tmp_path, kwargs), timeout))
        return _as_test(wrapper, test)
    return decorate


def _as_test(wrapper, test):
    """The wrapper as pytest sees a test: the test's name and its fixtures, tmp_path for swarm."""
    params = [p for name, p in inspect.signature(test).parameters.items() if name != "swarm"]
    tmp = inspect.Parameter("tmp_path", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    wrapper.__signature__ = inspect.Signature([tmp, *params])
    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
        setattr(wrapper, attr, getattr(test, attr))
    wrapper.pytestmark = getattr(test, "pytestmark", [])
    return wrapper


async def _build(swarm: Swarm, managers: int, workers: int, drain_managers: bool) -> None:
    await swarm.init("m1")
    if managers > 1:
        await swarm.join(*(f"m{i}" for i in range(2, managers + 1)), manager=True)
    if drain_managers:
        for i in range(1, managers + 1):
            await swarm.update_node(f"m{i}", availability=pb.DRAIN)
    if workers:
        await swarm.join(*(f"w{i}" for i in range(1, workers + 1)))


# ---------------------------------------------------------------- what the stores saw

def _name(t: pb.Task) -> str:
    return f"{t.service_name}.{t.slot or t.node_id} (task {t.id})"


@dataclass
class StateHistory:
    """Every task state each manager's store applied: per store and task, never lower."""
    highest: dict[tuple[str, str], int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def observe(self, store_name: str, event) -> None:
        t, key = event.obj, (store_name, event.id)
        if not isinstance(t, pb.Task) or event.kind == store_pb2.StoreAction.DELETE:
            return
        before = self.highest.get(key, -1)
        if t.status.state < before:
            self.violations.append(f"{_name(t)} moved back from {pb.TaskState.Name(before)} to "
                                   f"{pb.TaskState.Name(t.status.state)} in {store_name}'s store")
        self.highest[key] = max(before, t.status.state)

    def watching(self, swarm: Swarm) -> _Watching:
        return _Watching(self, swarm)


class _Watching:
    """Subscribes to every manager's store, also those that join during the test."""

    def __init__(self, history: StateHistory, swarm: Swarm):
        self.history, self.swarm = history, swarm
        self.queues: dict[str, tuple[object, asyncio.Queue]] = {}
        self._task: asyncio.Task | None = None

    def _subscribe_new(self) -> None:
        for hostname, sim in self.swarm.nodes.items():
            manager = sim.node.manager
            if manager is not None and hostname not in self.queues:
                self.queues[hostname] = (manager.store, manager.store.subscribe())

    def _drain(self) -> None:
        for hostname, (_, queue) in self.queues.items():
            while not queue.empty():
                self.history.observe(hostname, queue.get_nowait())

    async def _run(self) -> None:
        while True:  # a sampler, not a synchronization: queues keep every event in between
            self._subscribe_new()
            self._drain()
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> _Watching:
        self._subscribe_new()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._drain()
        for store, queue in self.queues.values():
            store.unsubscribe(queue)


# ---------------------------------------------------------------- the checks

def _live(t: pb.Task) -> bool:
    return t.desired_state <= pb.RUNNING and t.status.state < pb.COMPLETE


def one_live_per_slot(services, tasks) -> list[str]:
    global_ids = {s.id for s in services if s.spec.WhichOneof("mode") in ("global", "global_job")}
    seen: dict[tuple, pb.Task] = {}
    out = []
    for t in sorted(tasks, key=lambda t: t.id):
        if not _live(t):
            continue
        key = (t.service_id, t.node_id) if t.service_id in global_ids else (t.service_id, t.slot)
        if key in seen:
            out.append(f"two live tasks for {_name(t)}: {seen[key].id} and {t.id}")
        seen[key] = t
    return out


def known_nodes(tasks, nodes) -> list[str]:
    ids = {n.id for n in nodes}
    return [f"{_name(t)} is assigned to unknown node {t.node_id}" for t in tasks if t.node_id and t.node_id not in ids]


def containers_running(tasks, running_on: dict[str, set[str]]) -> list[str]:
    """`running_on`: node ID -> the names (task IDs) of the containers its executor runs."""
    return [f"{_name(t)} is RUNNING but its node {t.node_id} runs no container for it"
            for t in tasks if t.status.state == pb.RUNNING and t.id not in running_on.get(t.node_id, set())]


def state_violations(services, tasks, nodes, running_on, checks=CHECKS) -> list[str]:
    out = []
    if "one_live_per_slot" in checks:
        out += one_live_per_slot(services, tasks)
    if "known_nodes" in checks:
        out += known_nodes(tasks, nodes)
    if "containers_running" in checks:
        out += containers_running(tasks, running_on)
    return out


def _current_violations(swarm: Swarm, checks) -> list[str]:
    source = swarm.leader() or next((s for s in swarm.nodes.values() if s.node.manager), None)
    assert source is not None, "no manager left to read the swarm's state from"
    store = source.node.manager.store
    running_on = {sim.id: set(sim.executor.running()) for sim in swarm.nodes.values() if sim.node.membership}
    return state_violations(store.services.list(), store.tasks.list(), store.nodes.list(), running_on, checks)


async def check_swarm(swarm: Swarm, history: StateHistory, checks=CHECKS, settle: float = 5.0) -> None:
    """Fail naming every violation; the state checks get `settle` seconds to hold."""
    if "monotonic_states" in checks:
        assert not history.violations, "task states moved backwards:\n  " + "\n  ".join(history.violations)
    last: list[str] = []

    def clean() -> bool:
        last[:] = _current_violations(swarm, checks)
        return not last
    try:
        await until(clean, settle, what="the swarm's invariants")
    except TimeoutError:
        raise AssertionError("swarm invariants violated after the test:\n  " + "\n  ".join(last)) from None
