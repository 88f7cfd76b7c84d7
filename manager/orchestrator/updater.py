"""Rolling updates and rollbacks, one step per orchestrator pass.

Each slot (replicated) or node (global) whose task runs an older spec version is replaced,
`parallelism` at a time (0: all at once), waiting `delay` after the previous ones became healthy. A new task is
healthy once it has run for the `monitor` period (default 5 s). Order:
- stop-first: the old task is told to shut down and the new one is created together;
- start-first: the new one is created beside the old, which is shut down once the new one
  runs, so the service never drops below its replica count.
When more new tasks fail than `max_failure_ratio` allows, the failure action applies: pause
(Docker's default), continue, or rollback (to the previous spec, with the rollback config).
A task whose spec already is the service's is kept, not restarted (a rollback leaves the
tasks it never reached alone). Everything it decides is derived from the tasks and the
service: nothing to remember.
"""
import time
from collections.abc import Callable
from typing import TypeVar

from manager.allocator import ports
from manager.orchestrator.tasks import set_desired
from manager.state.actions import create, update
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from proto import store_pb2

DEFAULT_MONITOR_NS = 5 * 10**9
US = pb.UpdateStatus
# state -> (what it is, where it ends, where it pauses)
ROLLING = {US.UPDATING: ("update", US.COMPLETED, US.PAUSED),
           US.ROLLBACK_STARTED: ("rollback", US.ROLLBACK_COMPLETED, US.ROLLBACK_PAUSED)}


# What a slot is keyed by: its number for a replicated service, its node ID for a global one.
Slot = TypeVar("Slot", int, str)


def step(service: pb.Service, slots: dict[Slot, list[pb.Task]], tasks: list[pb.Task], now_ns: int,
         make_task: Callable[[Slot], pb.Task]) -> list[store_pb2.StoreAction]:
    """The writes that move the service's update on by one step (none when there is nothing to do).

    `slots` holds the live tasks of each filled slot (a node, for global services), newest
    spec first; `make_task(slot)` makes the new task of a slot."""
    state = service.update_status.state
    if state not in ROLLING:
        return []
    what, done, paused = ROLLING[state]
    config = service.spec.rollback if state == US.ROLLBACK_STARTED else service.spec.update
    monitor = config.monitor_ns if config.HasField("monitor_ns") else DEFAULT_MONITOR_NS
    current = service.spec_version
    actions, adopted = _adopt_unchanged(service, slots)
    actions += _retire_replaced(slots, current)

    failed = [t for t in tasks if t.service_id == service.id and t.spec_version == current
              and t.status.state in (pb.FAILED, pb.REJECTED)]
    if failed and len(failed) > config.max_failure_ratio * max(1, len(slots)):
        reason = f"task {failed[0].id} failed: {failed[0].status.err or 'no reason given'}"
        if config.failure_action == specs.UpdateConfig.ROLLBACK and state == US.UPDATING:
            return actions + [_roll_back(service, f"update rolled back: {reason}", now_ns)]
        if config.failure_action != specs.UpdateConfig.CONTINUE:
            return actions + [_set_status(service, paused, f"{what} paused: {reason}", now_ns)]

    healthy_at = {slot: live[0].status.timestamp_ns + monitor for slot, live in slots.items()
                  if live[0].spec_version == current and live[0].status.state == pb.RUNNING}
    in_flight = [slot for slot, live in slots.items() if live[0].spec_version == current
                 and healthy_at.get(slot, now_ns + 1) > now_ns]
    outdated = sorted(slot for slot, live in slots.items() if live[0].spec_version < current and slot not in adopted)
    if not outdated and not in_flight:
        why = service.update_status.message if state == US.ROLLBACK_STARTED else ""
        return actions + [_set_status(service, done, f"{what} completed" + (f" ({why})" if why else ""), now_ns)]
    room = (config.parallelism or len(outdated)) - len(in_flight)
    # The delay runs from when the previous batch became healthy (the first batch: no wait).
    next_batch_at = max(healthy_at.values()) + config.delay_ns if healthy_at else 0
    if room <= 0 or not outdated or now_ns < next_batch_at:
        return actions
    for slot in outdated[:room]:
        if config.order == specs.UpdateConfig.STOP_FIRST:
            actions += [set_desired(t, pb.SHUTDOWN) for t in slots[slot]]
        actions.append(create(make_task(slot)))
    return actions


def _adopt_unchanged(service: pb.Service,
                     slots: dict[Slot, list[pb.Task]]) -> tuple[list[store_pb2.StoreAction], set[Slot]]:
    """A task whose spec is already the service's (a rollback to what it runs, or an update
    that changed no task setting) is kept: it takes the new version instead of a restart,
    and any other live task of its slot goes."""
    actions: list[store_pb2.StoreAction] = []
    adopted: set[Slot] = set()
    for slot, live in slots.items():
        if live[0].spec_version == service.spec_version:
            continue
        keep = next((t for t in live if t.spec == service.spec.task and t.status.state <= pb.RUNNING
                     and ports.endpoint_current(t, service.spec)), None)
        if keep is None:
            continue
        changed = pb.Task()
        changed.CopyFrom(keep)
        changed.spec_version = service.spec_version
        changed.meta.updated_at_ns = time.time_ns()
        actions.append(update(changed))
        actions += [set_desired(t, pb.SHUTDOWN) for t in live if t is not keep]
        adopted.add(slot)
    return actions, adopted


def _retire_replaced(slots: dict[Slot, list[pb.Task]], current: int) -> list[store_pb2.StoreAction]:
    """Start-first: an old task goes once the new task of its slot runs."""
    actions = []
    for live in slots.values():
        if live[0].spec_version == current and live[0].status.state == pb.RUNNING:
            actions += [set_desired(t, pb.SHUTDOWN) for t in live[1:]]
    return actions


def _set_status(service: pb.Service, state: pb.UpdateStatus.State, message: str, now_ns: int) -> store_pb2.StoreAction:
    changed = pb.Service()
    changed.CopyFrom(service)
    changed.update_status.state = state
    changed.update_status.message = message
    changed.update_status.completed_at_ns = now_ns
    changed.meta.updated_at_ns = time.time_ns()
    return update(changed)


def _roll_back(service: pb.Service, message: str, now_ns: int) -> store_pb2.StoreAction:
    changed = pb.Service()
    changed.CopyFrom(service)
    changed.spec.CopyFrom(service.previous_spec)
    changed.previous_spec.CopyFrom(service.spec)
    changed.spec_version += 1
    # Its own ports again (an automatic one keeps its number). Not checked against other
    # services: an automatic rollback cannot be refused (`service update --rollback` is).
    del changed.ports[:]
    changed.ports.extend(ports.allocate(changed.spec, changed.id, [service]))
    changed.update_status.CopyFrom(pb.UpdateStatus(state=US.ROLLBACK_STARTED, started_at_ns=now_ns,
                                                   message=message))
    changed.meta.updated_at_ns = time.time_ns()
    return update(changed)
