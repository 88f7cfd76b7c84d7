"""A task's hostname: the service's template rendered (Docker's placeholders), or the
first 12 characters of the task ID, as Docker's default is the short container ID."""
from proto import objects_pb2 as pb

DEFAULT_LENGTH = 12


def render_hostname(template: str, task: pb.Task, node_id: str, node_hostname: str) -> str:
    if not template:
        return task.id[:DEFAULT_LENGTH]
    values = {".Service.Name": task.service_name, ".Service.ID": task.service_id,
              ".Task.Slot": str(task.slot or task.node_id), ".Task.ID": task.id,
              ".Task.Name": f"{task.service_name}.{task.slot or task.node_id}.{task.id}",
              ".Node.ID": node_id, ".Node.Hostname": node_hostname}
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value).replace("{{ " + key + " }}", value)
    return template
