"""The allocator's plan, pure: given the index of what is in use (manager/allocator/index.py),
the writes that give waiting tasks their addresses (NEW -> PENDING in the same write) and
give vip-mode services one VIP per network they use (and take back the others).

A task gets one address per network of its spec, in that order, or none at all: when a
network is full (or gone), it stays NEW and says why in its explanation, which
`covey service ps` shows. Tasks without networks pass straight through to PENDING.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from manager.allocator import ports
from manager.allocator.index import Allocations, node_key, service_key, task_key, wants_addresses
from manager.state.actions import update
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs
from proto import store_pb2

PENDING_MESSAGE = "pending task scheduling"
# Tasks given their addresses per pass: a pass runs on the event loop (about 35 us a task),
# so a service of 100,000 tasks is taken in passes of ~70 ms, each written at once.
TASKS_PER_PASS = 2000


@dataclass
class Plan:
    services: list[store_pb2.StoreAction] = field(default_factory=list)
    tasks: list[store_pb2.StoreAction] = field(default_factory=list)
    nodes: list[store_pb2.StoreAction] = field(default_factory=list)


def plan(index: Allocations, service_of: Callable[[str], pb.Service | None],
         task_of: Callable[[str], pb.Task | None], now_ns: int | None = None,
         limit: int = TASKS_PER_PASS, node_of: Callable[[str], pb.Node | None] = lambda _: None) -> Plan:
    """The writes for the services and tasks the index marks as to be looked at (read by ID
    with `service_of` and `task_of`), at most `limit` tasks moved on (the others wait for
    the next pass). Addresses handed out are held in the index at once."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    result = Plan()
    for service_id in sorted(index.services_to_check):
        service = service_of(service_id)
        if service is not None:
            changed = vips_of(index, service)
            if changed is not None:
                result.services.append(update(changed))
    for node_id in sorted(index.nodes_to_check):
        node = node_of(node_id)
        if node is not None and (changed_node := node_attachments(index, node)) is not None:
            result.nodes.append(update(changed_node))
    moved = 0
    for task_id in sorted(index.waiting, key=lambda i: _age(task_of(i))):
        task = task_of(task_id)
        if task is not None and wants_addresses(task):
            action = attach(index, task, now_ns, service_of(task.service_id))
            if action is not None:
                result.tasks.append(action)
                moved += action.task.status.state == pb.PENDING
        if moved >= limit:
            break
    return result


def _age(task: pb.Task | None) -> tuple:
    """Oldest first: when addresses are short, the tasks that waited longest get them."""
    return (task.meta.created_at_ns, task.id) if task is not None else (0, "")


def wanted_networks(spec: specs.ServiceSpec) -> list[str]:
    """The network IDs a service's spec attaches to, in order, each once."""
    return list(dict.fromkeys(c.target for c in spec.task.networks))


def vips_of(index: Allocations, service: pb.Service) -> pb.Service | None:
    """The service with one VIP per network it uses (vip mode; none in dnsrr mode), and one on
    the ingress network when it publishes a port in ingress mode, keeping the ones it has;
    None when nothing changes. A full network leaves that VIP out for now."""
    dnsrr = service.spec.endpoint.mode == specs.EndpointSpec.DNSRR
    wanted = [] if dnsrr else [n for n in wanted_networks(service.spec) if n in index.networks]
    if not dnsrr and index.ingress_id is not None and ports.publishes_ingress(service.spec.endpoint.ports):
        wanted.append(index.ingress_id)
    current = {vip.network_id: vip.addr for vip in service.virtual_ips}
    vips = []
    for network_id in wanted:
        addr = current.get(network_id)
        if addr is None:
            taken = index.take(service_key(service.id), network_id)
            if taken is None:
                continue  # looked at again on the next pass, as it stays to be checked
            addr = index.ranges[network_id].cidr(taken)
        vips.append(pb.VirtualIP(network_id=network_id, addr=addr))
    if vips == list(service.virtual_ips):
        if len(vips) == len(wanted):
            index.services_to_check.discard(service.id)
        return None
    changed = pb.Service()
    changed.CopyFrom(service)
    del changed.virtual_ips[:]
    changed.virtual_ips.extend(vips)
    return changed


def task_networks(index: Allocations, task: pb.Task,
                  service: pb.Service | None) -> list[specs.NetworkAttachmentConfig] | str:
    """The networks a task gets addresses on: its spec's, then the ingress network when its
    service publishes a port (in either mode: the node's ingress sandbox reaches a host-mode
    task that way too); or why it cannot have them."""
    configs = list(task.spec.networks)
    if service is not None and ports.publishes(service.spec):
        if index.ingress_id is None:
            return ("the ingress network is missing, and the service publishes ports: "
                    "create one with `covey network create --ingress --driver overlay NAME`")
        configs.append(specs.NetworkAttachmentConfig(target=index.ingress_id))
    return configs


def attach(index: Allocations, task: pb.Task, now_ns: int,
           service: pb.Service | None = None) -> store_pb2.StoreAction | None:
    """The task with its addresses and PENDING; or, when one cannot be had, the task still
    NEW with the reason (None when that reason is already written)."""
    key = task_key(task.id)
    configs = task_networks(index, task, service)
    if isinstance(configs, str):
        return _waiting(task, configs)
    attachments, problem = [], None
    for config in configs:
        network = index.networks.get(config.target)
        if network is None:
            problem = f"network {config.target} not found"
            break
        addr, problem = _address(index, key, network, config)
        if problem is not None:
            break
        attachments.append(pb.NetworkAttachment(network_id=network.id, addr=addr, aliases=config.aliases))
    if problem is not None:
        index.release(key)
        return _waiting(task, problem)
    ready = pb.Task()
    ready.CopyFrom(task)
    del ready.networks[:]
    ready.networks.extend(attachments)
    ready.ClearField("explanation")
    ready.status.CopyFrom(pb.TaskStatus(state=pb.PENDING, timestamp_ns=now_ns, message=PENDING_MESSAGE))
    index.waiting.discard(task.id)
    return update(ready)


def _address(index: Allocations, key: str, network: pb.Network,
             config: specs.NetworkAttachmentConfig) -> tuple[str, str | None]:
    """The task's address on the network (the one its spec asks for, if it does), or why not."""
    if config.addresses:
        given = config.addresses[0].split("/")[0]
        return f"{given}/{index.ranges[network.id].subnet.prefixlen}", index.take_given(key, network.id, given)
    taken = index.take(key, network.id)
    if taken is None:
        return "", f"no free address on network {network.spec.name} ({network.subnet} is full)"
    return index.ranges[network.id].cidr(taken), None


def node_attachments(index: Allocations, node: pb.Node) -> pb.Node | None:
    """The node with its address on the ingress network (its ingress sandbox's, the source
    of the connections the mesh forwards) and none on any other; None when the network is
    full (it stays to be checked) or nothing changes."""
    kept = [a for a in node.attachments if a.network_id == index.ingress_id]
    if index.ingress_id is not None and not kept:
        taken = index.take(node_key(node.id), index.ingress_id)
        if taken is None:
            return None
        kept.append(pb.NetworkAttachment(network_id=index.ingress_id, addr=index.ranges[index.ingress_id].cidr(taken)))
    index.nodes_to_check.discard(node.id)
    if kept == list(node.attachments):
        return None
    changed = pb.Node()
    changed.CopyFrom(node)
    del changed.attachments[:]
    changed.attachments.extend(kept)
    return changed


def _waiting(task: pb.Task, problem: str) -> store_pb2.StoreAction | None:
    if task.explanation.text == problem and task.status.err == problem:
        return None
    waiting = pb.Task()
    waiting.CopyFrom(task)
    waiting.explanation.CopyFrom(pb.PlacementExplanation(text=problem))
    waiting.status.err = problem
    return update(waiting)


def plan_from_store(networks: Iterable[pb.Network], services: Iterable[pb.Service],
                    tasks: Iterable[pb.Task], now_ns: int | None = None,
                    nodes: Iterable[pb.Node] = ()) -> tuple[Plan, Allocations]:
    """One pass from scratch (what a new leader does first): the plan and the index after it."""
    services, tasks, nodes = list(services), list(tasks), list(nodes)
    index = Allocations.build(networks, services, tasks, nodes)
    return plan(index, {s.id: s for s in services}.get, {t.id: t for t in tasks}.get, now_ns,
                node_of={n.id: n for n in nodes}.get), index
