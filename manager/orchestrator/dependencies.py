"""depends_on: a stack service's new tasks wait until the services it depends on are up.

A task of a service whose dependencies are not met is created with desired state READY: it
gets its addresses, is placed, and its node pulls the image and creates the container, but
does not start it (worker/lifecycle.py never starts a task wanted READY). Its explanation says
what it waits for (`service ps`). Once every dependency is met, the task is raised to RUNNING.
As in compose, only the start waits: a dependency that fails later stops nothing.

Conditions (proto ServiceDependency): STARTED, every wanted task of the dependency RUNNING;
HEALTHY, the same (an agent reports a task with a healthcheck RUNNING only once it is healthy);
COMPLETED_SUCCESSFULLY, its tasks all COMPLETE. A dependency that no longer exists holds
nothing. Everything is derived from the stored stacks, services and tasks: nothing to remember.
"""
from manager.state.actions import update
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from proto import store_pb2

Dependency = specs.ServiceDependency
WAITING = {Dependency.STARTED: "to run", Dependency.HEALTHY: "to be healthy",
           Dependency.COMPLETED_SUCCESSFULLY: "to complete"}


class DependencyGate:
    def __init__(self, stacks: list[pb.Stack], services: list[pb.Service], tasks: list[pb.Task]):
        self._dependencies: dict[str, list[specs.ServiceDependency]] = {}
        for stack in stacks:
            for dep in stack.spec.dependencies:
                self._dependencies.setdefault(dep.service, []).append(dep)
        self._services = {s.spec.name: s for s in services}
        self._tasks: dict[str, list[pb.Task]] = {}
        for task in tasks:
            self._tasks.setdefault(task.service_id, []).append(task)
        self._reasons: dict[str, str | None] = {}

    def reason(self, service_name: str) -> str | None:
        """Why the service's new tasks must wait, or None."""
        if service_name not in self._reasons:
            waits = [f"{dep.depends_on} {WAITING[dep.condition]}"
                     for dep in self._dependencies.get(service_name, ()) if not self._met(dep)]
            self._reasons[service_name] = "waiting for " + ", ".join(waits) if waits else None
        return self._reasons[service_name]

    def _met(self, dep: specs.ServiceDependency) -> bool:
        service = self._services.get(dep.depends_on)
        if service is None:
            return True
        tasks = self._tasks.get(service.id, [])
        if dep.condition == Dependency.COMPLETED_SUCCESSFULLY:
            mine = [t for t in tasks if t.spec_version == service.spec_version]
            return bool(mine) and all(t.status.state == pb.COMPLETE for t in mine)
        running = sum(1 for t in tasks if t.desired_state == pb.RUNNING and t.status.state == pb.RUNNING)
        live = sum(1 for t in tasks if t.desired_state <= pb.RUNNING and t.status.state < pb.COMPLETE)
        if service.spec.WhichOneof("mode") == "replicated":
            return running >= service.spec.replicated.replicas
        return live > 0 and running >= live

    def apply(self, actions: list[store_pb2.StoreAction], tasks: list[pb.Task]) -> list[store_pb2.StoreAction]:
        """The orchestrator's actions with new tasks of waiting services held at READY, and
        the held tasks whose services may now start raised to RUNNING (or told why they wait)."""
        touched = {a.task.id for a in actions if a.WhichOneof("object") == "task"}
        for action in actions:
            if action.kind == store_pb2.StoreAction.CREATE and action.WhichOneof("object") == "task":
                why = self.reason(action.task.service_name)
                if why is not None:
                    action.task.desired_state = pb.READY
                    action.task.explanation.text = why
        return actions + [a for t in tasks if t.id not in touched and (a := self._release(t)) is not None]

    def _release(self, task: pb.Task) -> store_pb2.StoreAction | None:
        if task.desired_state != pb.READY or task.status.state >= pb.COMPLETE:
            return None
        why = self.reason(task.service_name)
        # Before it is placed, the allocator and the scheduler write its explanation: the
        # reason is written back once they are done with it.
        if why is not None and (task.explanation.text == why or task.status.state < pb.ASSIGNED):
            return None
        changed = pb.Task()
        changed.CopyFrom(task)
        if why is None:
            changed.desired_state = pb.RUNNING
            changed.ClearField("explanation")
        else:
            changed.explanation.text = why
        return update(changed)
