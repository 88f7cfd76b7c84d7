"""Making tasks and changing what they are told to do: shared by the orchestrator and the updater."""
import time

from covey.ids import new_id
from manager.state.actions import update
from proto import objects_pb2 as pb
from proto import store_pb2


def new_task(service: pb.Service, slot: int = 0, node_id: str = "") -> pb.Task:
    """A task NEW: the allocator (manager/allocator) gives it its addresses and makes it PENDING."""
    now = time.time_ns()
    return pb.Task(id=new_id(), meta=pb.Meta(created_at_ns=now, updated_at_ns=now),
                   service_id=service.id, service_name=service.spec.name, slot=slot, node_id=node_id,
                   spec=service.spec.task, spec_version=service.spec_version, desired_state=pb.RUNNING,
                   status=pb.TaskStatus(state=pb.NEW, timestamp_ns=now, message="created"))


def set_desired(task: pb.Task, state: pb.TaskState) -> store_pb2.StoreAction:
    changed = pb.Task()
    changed.CopyFrom(task)
    changed.desired_state = state
    changed.meta.updated_at_ns = time.time_ns()
    return update(changed)
