"""A task's lifecycle on the agent, as a pure step function (docs/design.md: "Layout", "Control plane").

`step(view)` looks at what the controller knows (the desired state, the last state it
reported, its container, the last executor failure) and says what to do next: report a
state, prepare, start, stop or remove the container, wait for something to change, or
nothing more. No I/O here: worker/tasks.py executes the actions and feeds the outcome back.

Two rules hold for every action it returns (tests/unit/worker/test_lifecycle.py checks them):
a report only ever moves the state forward, and STARTING or RUNNING is reported only when
the managers want the task running.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from proto import objects_pb2 as pb


class Do(Enum):
    REPORT = "report"
    PREPARE = "prepare"     # pull the image and create the container (not started)
    START = "start"
    STOP = "stop"           # the stop signal, SIGKILL after the grace period
    REMOVE = "remove"       # forced: kills a running container
    WAIT = "wait"           # until the desired state, the container or its health changes
    DONE = "done"


@dataclass(frozen=True)
class Action:
    do: Do
    state: pb.TaskState = pb.NEW  # REPORT: the state, its message, error and exit code
    message: str = ""
    err: str = ""
    exit_code: int = 0


@dataclass(frozen=True)
class Container:
    """The task's container as last observed."""
    status: str             # created | running | paused | exited | dead
    exit_code: int = 0
    oom_killed: bool = False
    health: str = ""        # starting | healthy | unhealthy; "" without a healthcheck


@dataclass(frozen=True)
class Failure:
    """An executor action that raised: which one, and the executor's message."""
    do: Do
    message: str


@dataclass(frozen=True)
class View:
    desired: int                        # the task's desired state (REMOVE once unassigned)
    reported: int = 0                   # the last state this controller reported, 0 for none
    container: Container | None = None  # None: not made yet, or gone
    checks_health: bool = False
    failed: Failure | None = None


WAIT, DONE = Action(Do.WAIT), Action(Do.DONE)
ADOPTED = "adopted after a restart"
RUNNING_STATUSES = ("running", "paused")


def report(state: pb.TaskState, message: str = "", err: str = "", exit_code: int = 0) -> Action:
    return Action(Do.REPORT, state, message, err, exit_code)


def step(v: View) -> Action:
    if v.failed:
        return DONE if v.reported >= pb.COMPLETE else _failure(v.failed)
    if v.desired >= pb.REMOVE:
        return _remove(v)
    if v.reported >= pb.COMPLETE:
        return DONE                     # final: nothing changes it but removal
    if v.desired >= pb.SHUTDOWN:
        return _shut_down(v)
    c = v.container
    if c is None:
        return _prepare(v)
    if c.status == "created":
        return _start(v)
    if c.status in RUNNING_STATUSES:
        return _supervise(v, c)
    return _exited(c)


def _failure(f: Failure) -> Action:
    """Before the container ran the executor rejects the task (as Docker); after, it failed."""
    if f.do in (Do.PREPARE, Do.START):
        return report(pb.REJECTED, "rejected by the executor", err=f.message)
    if f.do is Do.REMOVE:
        return report(pb.SHUTDOWN, "removed", err=f.message)
    return report(pb.FAILED, err=f"task: {f.do.value} failed: {f.message}")


def _remove(v: View) -> Action:
    if v.container is not None:
        return Action(Do.REMOVE)
    # final, so the managers' reaper can delete the task; a final state stands
    return report(pb.SHUTDOWN, "removed") if v.reported < pb.COMPLETE else DONE


def _shut_down(v: View) -> Action:
    c = v.container
    if c is None:
        return report(pb.SHUTDOWN, "shut down before it started" if v.reported < pb.RUNNING else "shut down")
    if c.status == "created":
        return Action(Do.REMOVE)        # never started: no logs or exit to keep
    if c.status in RUNNING_STATUSES:
        return Action(Do.STOP)
    return report(pb.SHUTDOWN, "shut down")


def _prepare(v: View) -> Action:
    if v.reported < pb.ACCEPTED:
        return report(pb.ACCEPTED, "accepted")
    if v.reported < pb.PREPARING:
        return report(pb.PREPARING, "preparing")
    if v.reported < pb.READY:
        return Action(Do.PREPARE)
    return report(pb.FAILED, err="task: the container is gone")


def _start(v: View) -> Action:
    """A created container, ours or found after a restart: started once RUNNING is wanted."""
    if v.reported < pb.READY:
        return report(pb.READY, "prepared")
    if v.desired < pb.RUNNING:
        return WAIT
    if v.reported < pb.STARTING:
        return report(pb.STARTING, "starting")
    return Action(Do.START)


def _supervise(v: View, c: Container) -> Action:
    if c.health == "unhealthy":
        return Action(Do.STOP)          # then FAILED, by _exited
    if v.desired < pb.RUNNING:
        return WAIT                     # adopted while the managers want it READY only
    adopted = v.reported < pb.STARTING  # we report STARTING before every start of ours
    if v.checks_health and c.health != "healthy":   # as Docker: RUNNING once healthy
        if v.reported < pb.STARTING:
            return report(pb.STARTING, ADOPTED + "; waiting for the healthcheck to pass")
        return WAIT
    if v.reported < pb.RUNNING:
        return report(pb.RUNNING, ADOPTED if adopted else "started; healthy" if v.checks_health else "started")
    return WAIT


def _exited(c: Container) -> Action:
    if c.health == "unhealthy":
        return report(pb.FAILED, err="task: unhealthy container")
    if c.oom_killed:
        return report(pb.FAILED, err="task: killed by the kernel: out of memory", exit_code=c.exit_code)
    if c.exit_code:
        return report(pb.FAILED, err=f"task: non-zero exit ({c.exit_code})", exit_code=c.exit_code)
    return report(pb.COMPLETE, "finished")
