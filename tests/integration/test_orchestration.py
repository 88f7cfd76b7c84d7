"""The orchestrators end to end: real managers (Raft, dispatcher, orchestrator, scheduler),
real agents over mutual TLS, the simulated executor. Replicated slots and scaling, global
services, restart policies, node loss and return, drain and pause, task history."""
import time

from proto import objects_pb2 as pb
from tests.integration.simkit import HEARTBEAT
from tests.integration.swarmtest import swarm_test
from tests.support.builders import SECOND, service_spec
from tests.support.poll import holds

FINISHED = pb.COMPLETE  # a task at or past this has ended


def slots(tasks):
    return sorted(t.slot for t in tasks)


@swarm_test(workers=2)
async def test_replicated_slots_scale_up_and_down(swarm):
    await swarm.create(service_spec("web", replicas=3))
    three = await swarm.until(lambda: swarm.converged("web", 3), what="3 running")
    assert slots(three) == [1, 2, 3]
    assert swarm.by_host(three) == {"m1": 1, "w1": 1, "w2": 1}

    await swarm.scale("web", 6)
    six = await swarm.until(lambda: swarm.converged("web", 6), what="6 running")
    assert slots(six) == [1, 2, 3, 4, 5, 6]
    assert swarm.by_host(six) == {"m1": 2, "w1": 2, "w2": 2}
    assert {t.id for t in three} <= {t.id for t in six}      # scaling up moved nothing

    await swarm.scale("web", 2)
    two = await swarm.until(lambda: swarm.converged("web", 2), what="2 running")
    assert len(set(slots(two))) == 2 and {t.id for t in two} <= {t.id for t in six}
    assert sorted(swarm.by_host(two).values()) == [1, 1]      # what is left stays spread
    # The tasks of the removed slots were stopped on their nodes...
    assert sum(sim.executor.stopped for sim in swarm.nodes.values()) == 4
    assert sum(sim.executor.started for sim in swarm.nodes.values()) == 6
    # ...reported as such, and reaped (so `service ps` and the scheduler's load forget them).
    await swarm.until(lambda: _all_gone(swarm, {t.id for t in six} - {t.id for t in two}),
                      what="the removed slots' tasks deleted")


async def _all_gone(swarm, ids):
    return not ids & {t.id for t in await swarm.tasks()}


@swarm_test(workers=2, drain_managers=True)
async def test_scale_down_removes_tasks_from_the_most_loaded_nodes(swarm):
    """docs/design.md, "Control plane": replicated scale-down removes tasks preferring the most loaded
    nodes (as Docker does), so that what is left stays spread."""
    await swarm.create(service_spec("web", replicas=4))
    four = await swarm.until(lambda: swarm.converged("web", 4), what="4 running")
    assert swarm.by_host(four) == {"w1": 2, "w2": 2}
    await swarm.join("w3")                                # nothing moves to it...
    await swarm.scale("web", 5)                           # ...but the 5th slot goes there
    five = await swarm.until(lambda: swarm.converged("web", 5), what="5 running")
    assert swarm.by_host(five) == {"w1": 2, "w2": 2, "w3": 1}
    await swarm.scale("web", 3)
    three = await swarm.until(lambda: swarm.converged("web", 3), what="3 running")
    assert swarm.by_host(three) == {"w1": 1, "w2": 1, "w3": 1}


@swarm_test(workers=2)
async def test_global_service_follows_eligible_nodes(swarm):
    await swarm.create(service_spec("agent", replicas=None))
    first = await swarm.until(lambda: swarm.converged("agent", 3), what="one task per node")
    assert swarm.by_host(first) == {"m1": 1, "w1": 1, "w2": 1}
    assert all(t.slot == 0 for t in first)

    await swarm.join("w3")                                # a node that joins later gets one
    four = await swarm.until(lambda: swarm.converged("agent", 4), what="a task on w3")
    assert swarm.by_host(four) == {"m1": 1, "w1": 1, "w2": 1, "w3": 1}

    await swarm.update_node("w1", availability=pb.DRAIN)   # a drained node loses its task
    three = await swarm.until(lambda: swarm.converged("agent", 3), what="w1's task stopped")
    assert swarm.by_host(three) == {"m1": 1, "w2": 1, "w3": 1}
    assert swarm.nodes["w1"].executor.stopped == 1 and not swarm.nodes["w1"].running()
    assert {t.id for t in three} <= {t.id for t in four}  # the others did not move

    await swarm.update_node("w2", availability=pb.PAUSE)   # paused: keeps what it runs,
    await swarm.create(service_spec("probe", replicas=None))    # gets nothing new
    probes = await swarm.until(lambda: swarm.converged("probe", 2), what="probe on m1 and w3")
    assert swarm.by_host(probes) == {"m1": 1, "w3": 1}
    assert swarm.containers("agent") == {"m1": 1, "w2": 1, "w3": 1}

    await swarm.update_node("w1", availability=pb.ACTIVE)  # back: it gets a task again
    again = await swarm.until(lambda: swarm.converged("agent", 4), what="w1 active again")
    assert swarm.by_host(again) == {"m1": 1, "w1": 1, "w2": 1, "w3": 1}
    await swarm.until(lambda: swarm.converged("probe", 3), what="probe on w1 too")


def _restart(condition, **kw):
    return {"condition": condition, "delay": 0, **kw}


@swarm_test(workers=1)
async def test_restart_conditions_and_max_attempts(swarm):
    cases = {   # name: (restart policy, exit code, tasks the slot must end with)
        "none-fails": (_restart("NONE"), 1, 1),
        "none-ends": (_restart("NONE"), 0, 1),
        "onfail-ends": (_restart("ON_FAILURE"), 0, 1),
        "onfail-fails": (_restart("ON_FAILURE", max_attempts=2), 3, 3),
        "any-ends": (_restart("ANY", max_attempts=2), 0, 3),
    }

    for name, (policy, code, _) in cases.items():
        await swarm.create(service_spec(name, restart=policy, env={"SIM_EXIT": code, "SIM_RUN": 0.1}))

    async def settled():
        out = {}
        for name, (_, _, count) in cases.items():
            tasks = await swarm.tasks(name)
            if len(tasks) != count or any(t.status.state < FINISHED for t in tasks):
                return None
            out[name] = tasks
        return out
    done = await swarm.until(settled, what="every slot at its final count of finished tasks")
    # Nothing more happens: the policies have given up (watched over a reconcile period and more).
    await holds(lambda: _unchanged(swarm, done), 1.5, "no further restarts")
    states = {name: [pb.TaskState.Name(t.status.state) for t in tasks] for name, tasks in done.items()}
    assert states == {"none-fails": ["FAILED"], "none-ends": ["COMPLETE"], "onfail-ends": ["COMPLETE"],
                      "onfail-fails": ["FAILED"] * 3, "any-ends": ["COMPLETE"] * 3}
    assert {t.status.exit_code for t in done["onfail-fails"]} == {3}
    assert all(t.status.err == "task: non-zero exit (3)" for t in done["onfail-fails"])
    for tasks in done.values():
        assert {t.slot for t in tasks} == {1}


async def _unchanged(swarm, before: dict) -> bool:
    for name, tasks in before.items():
        assert sorted(t.id for t in await swarm.tasks(name)) == sorted(t.id for t in tasks), \
            f"{name} changed after its restart policy gave up"
    return True


@swarm_test(workers=1)
async def test_restart_delay_and_window(swarm):
    delay = 1.0

    await swarm.create(service_spec("delayed", env={"SIM_EXIT": 1},
                                    restart={"condition": "ON_FAILURE", "delay": delay, "max_attempts": 1}))
    # Each task lives 0.8 s: longer than the 0.5 s window, so no earlier restart counts
    # against max_attempts=1 and the slot keeps restarting; without a window, it stops at 1.
    failing = {"SIM_EXIT": 1, "SIM_RUN": 0.8}
    await swarm.create(service_spec("windowed", env=failing,
                                    restart={"condition": "ON_FAILURE", "delay": 0, "max_attempts": 1,
                                             "window": 0.5}))
    await swarm.create(service_spec("unwindowed", env=failing,
                                    restart={"condition": "ON_FAILURE", "delay": 0, "max_attempts": 1}))
    delayed = await swarm.until(lambda: _finished(swarm, "delayed", 2), what="delayed: 2 failed tasks")
    windowed = await swarm.until(lambda: _finished(swarm, "windowed", 3), what="windowed: 3 failed tasks")
    unwindowed = await swarm.tasks("unwindowed")
    first, second = sorted(delayed, key=lambda t: t.meta.created_at_ns)
    waited = (second.meta.created_at_ns - first.status.timestamp_ns) / SECOND
    assert waited >= delay, f"restarted {waited:.2f}s after the failure, before the {delay}s delay"
    assert len(windowed) >= 3
    assert len(unwindowed) == 2 and all(t.status.state == pb.FAILED for t in unwindowed)


async def _finished(swarm, name, count):
    tasks = [t for t in await swarm.tasks(name) if t.status.state >= FINISHED]
    return tasks if len(tasks) >= count else None


@swarm_test(workers=2)
async def test_node_down_tasks_replaced_and_its_return_leaves_one_task_per_slot(swarm):
    await swarm.create(service_spec("web", replicas=3))
    before = await swarm.until(lambda: swarm.converged("web", 3), what="3 running")
    lost = next(t for t in before if swarm.hostname_of(t.node_id) == "w1")

    cut = time.time_ns()
    await swarm.partition("w1")               # w1's container keeps running, cut off
    down = await swarm.until(lambda: _state_is(swarm, "w1", pb.NodeStatus.DOWN), what="w1 Down")
    assert down.status.message == "heartbeat failure"

    async def replaced():
        live = await swarm.live("web")
        fresh = [t for t in live if t.slot == lost.slot]
        return fresh if len(live) == 3 and fresh and fresh[0].id != lost.id and \
            fresh[0].status.state == pb.RUNNING else None
    fresh = (await swarm.until(replaced, what="w1's slot running elsewhere"))[0]
    assert swarm.hostname_of(fresh.node_id) in ("m1", "w2")
    # Not replaced before the node was Down: that takes 4 heartbeat periods from its
    # last heartbeat, itself at most one period before the cut.
    assert (fresh.meta.created_at_ns - cut) / SECOND >= 3 * HEARTBEAT
    old = next(t for t in await swarm.tasks("web") if t.id == lost.id)
    assert old.desired_state == pb.SHUTDOWN
    assert swarm.nodes["w1"].running("web")   # the partitioned host still runs it

    swarm.heal("w1")
    await swarm.until_ready("w1")
    after = await swarm.until(lambda: swarm.converged("web", 3), what="one running task per slot")
    assert slots(after) == [1, 2, 3]
    assert not swarm.nodes["w1"].running("web")            # the returning node stopped it
    await swarm.until(lambda: _reported(swarm, lost.id, pb.SHUTDOWN), what="w1 reporting it shut down")
    assert swarm.nodes["w1"].executor.started == 1          # and started nothing again
    # Nothing flaps afterwards: still exactly one running task per slot.
    await holds(lambda: _still(swarm, after), 1.0, "one running task per slot")


async def _reported(swarm, task_id, state):
    return any(t.id == task_id and t.status.state == state for t in await swarm.tasks())


async def _state_is(swarm, hostname, state):
    node = await swarm.node(hostname)
    return node if node.status.state == state else None


async def _still(swarm, tasks):
    now = await swarm.converged("web", len(tasks))
    assert now and sorted(t.id for t in now) == sorted(t.id for t in tasks), "tasks changed"
    running = [t for t in await swarm.tasks("web") if t.status.state == pb.RUNNING]
    assert sorted(t.slot for t in running) == slots(tasks), "a slot has two running tasks"
    return True


@swarm_test(workers=3, drain_managers=True)
async def test_pause_stops_new_placements_and_keeps_running_tasks(swarm):
    await swarm.create(service_spec("web", replicas=6))
    six = await swarm.until(lambda: swarm.converged("web", 6), what="6 running")
    assert swarm.by_host(six) == {"w1": 2, "w2": 2, "w3": 2}
    on_w3 = {t.id for t in six if swarm.hostname_of(t.node_id) == "w3"}

    await swarm.update_node("w3", availability=pb.PAUSE)
    await swarm.scale("web", 10)
    ten = await swarm.until(lambda: swarm.converged("web", 10), what="10 running")
    assert swarm.by_host(ten) == {"w1": 4, "w2": 4, "w3": 2}
    assert {t.id for t in ten if swarm.hostname_of(t.node_id) == "w3"} == on_w3

    await swarm.update_node("w3", availability=pb.ACTIVE)
    await swarm.scale("web", 12)
    twelve = await swarm.until(lambda: swarm.converged("web", 12), what="12 running")
    assert swarm.by_host(twelve) == {"w1": 4, "w2": 4, "w3": 4}   # active again: it takes the new ones


@swarm_test(workers=3, drain_managers=True)
async def test_drain_moves_replicated_tasks_to_other_nodes(swarm):
    """docs/design.md, "Control plane" and Docker: draining a node moves its tasks elsewhere."""
    await swarm.create(service_spec("web", replicas=6))
    six = await swarm.until(lambda: swarm.converged("web", 6), what="6 running")
    assert swarm.by_host(six) == {"w1": 2, "w2": 2, "w3": 2}
    await swarm.update_node("w3", availability=pb.DRAIN)

    async def moved():
        tasks = await swarm.converged("web", 6)
        return tasks if tasks and "w3" not in swarm.by_host(tasks) else None
    after = await swarm.until(moved, timeout=10, what="w3's tasks running on w1 and w2")
    assert swarm.by_host(after) == {"w1": 3, "w2": 3}
    assert slots(after) == [1, 2, 3, 4, 5, 6]
    assert not swarm.nodes["w3"].running()


@swarm_test()
async def test_task_history_is_capped_at_five_per_slot(swarm):
    # Exits at once and is restarted at once, again and again.
    await swarm.create(service_spec("flaky", env={"SIM_EXIT": 1, "SIM_RUN": 0.02},
                                    restart={"condition": "ANY", "delay": 0}))
    executor = swarm.nodes["m1"].executor
    seen: dict[str, int] = {}

    async def churned():
        tasks = await swarm.tasks("flaky")
        seen.update({t.id: t.meta.created_at_ns for t in tasks})
        finished = [t for t in tasks if t.status.state >= FINISHED]
        return tasks if executor.started >= 10 and len(finished) == 5 else None
    tasks = await swarm.until(churned, what="10 restarts")
    finished = [t for t in tasks if t.status.state >= FINISHED]
    assert len(finished) == 5 and {t.slot for t in tasks} == {1}
    assert len(tasks) <= 6                              # 5 finished and the current one
    deleted = set(seen) - {t.id for t in tasks}
    assert len(deleted) >= 4
    # The ones kept are the newest.
    assert min(t.meta.created_at_ns for t in finished) > max(seen[i] for i in deleted)
