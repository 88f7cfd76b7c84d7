"""Jobs (Docker's replicated-job and global-job): services whose tasks run to completion.

- replicated job: `total_completions` slots (1..N), each done once a task of the current spec
  version completes; at most `max_concurrent` run at once, the lowest pending slots first;
- global job: one completion per eligible node, nodes that join later included;
- a completed task is never restarted (its desired state becomes COMPLETE, which also frees its
  addresses); a failed one is replaced per the restart policy, whose default for jobs is
  on-failure (as Docker);
- an update (any spec change, `--force` included) raises spec_version: the job runs again from
  scratch, and the tasks of older versions that still run are shut down.
Tasks are created wanting RUNNING (what the agent starts); nothing here touches a node.
"""
from collections.abc import Callable

from manager.orchestrator.tasks import new_task, set_desired
from manager.state.actions import create
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from proto import store_pb2

JOB_MODES = ("replicated_job", "global_job")
# (service, the task, the tasks of its slot, now) -> is a restart due now
RestartDue = Callable[[pb.Service, pb.Task, list[pb.Task], int], bool]


def is_job(spec: specs.ServiceSpec) -> bool:
    return spec.WhichOneof("mode") in JOB_MODES


def plan(service: pb.Service, tasks: list[pb.Task], eligible_nodes: list[str], now_ns: int,
         restart_due: RestartDue) -> list[store_pb2.StoreAction]:
    """The writes for one job service. `eligible_nodes`: where a global job runs."""
    current = service.spec_version
    actions = [set_desired(t, pb.SHUTDOWN) for t in tasks
               if t.spec_version != current and t.desired_state <= pb.RUNNING and t.status.state < pb.COMPLETE]
    if service.spec.WhichOneof("mode") == "replicated_job":
        job = service.spec.replicated_job
        keys: list = list(range(1, job.total_completions + 1))
        limit = job.max_concurrent or job.total_completions

        def key(t: pb.Task):
            return t.slot

        def make(k) -> pb.Task:
            return new_task(service, slot=k)
    else:
        keys, limit = sorted(eligible_nodes), len(eligible_nodes)

        def key(t: pb.Task):
            return t.node_id

        def make(k) -> pb.Task:
            return new_task(service, node_id=k)
    by_key: dict = {}
    for task in tasks:
        if task.spec_version == current:
            by_key.setdefault(key(task), []).append(task)
    running, waiting = 0, []
    for k in keys:
        state, more = _slot(service, by_key.get(k, []), now_ns, restart_due)
        actions += more
        running += state == "running"
        if state == "waiting":
            waiting.append(k)
    actions += [create(make(k)) for k in waiting[:max(0, limit - running)]]
    return actions


def _slot(service: pb.Service, tasks: list[pb.Task], now_ns: int,
          restart_due: RestartDue) -> tuple[str, list[store_pb2.StoreAction]]:
    """What a slot (or node) of the job's current run is: done, running, waiting for a new task,
    or held (a failure not to retry, or not yet); and the writes that settle its tasks."""
    done = [t for t in tasks if t.status.state == pb.COMPLETE]
    if done:  # finished: it stays so; a completed task is no longer wanted running
        return "done", [set_desired(t, pb.COMPLETE) for t in done if t.desired_state < pb.COMPLETE]
    live = sorted((t for t in tasks if t.desired_state <= pb.RUNNING), key=lambda t: -t.meta.created_at_ns)
    if not live:
        return "waiting", []
    task = live[0]
    if task.status.state < pb.COMPLETE:
        return "running", []
    if restart_due(service, task, tasks, now_ns):
        return "waiting", [set_desired(task, pb.SHUTDOWN)]  # history
    return "held", []
