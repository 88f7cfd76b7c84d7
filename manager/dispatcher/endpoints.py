"""What the network views are made of, computed from stored objects alone (pure functions):
a task's endpoints, a node's own endpoint on the ingress network, a service's entries, and the
networks a task makes its node use."""
from collections.abc import Callable
from dataclasses import dataclass

from covey.hostname import TaskFacts, render_hostname, task_name
from manager.allocator import ports
from proto import dispatcher_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

STACK_LABEL = "com.docker.stack.namespace"


@dataclass(frozen=True)
class NodeFacts:
    """What a task's endpoints take from its node."""
    addr: str       # the underlay address (Node.status.addr)
    hostname: str   # for {{.Node.Hostname}}
    ready: bool = True  # a node Down (no heartbeat within the timeout) serves nothing


def node_facts(node: pb.Node) -> NodeFacts:
    return NodeFacts(node.status.addr, node.description.hostname, node.status.state == pb.NodeStatus.READY)


def node_endpoint(node: pb.Node, ingress_id: str | None) -> dispatcher_pb2.NetworkEndpoint | None:
    """The node's own endpoint on the ingress network (its ingress sandbox's address, by the
    allocator): what other nodes' meshes reach its host-mode tasks and return traffic through.
    Keyed in a view by the node's ID (removed_endpoints then holds that ID)."""
    addr = next((a.addr for a in node.attachments if a.network_id == ingress_id), None)
    if ingress_id is None or addr is None:
        return None
    return dispatcher_pb2.NetworkEndpoint(node_id=node.id, node_addr=node.status.addr, addr=addr,
                                          serving=node.status.state == pb.NodeStatus.READY,
                                          names=[node.description.hostname] if node.description.hostname else [])


def assigned(task: pb.Task) -> bool:
    """Placed on a node and past scheduling: its node has it in its assignments."""
    return bool(task.node_id) and task.status.state >= pb.ASSIGNED


def networks_used(task: pb.Task) -> frozenset[str]:
    """The networks the task makes its node use: its container may be attached until it finishes."""
    if not assigned(task) or task.status.state >= pb.COMPLETE:
        return frozenset()
    return frozenset(a.network_id for a in task.networks)


def is_endpoint(task: pb.Task) -> bool:
    """A task others may see on its networks: assigned and not finished. A task told to stop
    stays an endpoint (not serving) until its container has stopped, so that the connections
    it still holds keep their path (FDB and neighbour entries) while it drains."""
    return assigned(task) and task.status.state < pb.COMPLETE


def serving(task: pb.Task) -> bool:
    """Running and meant to: in DNS answers and VIP backends. A task with a healthcheck is
    RUNNING only once healthy."""
    return task.status.state == pb.RUNNING and task.desired_state == pb.RUNNING


def task_facts(task: pb.Task, node: NodeFacts | None) -> TaskFacts:
    return TaskFacts(service_name=task.service_name, service_id=task.service_id, slot=task.slot,
                     task_id=task.id, node_id=task.node_id, node_hostname=node.hostname if node else "")


def endpoint_names(task: pb.Task, node: NodeFacts | None) -> list[str]:
    """[its hostname, its task name]; a hostname template that cannot be rendered is left out."""
    facts = task_facts(task, node)
    try:
        hostname = render_hostname(task.spec.container.hostname, facts)
    except ValueError:
        return [task_name(facts)]  # refused at service creation; a stored one must not stop the views
    return [hostname, task_name(facts)]


def endpoints_of(task: pb.Task, node: NodeFacts | None) -> dict[str, dispatcher_pb2.NetworkEndpoint]:
    """Network ID -> the task's endpoint on it (none when it is no endpoint)."""
    if not is_endpoint(task):
        return {}
    names = endpoint_names(task, node)
    return {a.network_id: dispatcher_pb2.NetworkEndpoint(
        task_id=task.id, service_id=task.service_id, node_addr=node.addr if node else "", addr=a.addr,
        serving=serving(task) and node is not None and node.ready, names=names) for a in task.networks}


def network_targets(spec: specs.ServiceSpec) -> list[str]:
    """What the service's spec names as its networks (IDs or names)."""
    return [n.target for n in spec.task.networks]


def services_of(service: pb.Service, resolve: Callable[[str], str | None],
                ingress_id: str | None = None) -> dict[str, dispatcher_pb2.NetworkService]:
    """Network ID -> the service's entry on it; `resolve` maps a target (ID or name) to a
    network ID, or None while no such network exists. A service that publishes ports has
    an entry on the ingress network with its ports (allocated) and the labels the mesh reads."""
    spec = service.spec
    vips = {v.network_id: v.addr for v in service.virtual_ips}
    dnsrr = spec.endpoint.mode == specs.EndpointSpec.DNSRR
    out = {}
    for attachment in spec.task.networks:
        network_id = resolve(attachment.target)
        if network_id is None:
            continue
        out[network_id] = dispatcher_pb2.NetworkService(
            id=service.id, name=spec.name, stack=spec.labels.get(STACK_LABEL, ""),
            vip="" if dnsrr else vips.get(network_id, ""), aliases=list(attachment.aliases))
    if ingress_id is not None and ports.publishes(spec):
        out[ingress_id] = dispatcher_pb2.NetworkService(
            id=service.id, name=spec.name, stack=spec.labels.get(STACK_LABEL, ""),
            vip="" if dnsrr else vips.get(ingress_id, ""), ports=list(service.ports),
            labels=ports.data_plane_labels(spec))
    return out
