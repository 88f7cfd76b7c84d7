"""Registry credentials with the assignments: a task the node has yet to prepare (pull its
image for) goes with its service's `--with-registry-auth` credentials, in the message only.
A node never gets the credentials of a service it runs no task of, nor again once it pulled."""
from manager.state import store as st
from proto import dispatcher_pb2
from proto import objects_pb2 as pb


def needs_pull(task: pb.Task) -> bool:
    """Assigned and wanted running, but not yet prepared on its node."""
    return task.status.state < pb.READY and task.desired_state <= pb.RUNNING


def attach(store: st.Store, message: dispatcher_pb2.AssignmentsMessage | None) -> None:
    if message is None:
        return
    for task in message.updated:
        if not needs_pull(task):
            continue
        service = store.services.get(task.service_id)
        if service is not None and service.HasField("registry_auth"):
            message.registry_auths[task.id].CopyFrom(service.registry_auth)
