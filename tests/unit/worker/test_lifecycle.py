"""Every transition of the agent's task lifecycle (worker/lifecycle.py), one row each:
what the controller knows -> what it does next."""
import itertools
from dataclasses import replace

import pytest

from proto import objects_pb2 as pb
from worker.lifecycle import DONE, WAIT, Action, Container, Do, Failure, View, report, step

NEW, ACCEPTED, PREPARING, READY, STARTING, RUNNING = 0, pb.ACCEPTED, pb.PREPARING, pb.READY, pb.STARTING, pb.RUNNING
COMPLETE, SHUTDOWN, FAILED, REJECTED, REMOVE = pb.COMPLETE, pb.SHUTDOWN, pb.FAILED, pb.REJECTED, pb.REMOVE

CREATED = Container("created")
UP = Container("running")
PAUSED = Container("paused")
UP_STARTING = Container("running", health="starting")
UP_HEALTHY = Container("running", health="healthy")
UP_UNHEALTHY = Container("running", health="unhealthy")
EXITED_0 = Container("exited", 0)
EXITED_3 = Container("exited", 3)
EXITED_TERM = Container("exited", 143)
OOM = Container("exited", 137, oom_killed=True)
STOPPED_UNHEALTHY = Container("exited", 137, health="unhealthy")

PREPARE, START, STOP, RM = Action(Do.PREPARE), Action(Do.START), Action(Do.STOP), Action(Do.REMOVE)
ADOPTED = "adopted after a restart"
NOT_STARTED = report(SHUTDOWN, "shut down before it started")
REMOVED = report(SHUTDOWN, "removed")


def v(desired, reported, container=None, health=False, failed=None):
    return View(desired=desired, reported=reported, container=container, checks_health=health, failed=failed)


ROWS = {
    # the walk to RUNNING
    "new: accepted": (v(RUNNING, NEW), report(ACCEPTED, "accepted")),
    "accepted: preparing": (v(RUNNING, ACCEPTED), report(PREPARING, "preparing")),
    "preparing: prepare": (v(RUNNING, PREPARING), PREPARE),
    "prepared: ready": (v(RUNNING, PREPARING, CREATED), report(READY, "prepared")),
    "ready, running wanted: starting": (v(RUNNING, READY, CREATED), report(STARTING, "starting")),
    "starting: start": (v(RUNNING, STARTING, CREATED), START),
    "started: running": (v(RUNNING, STARTING, UP), report(RUNNING, "started")),
    "running: wait": (v(RUNNING, RUNNING, UP), WAIT),
    "paused counts as running": (v(RUNNING, RUNNING, PAUSED), WAIT),
    "exit 0: complete": (v(RUNNING, RUNNING, EXITED_0), report(COMPLETE, "finished")),
    "exit 3: failed": (v(RUNNING, RUNNING, EXITED_3), report(FAILED, err="task: non-zero exit (3)", exit_code=3)),
    "oom: failed": (v(RUNNING, RUNNING, OOM),
                    report(FAILED, err="task: killed by the kernel: out of memory", exit_code=137)),
    "complete: done": (v(RUNNING, COMPLETE, EXITED_0), DONE),
    "failed: done": (v(RUNNING, FAILED, EXITED_3), DONE),
    "rejected: done": (v(RUNNING, REJECTED), DONE),
    "container gone after ready: failed": (v(RUNNING, READY), report(FAILED, err="task: the container is gone")),
    "container gone while running: failed": (v(RUNNING, RUNNING), report(FAILED, err="task: the container is gone")),
    # desired READY: never past it
    "desired ready, prepared: ready": (v(READY, PREPARING, CREATED), report(READY, "prepared")),
    "desired ready, ready: wait": (v(READY, READY, CREATED), WAIT),
    "desired ready, adopted running: wait": (v(READY, NEW, UP), WAIT),
    # healthchecks: STARTING until healthy; unhealthy fails
    "health starting: held at starting": (v(RUNNING, STARTING, UP_STARTING, health=True), WAIT),
    "health not yet known: held": (v(RUNNING, STARTING, UP, health=True), WAIT),
    "healthy: running": (v(RUNNING, STARTING, UP_HEALTHY, health=True), report(RUNNING, "started; healthy")),
    "healthy and running: wait": (v(RUNNING, RUNNING, UP_HEALTHY, health=True), WAIT),
    "unhealthy while starting: stop": (v(RUNNING, STARTING, UP_UNHEALTHY, health=True), STOP),
    "unhealthy while running: stop": (v(RUNNING, RUNNING, UP_UNHEALTHY, health=True), STOP),
    "stopped for unhealthy: failed": (v(RUNNING, RUNNING, STOPPED_UNHEALTHY, health=True),
                                      report(FAILED, err="task: unhealthy container")),
    # adoption after a coveyd restart: nothing reported yet by this controller
    "adopt running": (v(RUNNING, NEW, UP), report(RUNNING, ADOPTED)),
    "adopt running, health starting": (v(RUNNING, NEW, UP_STARTING, health=True),
                                       report(STARTING, ADOPTED + "; waiting for the healthcheck to pass")),
    "adopt running, healthy": (v(RUNNING, NEW, UP_HEALTHY, health=True), report(RUNNING, ADOPTED)),
    "adopt running, unhealthy": (v(RUNNING, NEW, UP_UNHEALTHY, health=True), STOP),
    "adopt exited 0": (v(RUNNING, NEW, EXITED_0), report(COMPLETE, "finished")),
    "adopt exited 3": (v(RUNNING, NEW, EXITED_3), report(FAILED, err="task: non-zero exit (3)", exit_code=3)),
    "adopt created: ready, then started": (v(RUNNING, NEW, CREATED), report(READY, "prepared")),
    "adopt created, desired ready: ready": (v(READY, NEW, CREATED), report(READY, "prepared")),
    "adopt created, desired shutdown: remove": (v(SHUTDOWN, NEW, CREATED), RM),
    "adopt created, desired remove: remove": (v(REMOVE, NEW, CREATED), RM),
    "adopt missing: start afresh": (v(RUNNING, NEW), report(ACCEPTED, "accepted")),
    "adopt running, desired shutdown: stop": (v(SHUTDOWN, NEW, UP), STOP),
    "adopt exited, desired shutdown: shut down": (v(SHUTDOWN, NEW, EXITED_3), report(SHUTDOWN, "shut down")),
    # desired SHUTDOWN at every stage
    "shutdown before accepting": (v(SHUTDOWN, NEW), NOT_STARTED),
    "shutdown when accepted": (v(SHUTDOWN, ACCEPTED), NOT_STARTED),
    "shutdown before prepare": (v(SHUTDOWN, PREPARING), NOT_STARTED),
    "shutdown during prepare: remove": (v(SHUTDOWN, PREPARING, CREATED), RM),
    "shutdown when ready: remove": (v(SHUTDOWN, READY, CREATED), RM),
    "shutdown when ready, removed": (v(SHUTDOWN, READY), NOT_STARTED),
    "shutdown before start: remove": (v(SHUTDOWN, STARTING, CREATED), RM),
    "shutdown after start: stop": (v(SHUTDOWN, STARTING, UP), STOP),
    "shutdown while health starting: stop": (v(SHUTDOWN, STARTING, UP_STARTING, health=True), STOP),
    "shutdown while running: stop": (v(SHUTDOWN, RUNNING, UP), STOP),
    "shutdown, stopped: shut down": (v(SHUTDOWN, RUNNING, EXITED_TERM), report(SHUTDOWN, "shut down")),
    "shutdown, container gone": (v(SHUTDOWN, RUNNING), report(SHUTDOWN, "shut down")),
    "shutdown after complete: done": (v(SHUTDOWN, COMPLETE, EXITED_0), DONE),
    "shutdown after failed: done": (v(SHUTDOWN, FAILED, EXITED_3), DONE),
    "shutdown after shut down: done": (v(SHUTDOWN, SHUTDOWN, EXITED_TERM), DONE),
    # desired REMOVE (or unassigned) at every stage
    "remove before accepting": (v(REMOVE, NEW), REMOVED),
    "remove when accepted": (v(REMOVE, ACCEPTED), REMOVED),
    "remove when prepared": (v(REMOVE, PREPARING, CREATED), RM),
    "remove when ready": (v(REMOVE, READY, CREATED), RM),
    "remove while running": (v(REMOVE, RUNNING, UP), RM),
    "remove while health starting": (v(REMOVE, STARTING, UP_STARTING, health=True), RM),
    "remove, removed": (v(REMOVE, RUNNING), REMOVED),
    "remove after complete": (v(REMOVE, COMPLETE, EXITED_0), RM),
    "remove after complete, removed: done": (v(REMOVE, COMPLETE), DONE),
    "remove after failed": (v(REMOVE, FAILED, EXITED_3), RM),
    "remove after shut down, removed: done": (v(REMOVE, SHUTDOWN), DONE),
    # an executor step that failed
    "prepare failed: rejected": (v(RUNNING, PREPARING, failed=Failure(Do.PREPARE, "no such image")),
                                 report(REJECTED, "rejected by the executor", err="no such image")),
    "start failed: rejected": (v(RUNNING, STARTING, CREATED, failed=Failure(Do.START, "exec format error")),
                               report(REJECTED, "rejected by the executor", err="exec format error")),
    "stop failed: failed": (v(SHUTDOWN, RUNNING, UP, failed=Failure(Do.STOP, "runc kill: timeout")),
                            report(FAILED, err="task: stop failed: runc kill: timeout")),
    "stop of unhealthy failed: failed": (v(RUNNING, RUNNING, UP_UNHEALTHY, True, Failure(Do.STOP, "x")),
                                         report(FAILED, err="task: stop failed: x")),
    "wait failed: failed": (v(RUNNING, RUNNING, UP, failed=Failure(Do.WAIT, "no such container: t1")),
                            report(FAILED, err="task: wait failed: no such container: t1")),
    "remove failed: removed, with the error": (v(REMOVE, RUNNING, UP, failed=Failure(Do.REMOVE, "busy")),
                                               report(SHUTDOWN, "removed", err="busy")),
    "remove at shutdown failed": (v(SHUTDOWN, READY, CREATED, failed=Failure(Do.REMOVE, "busy")),
                                  report(SHUTDOWN, "removed", err="busy")),
    "failure reported: done": (v(RUNNING, REJECTED, failed=Failure(Do.PREPARE, "no such image")), DONE),
    "remove failed after complete: done": (v(REMOVE, COMPLETE, EXITED_0, failed=Failure(Do.REMOVE, "busy")), DONE),
}


@pytest.mark.parametrize("view, action", ROWS.values(), ids=ROWS.keys())
def test_step(view, action):
    assert step(view) == action


# ---- rules that hold for every view -----------------------------------------------------
STATES = [NEW, ACCEPTED, PREPARING, READY, STARTING, RUNNING, COMPLETE, SHUTDOWN, FAILED, REJECTED]
CONTAINERS = [None, CREATED, UP, PAUSED, UP_STARTING, UP_HEALTHY, UP_UNHEALTHY, EXITED_0, EXITED_3, OOM,
              STOPPED_UNHEALTHY]
FAILURES = [None, *(Failure(d, "boom") for d in (Do.PREPARE, Do.START, Do.STOP, Do.REMOVE, Do.WAIT))]
EVERY_VIEW = [v(d, r, c, h, f) for d, r, c, h, f in itertools.product(
    [READY, RUNNING, SHUTDOWN, REMOVE], STATES, CONTAINERS, [False, True], FAILURES)]


def _outcome(view: View, action: Action) -> View:
    """What the shell would observe after the action, when the executor does as asked."""
    c = view.container
    if action.do is Do.REPORT:
        return replace(view, reported=max(view.reported, action.state))
    if action.do is Do.PREPARE:
        return replace(view, container=CREATED)
    if action.do is Do.START:
        return replace(view, container=UP_STARTING if view.checks_health else UP)
    if action.do is Do.STOP:
        return replace(view, container=Container("exited", 143, health=c.health))
    assert action.do is Do.REMOVE
    return replace(view, container=None)


def test_every_report_moves_forward_and_never_past_the_desired_state():
    for view in EVERY_VIEW:
        action = step(view)
        if action.do is Do.REPORT:
            assert action.state > view.reported, view
            if action.state in (STARTING, RUNNING):
                assert RUNNING <= view.desired < SHUTDOWN, view
        if action.do in (Do.START, Do.STOP):
            assert view.container is not None, view


def test_from_every_view_a_few_steps_reach_a_wait_or_the_end():
    for view in EVERY_VIEW:
        walk(view)


def walk(view: View) -> list[Action]:
    """The actions from this view up to a wait or the end, the executor doing as asked."""
    actions = [step(view)]
    while actions[-1].do not in (Do.WAIT, Do.DONE):
        assert len(actions) < 10, f"no end in sight from {view}: {actions}"
        view = _outcome(view, actions[-1])
        actions.append(step(view))
    return actions


@pytest.mark.parametrize("desired, actions", [
    (RUNNING, [report(READY, "prepared"), report(STARTING, "starting"), START, report(RUNNING, "started"), WAIT]),
    (READY, [report(READY, "prepared"), WAIT]),
    (SHUTDOWN, [RM, NOT_STARTED, DONE]),
    (REMOVE, [RM, REMOVED, DONE])])
def test_a_created_container_adopted_after_a_restart(desired, actions):
    """The defect fixed here: a container created but not started before coveyd restarted
    was never started; now it is (or removed, if the managers no longer want it)."""
    assert walk(v(desired, NEW, CREATED)) == actions


def test_the_walk_from_new_to_running():
    assert walk(v(RUNNING, NEW)) == [
        report(ACCEPTED, "accepted"), report(PREPARING, "preparing"), PREPARE, report(READY, "prepared"),
        report(STARTING, "starting"), START, report(RUNNING, "started"), WAIT]
