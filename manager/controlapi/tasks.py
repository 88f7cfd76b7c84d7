"""The control API for tasks: what `covey service ps` lists."""
from manager.state import store as st
from manager.state.queries import find_service
from proto import control_pb2


class TaskAPI:
    def __init__(self, store: st.Store):
        self._store = store

    async def list(self, request: control_pb2.ListTasksRequest) -> control_pb2.ListTasksResponse:
        tasks = self._store.tasks.list()
        if request.service:
            service_id = find_service(self._store, request.service).id
            tasks = [t for t in tasks if t.service_id == service_id]
        tasks.sort(key=lambda t: (t.service_name, t.slot, t.node_id, -t.meta.created_at_ns))
        return control_pb2.ListTasksResponse(tasks=tasks)
