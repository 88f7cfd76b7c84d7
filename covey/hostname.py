"""A task's names, as Docker Swarm spells them: its container's hostname (rendered from the
spec's template) and its task name. One function for the managers (DNS names in the network
views) and the worker (the container's hostname), so that both always agree; plain values in,
so that neither needs the other.

Templates take Go's spelling of Docker's placeholders, e.g. "{{.Service.Name}}-{{.Task.Slot}}":
{{.Service.Name}}, {{.Service.ID}}, {{.Task.Slot}}, {{.Task.ID}}, {{.Task.Name}}, {{.Node.ID}},
{{.Node.Hostname}}. An empty template means the container's default hostname: Docker uses the
first 12 characters of the container's ID; a Covey container's ID is its task's, so that is the
first 12 characters of the task ID.
"""
import re
from dataclasses import dataclass

DEFAULT_HOSTNAME_LENGTH = 12  # Docker's short container ID
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


@dataclass(frozen=True)
class TaskFacts:
    """What a task's names are made of. `slot` is 0 for a global service's task."""
    service_name: str
    service_id: str
    slot: int
    task_id: str
    node_id: str
    node_hostname: str


def task_name(facts: TaskFacts) -> str:
    """<service>.<slot>.<task id>, the node ID in place of the slot for a global service's task."""
    return f"{facts.service_name}.{facts.slot or facts.node_id}.{facts.task_id}"


def render_hostname(template: str, facts: TaskFacts) -> str:
    """The hostname of the task's container; ValueError naming an unknown placeholder."""
    if not template:
        return facts.task_id[:DEFAULT_HOSTNAME_LENGTH]
    values = {
        ".Service.Name": facts.service_name,
        ".Service.ID": facts.service_id,
        ".Task.Slot": str(facts.slot or facts.node_id),  # as swarmkit: the node ID when there is no slot
        ".Task.ID": facts.task_id,
        ".Task.Name": task_name(facts),
        ".Node.ID": facts.node_id,
        ".Node.Hostname": facts.node_hostname,
    }

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"hostname template {template!r}: unknown placeholder {{{{{name}}}}} "
                             f"(known: {', '.join('{{' + k + '}}' for k in values)})")
        return values[name]

    return _PLACEHOLDER.sub(value, template)
