"""Published ports, pure (docs/design.md, "Ingress routing mesh"): the checks a spec's ports
must pass, the cluster-wide allocation of ingress ports (Service.ports), and the per-task
choice of host-mode ports (Task.host_ports). No store, no I/O: everything is passed in.

An ingress port (protocol + number) belongs to one service in the whole swarm: the mesh answers
it on every node. A host-mode port with a number may be published by several services (the
scheduler keeps their tasks on different nodes) but never on a number an ingress port holds,
which the mesh would capture first. A port published as 0 is chosen from AUTO_RANGE: once per
service in ingress mode, once per task (free on its node) in host mode.
"""
from __future__ import annotations

from collections.abc import Iterable

from covey.errors import InvalidArgument
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

AUTO_FIRST, AUTO_LAST = 30000, 32767   # Docker's range for published ports chosen by the swarm
PORT_MAX = 65535
INGRESS, HOST = specs.PortConfig.INGRESS, specs.PortConfig.HOST
CLIENT_IP_LABEL = "covey.ingress.client-ip"   # "preserve": the backend sees the client's address
LABEL_PREFIX = "covey.ingress."               # service labels the data plane reads

Port = tuple[int, str]   # (published port, "tcp" | "udp" | "sctp"), as the scheduler keys them


def key(port: specs.PortConfig) -> Port:
    return port.published_port, specs.PortConfig.Protocol.Name(port.protocol).lower()


def text(port: specs.PortConfig) -> str:
    number, protocol = key(port)
    return f"{number}/{protocol}"


def validate(spec: specs.ServiceSpec) -> None:
    """InvalidArgument naming the first bad port of the spec: out of range, published twice,
    or ingress-published by a dnsrr service (the mesh balances over a VIP)."""
    seen: dict[Port, specs.PortConfig] = {}
    dnsrr = spec.endpoint.mode == specs.EndpointSpec.DNSRR
    for port in spec.endpoint.ports:
        if not 1 <= port.target_port <= PORT_MAX:
            raise InvalidArgument(f"service {spec.name}: invalid target port {port.target_port}: "
                                  f"from 1 to {PORT_MAX}")
        if port.published_port > PORT_MAX:
            raise InvalidArgument(f"service {spec.name}: invalid published port {port.published_port}: "
                                  f"from 1 to {PORT_MAX} (0: chosen from {AUTO_FIRST}-{AUTO_LAST})")
        if port.protocol not in specs.PortConfig.Protocol.values():
            raise InvalidArgument(f"service {spec.name}: unknown protocol {port.protocol} for port "
                                  f"{port.published_port}")
        if dnsrr and port.publish_mode == INGRESS:
            raise InvalidArgument(f"service {spec.name}: port {text(port)} is published in ingress mode, "
                                  "which dnsrr endpoint mode cannot serve: publish it with mode=host")
        if port.published_port:
            if key(port) in seen:
                raise InvalidArgument(f"service {spec.name}: port {text(port)} is published more than once")
            seen[key(port)] = port


def publishes(spec: specs.ServiceSpec) -> bool:
    """Whether the service's tasks join the ingress network: any published port, in either
    mode (a host-mode task is reached through the node's ingress sandbox too)."""
    return len(spec.endpoint.ports) > 0


def publishes_ingress(ports: Iterable[specs.PortConfig]) -> bool:
    return any(p.publish_mode == INGRESS for p in ports)


def holders(services: Iterable[pb.Service], except_id: str = "") -> dict[Port, tuple[str, int]]:
    """(port, protocol) -> (service name, mode) of every published number other services hold:
    all their ingress ports, and their host-mode ports with a number (an ingress one wins)."""
    held: dict[Port, tuple[str, int]] = {}
    for service in services:
        if service.id == except_id:
            continue
        for port in service.ports:
            if port.published_port and (port.publish_mode == INGRESS or key(port) not in held):
                held[key(port)] = (service.spec.name, port.publish_mode)
    return held


def allocate(spec: specs.ServiceSpec, service_id: str, services: Iterable[pb.Service]) -> list[specs.PortConfig]:
    """Service.ports for the spec: its ports, each ingress one with its number (an automatic
    one keeps the number the service had for the same target and protocol). InvalidArgument
    naming the service that holds a port it asks for."""
    validate(spec)
    services = list(services)
    held = holders(services, service_id)
    current = [p for s in services if s.id == service_id for p in s.ports]
    chosen = {key(p) for p in spec.endpoint.ports if p.published_port}
    allocated = []
    for wanted in spec.endpoint.ports:
        port = specs.PortConfig()
        port.CopyFrom(wanted)
        if port.published_port:
            _check_free(spec.name, port, held)
        elif port.publish_mode == INGRESS:
            port.published_port = _kept(port, current, held, chosen)  # first what it had...
            chosen.add(key(port))
        allocated.append(port)
    for port in allocated:
        if not port.published_port and port.publish_mode == INGRESS:
            port.published_port = _free(port, held, chosen)          # ...then new numbers
            chosen.add(key(port))
    return allocated


def _check_free(name: str, port: specs.PortConfig, held: dict[Port, tuple[str, int]]) -> None:
    holder = held.get(key(port))
    if holder is None or (holder[1] == HOST and port.publish_mode == HOST):
        return
    mode = "ingress" if holder[1] == INGRESS else "host"
    raise InvalidArgument(f"service {name}: port {text(port)} is already published by service "
                          f"{holder[0]} (in {mode} mode)")


def _kept(port: specs.PortConfig, current: list[specs.PortConfig], held: dict, chosen: set[Port]) -> int:
    """The number the service had for this target and protocol, if still free; else 0."""
    protocol = key(port)[1]
    for had in current:
        if (had.publish_mode == INGRESS and had.target_port == port.target_port and had.protocol == port.protocol
                and (had.published_port, protocol) not in held and (had.published_port, protocol) not in chosen):
            return had.published_port
    return 0


def _free(port: specs.PortConfig, held: dict, chosen: set[Port]) -> int:
    protocol = key(port)[1]
    for number in range(AUTO_FIRST, AUTO_LAST + 1):
        if (number, protocol) not in held and (number, protocol) not in chosen:
            return number
    raise InvalidArgument(f"no free port left in {AUTO_FIRST}-{AUTO_LAST} for {port.target_port}/{protocol}")


def ingress_numbers(services: Iterable[pb.Service]) -> set[Port]:
    """The ingress ports held in the swarm: a host-mode port chosen for a task avoids them."""
    return {key(p) for s in services for p in s.ports if p.publish_mode == INGRESS and p.published_port}


def host_ports(ports: Iterable[specs.PortConfig], used: set[Port], avoid: set[Port]) -> list[specs.PortConfig]:
    """Task.host_ports of a task placed on a node where `used` are taken: its service's
    host-mode ports, a port published as 0 given the first free number of AUTO_RANGE (or
    left 0 when none is: the node's kernel then picks). `used` is not changed."""
    taken = set(used) | avoid
    out = []
    for wanted in ports:
        if wanted.publish_mode != HOST:
            continue
        port = specs.PortConfig()
        port.CopyFrom(wanted)
        if not port.published_port:
            protocol = key(port)[1]
            port.published_port = next((n for n in range(AUTO_FIRST, AUTO_LAST + 1) if (n, protocol) not in taken), 0)
        taken.add(key(port))
        out.append(port)
    return out


def same_host_ports(task: pb.Task, ports: Iterable[specs.PortConfig]) -> bool:
    """Whether a placed task publishes the host-mode ports the spec asks for (a port asked as 0
    matches whatever number the task was given)."""
    wanted = [p for p in ports if p.publish_mode == HOST]
    if len(wanted) != len(task.host_ports):
        return False
    return all(w.target_port == h.target_port and w.protocol == h.protocol
               and w.published_port in (0, h.published_port) for w, h in zip(wanted, task.host_ports, strict=True))


def data_plane_labels(spec: specs.ServiceSpec) -> dict[str, str]:
    return {k: v for k, v in spec.labels.items() if k.startswith(LABEL_PREFIX)}


def endpoint_current(task: pb.Task, spec: specs.ServiceSpec) -> bool:
    """Whether a task made for an older spec publishes what `spec` asks: it is on the ingress
    network exactly when the spec publishes a port, and has the spec's host-mode ports. (Which
    ingress ports a service publishes is the mesh's business, not its tasks'.)"""
    targets = {c.target for c in task.spec.networks}
    on_ingress = any(a.network_id not in targets for a in task.networks)  # the one network not in its spec
    if task.status.state >= pb.PENDING and on_ingress != publishes(spec):
        return False
    return task.status.state < pb.ASSIGNED or same_host_ports(task, spec.endpoint.ports)
