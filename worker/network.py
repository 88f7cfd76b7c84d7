"""The agent's network glue (docs/design.md, "Data plane"): the managers' network views
(sent with the assignments) and the tasks' attachments become the overlay's plain data.

Per network this node uses it keeps the view (endpoints and services, from Raft state),
and from it programs: the sandbox and its peers (every endpoint on another node), the
names the embedded DNS answers, and the VIP table of every local container on it. A
change to one network touches only that network's sandbox and local containers.
The kernel driver is synchronous: it runs on one thread of its own, in order.

The ingress network (docs/design.md, "Ingress routing mesh") is the one view every node
gets, with or without a local task: its sandbox stays while the view does, with this node's
own ingress address (its node endpoint) and the mesh's published ports (ingress mode: from
the services' ports and their serving endpoints; host mode: from the local tasks'
host_ports). A delta re-programs only the services it touched, unless a node endpoint
changed (every backend set may then change).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covey.hostname import TaskFacts, render_hostname, task_name
from overlay import model
from overlay.api import OverlayDriver, SandboxState
from overlay.driver import BRIDGE, encryption_support
from proto import dispatcher_pb2, specs_pb2
from proto import objects_pb2 as pb
from worker.executor import ExecutorError

log = logging.getLogger(__name__)

ENCRYPTED_OPT = "encrypted"
MTU_OPT = "com.docker.network.driver.mtu"
CLIENT_IP_LABEL, CLIENT_IP_PRESERVE = "covey.ingress.client-ip", "preserve"
INGRESS_ENDPOINT = "ingress-endpoint"   # Docker's name of a node's own endpoint on the ingress network
PROTOCOLS = {specs_pb2.PortConfig.TCP: model.TCP, specs_pb2.PortConfig.UDP: model.UDP}


class NetworkError(ExecutorError):
    """A task's networks cannot be set up on this node (the task fails with this message)."""


@dataclass
class NetworkState:
    """One network as the managers last described it."""
    network: pb.Network
    endpoints: dict[str, dispatcher_pb2.NetworkEndpoint] = field(default_factory=dict)   # task (node) ID ->
    services: dict[str, dispatcher_pb2.NetworkService] = field(default_factory=dict)     # service ID ->
    by_service: dict[str, set[str]] = field(default_factory=dict)   # service ID -> its endpoints' keys

    def __post_init__(self) -> None:
        for key, endpoint in self.endpoints.items():
            self.by_service.setdefault(endpoint.service_id, set()).add(key)

    def put(self, endpoint: dispatcher_pb2.NetworkEndpoint) -> None:
        key = endpoint_key(endpoint)
        self.drop(key)
        self.endpoints[key] = endpoint
        self.by_service.setdefault(endpoint.service_id, set()).add(key)

    def drop(self, key: str) -> dispatcher_pb2.NetworkEndpoint | None:
        old = self.endpoints.pop(key, None)
        if old is not None:
            keys = self.by_service.get(old.service_id, set())
            keys.discard(key)
            if not keys:
                self.by_service.pop(old.service_id, None)
        return old

    def service_endpoints(self, service_id: str) -> list[dispatcher_pb2.NetworkEndpoint]:
        return [self.endpoints[k] for k in self.by_service.get(service_id, ())]


@dataclass
class Delta:
    """What a view changed, for the mesh: all of it, or these services (and node endpoints)."""
    full: bool = False
    services: set[str] = field(default_factory=set)
    nodes: bool = False


@dataclass
class LocalEndpoint:
    """A local task's network namespace and what it is attached to."""
    task_id: str
    netns: str
    network_ids: list[str]
    stack: str
    name: str = ""                        # the task's name, "web.1.<task id>"
    addrs: tuple[str, ...] = ()           # CIDR on each network, in network_ids' order (eth0, eth1...)


@dataclass(frozen=True)
class AttachedContainer:
    """A local container on a network, as `covey network inspect` shows it on a node."""
    task_id: str
    name: str
    interface: str
    addr: str                             # CIDR
    mac: str


@dataclass(frozen=True)
class RemotePeer:
    """An endpoint on another node, as programmed in the sandbox (FDB and neighbour entries)."""
    name: str                             # the task's name, or the node ID of a node's ingress endpoint
    addr: str                             # IP
    mac: str
    host: str                             # underlay address of its node


@dataclass(frozen=True)
class NetworkSnapshot:
    """One network's data plane on this node, from what the glue holds (no kernel read);
    `driver` is what the kernel driver records as written, to cross-check."""
    network: pb.Network
    sandbox: str                          # the sandbox's namespace; "" when there is none here
    containers: list[AttachedContainer]
    peers: list[RemotePeer]
    ingress: AttachedContainer | None = None   # ingress only: this node's own endpoint (its sandbox's)
    ports: list[model.PublishedPort] = field(default_factory=list)   # ingress only
    driver: SandboxState | None = None


@dataclass(frozen=True)
class TaskNetworkConfig:
    """What the container of a task needs from its networks."""
    netns: str
    resolv_conf: str
    hosts: list[str]          # "name:ip" lines for /etc/hosts (executor's format): its own name first


class TaskNetworks:
    def __init__(self, make_driver: Callable[[], OverlayDriver], underlay_addr: str, resolver: Any,
                 run_dir: Path, node_hostname: str, node_id: str):
        self._make_driver = make_driver
        self._driver: OverlayDriver | None = None
        self._underlay_addr = underlay_addr
        self._resolver = resolver          # overlay.dns.Resolver, or None (simulated nodes)
        self._run_dir = run_dir
        self._node_hostname = node_hostname
        self._node_id = node_id
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="overlay")
        self._networks: dict[str, NetworkState] = {}
        self._local: dict[str, LocalEndpoint] = {}        # task ID ->
        self._sandboxes: set[str] = set()                 # network IDs with a sandbox here
        self._existing_ns: set[str] | None = None         # endpoint namespaces found at start
        self._ingress_id: str | None = None               # the ingress network's ID, once its view came
        self._mesh_ports: dict[str, dict[tuple[str, int], model.PublishedPort]] = {}  # service ID ->
        self._host_ports: dict[str, list[model.PublishedPort]] = {}   # local task ID -> its host-mode ports
        self._ingress_tasks: dict[str, str] = {}          # local task ID -> its ingress IP
        self._mesh_synced = False                         # the driver has the whole mesh as programmed

    async def _kernel(self, method: str, *args):
        """One driver call on the overlay thread; what the kernel refuses fails the task."""
        def call():
            if self._driver is None:    # made on its thread: pyroute2 runs an event loop of its own
                self._driver = self._make_driver()
            return getattr(self._driver, method)(*args)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, call)
        except Exception as exc:  # pyroute2 and nft raise their own kinds
            raise NetworkError(f"overlay: {method}: {exc}") from exc

    # ------------------------------------------------------------ views

    async def apply(self, message: dispatcher_pb2.AssignmentsMessage) -> None:
        """The network part of an assignments message, before its tasks are acted on."""
        if message.type == dispatcher_pb2.AssignmentsMessage.COMPLETE:
            self._networks = {}
        changed: dict[str, Delta] = {}
        for view in message.networks:
            delta = self._merge(view)
            if view.network.id in changed:
                delta = Delta(True)
            changed[view.network.id] = delta
        for network_id in message.removed_networks:
            gone = self._networks.pop(network_id, None)
            if self._resolver is not None:
                self._resolver.drop_network(network_id)
            if network_id == self._ingress_id:
                await self._remove_ingress(gone)
        for network_id, delta in changed.items():
            await self._program(network_id, delta)
        await self._adopt(message)

    def _merge(self, view: dispatcher_pb2.NetworkView) -> Delta:
        state = self._networks.get(view.network.id)
        delta = Delta()
        if state is None or view.complete:
            state = self._networks[view.network.id] = NetworkState(view.network)
            delta.full = True
        elif view.network.vni:                # the whole network: it changed
            state.network = view.network
            delta.full = True
        if view.network.spec.ingress:
            self._ingress_id = view.network.id
        for key in view.removed_endpoints:
            self._note(delta, state.drop(key))
        for endpoint in view.endpoints:
            self._note(delta, state.endpoints.get(endpoint_key(endpoint)))
            self._note(delta, endpoint)
            state.put(endpoint)
        for service_id in view.removed_services:
            state.services.pop(service_id, None)
            delta.services.add(service_id)
        for service in view.services:
            state.services[service.id] = service
            delta.services.add(service.id)
        return delta

    @staticmethod
    def _note(delta: Delta, endpoint: dispatcher_pb2.NetworkEndpoint | None) -> None:
        if endpoint is None:
            return
        if endpoint.node_id:
            delta.nodes = True
        else:
            delta.services.add(endpoint.service_id)

    async def _program(self, network_id: str, delta: Delta | None = None) -> None:
        """Peers, names and VIPs of one network, after its view changed; and the mesh."""
        state = self._networks.get(network_id)
        if state is None:
            return
        if self._resolver is not None:
            self._resolver.set_names(dns_view(state))
        if network_id == self._ingress_id:
            await self._ensure_sandbox(plain_network(state.network))
        if network_id in self._sandboxes:
            await self._kernel("set_peers", state.network.vni, self._peers(state))
        for endpoint in self._local.values():
            if network_id in endpoint.network_ids:
                await self._kernel("set_vips", endpoint.task_id, self._vips(endpoint))
        if network_id == self._ingress_id:
            await self._program_mesh(state, delta or Delta(True))

    # ------------------------------------------------------------ the ingress mesh

    async def _program_mesh(self, state: NetworkState, delta: Delta) -> None:
        """The published ports of the services the delta touched (all of them if a node
        endpoint changed), and every local task's reply routes if the nodes changed."""
        node_addr = self._node_addr(state)
        if node_addr is None:
            log.debug("ingress: no address of this node on %s yet: the mesh waits for it", state.network.id)
            return
        full = delta.full or delta.nodes or not self._mesh_synced
        if full:
            self._mesh_ports = {}
            for task_id in self._ingress_tasks:
                await self._kernel("set_ingress_routes", task_id, state.network.vni, node_addrs(state))
        services = set(state.services) if full else delta.services
        ports, removed = [], []
        for service_id in services:
            had = self._mesh_ports.pop(service_id, {})
            service = state.services.get(service_id)
            now = {p.key: p for p in mesh_ports(state, service)} if service is not None else {}
            if now:
                self._mesh_ports[service_id] = now
            ports += [p for k, p in now.items() if had.get(k) != p]
            removed += [k for k in had if k not in now]
        if full:
            ports = [p for service_ports in self._mesh_ports.values() for p in service_ports.values()]
            ports += self._local_host_ports()
        if full or ports or removed:
            await self._set_mesh(state.network.vni, node_addr, ports, removed, full)

    async def _set_mesh(self, vni: int, node_addr: str, ports: list[model.PublishedPort],
                        removed: list[tuple[str, int]], complete: bool) -> None:
        """After a refused change only a complete one is sent: the driver's state is unsure."""
        self._mesh_synced = False
        await self._kernel("set_mesh", vni, node_addr, ports, removed, complete)
        self._mesh_synced = True

    def _node_addr(self, state: NetworkState) -> str | None:
        own = state.endpoints.get(self._node_id)
        return ip_of(own.addr) if own is not None and own.node_id == self._node_id else None

    def _local_host_ports(self, keys: set[tuple[str, int]] | None = None) -> list[model.PublishedPort]:
        """Host-mode ports of the local tasks (only `keys`, if given): one per port, every
        local task that publishes it as a backend (none: the port closes)."""
        backends: dict[tuple[str, int], list[str]] = {k: [] for k in keys or ()}
        first: dict[tuple[str, int], model.PublishedPort] = {}
        for task_id, ports in self._host_ports.items():
            for port in ports:
                if keys is None or port.key in keys:
                    backends.setdefault(port.key, []).append(self._ingress_tasks[task_id])
                    first.setdefault(port.key, port)
        return [model.PublishedPort(key[0], key[1], first[key].target if key in first else key[1],
                                    tuple(sorted(ips)), model.HOST_MODE) for key, ips in backends.items()]

    async def _set_host_ports(self, task_id: str, ports: list[model.PublishedPort]) -> None:
        """A local task's host-mode ports come or go: only those ports change."""
        keys = {p.key for p in ports} | {p.key for p in self._host_ports.get(task_id, [])}
        if ports:
            self._host_ports[task_id] = ports
        else:
            self._host_ports.pop(task_id, None)
        state = self._networks.get(self._ingress_id or "")
        node_addr = None if state is None else self._node_addr(state)
        if not keys or state is None or node_addr is None:
            return
        if self._mesh_synced:
            await self._set_mesh(state.network.vni, node_addr, self._local_host_ports(keys), [], False)
        else:
            await self._program_mesh(state, Delta(full=True))

    async def _remove_ingress(self, state: NetworkState | None) -> None:
        """The ingress network went: its sandbox, and with it the mesh, unless a local task
        is still on it (then it goes with the last one)."""
        network_id, self._ingress_id, self._mesh_ports, self._mesh_synced = self._ingress_id, None, {}, False
        if (state is not None and network_id in self._sandboxes
                and not any(network_id in e.network_ids for e in self._local.values())):
            self._sandboxes.discard(network_id)
            await self._kernel("remove_network", state.network.vni)

    def _peers(self, state: NetworkState) -> list[model.Peer]:
        """Every endpoint on another node (this node's own are on the sandbox's bridge)."""
        own = self._underlay_addr
        return [model.Peer(ip_of(e.addr), e.node_addr) for e in state.endpoints.values()
                if e.node_addr and e.node_addr != own and e.task_id not in self._local]

    def _vips(self, endpoint: LocalEndpoint) -> list[model.Vip]:
        vips = []
        for network_id in endpoint.network_ids:
            state = self._networks.get(network_id)
            if state is None:
                continue
            for service in state.services.values():
                if service.vip:
                    vips.append(model.Vip(ip_of(service.vip), serving_ips(state, service.id)))
        return vips

    # ------------------------------------------------------------ inspection

    def find(self, ref: str) -> pb.Network | None:
        """A network this node has a view of, by ID, name, or unique ID prefix."""
        networks = [s.network for s in self._networks.values()]
        exact = [n for n in networks if ref in (n.id, n.spec.name)]
        prefixed = [n for n in networks if n.id.startswith(ref)] if ref else []
        found = exact or prefixed
        if len(found) > 1:
            raise NetworkError(f"network {ref} is ambiguous ({len(found)} matches)")
        return found[0] if found else None

    async def snapshot(self, network_id: str) -> NetworkSnapshot | None:
        """The network's sandbox, local containers, peers and (ingress) mesh on this node."""
        state = self._networks.get(network_id)
        if state is None:
            return None
        containers = [AttachedContainer(e.task_id, e.name, f"eth{i}", e.addrs[i], model.mac_of(ip_of(e.addrs[i])))
                      for e in self._local.values() for i, n in enumerate(e.network_ids)
                      if n == network_id and i < len(e.addrs)]
        if network_id not in self._sandboxes:
            return NetworkSnapshot(state.network, "", containers, [])
        names = endpoint_names(state)
        peers = [RemotePeer(names.get(p.addr, ""), p.addr, p.mac, p.host) for p in self._peers(state)]
        driver = await self._kernel("sandbox_state", state.network.vni)
        ingress, ports = None, []
        if network_id == self._ingress_id:
            ingress = self._ingress_endpoint(state)
            ports = [p for service_ports in self._mesh_ports.values() for p in service_ports.values()]
            ports = sorted(ports + self._local_host_ports(), key=lambda p: p.key)
        return NetworkSnapshot(state.network, driver.name, sorted(containers, key=lambda c: c.name),
                               sorted(peers, key=lambda p: p.addr), ingress, ports, driver)

    def _ingress_endpoint(self, state: NetworkState) -> AttachedContainer | None:
        own = state.endpoints.get(self._node_id)
        if own is None or own.node_id != self._node_id:
            return None
        return AttachedContainer("", INGRESS_ENDPOINT, BRIDGE, own.addr, model.mac_of(ip_of(own.addr)))

    # ------------------------------------------------------------ tasks

    async def prepare(self, task: pb.Task) -> TaskNetworkConfig | None:
        """Before the task's container is created: its namespace, interfaces, DNS and VIPs.
        None for a task without networks (its container gets an empty namespace)."""
        if not task.networks:
            return None
        attachments = [self._attachment(task, a) for a in task.networks]
        netns = await self._kernel("create_endpoint_ns", task.id)
        network_ids = [a.network_id for a in task.networks]
        for attachment in attachments:
            await self._ensure_sandbox(attachment.network)
        await self._kernel("attach", task.id, attachments)
        facts = TaskFacts(task.service_name, task.service_id, task.slot, task.id, task.node_id, "")
        endpoint = self._local[task.id] = LocalEndpoint(task.id, netns, network_ids, stack_of(task), task_name(facts),
                                                        tuple(a.addr for a in attachments))
        await self._kernel("set_vips", task.id, self._vips(endpoint))
        await self._join_mesh(task, attachments)
        if self._resolver is not None:
            await self._resolver.serve(task.id, netns, network_ids, endpoint.stack)
        hostname = self.hostname(task)
        return TaskNetworkConfig(netns=netns, resolv_conf=str(self._write_resolv_conf(task)),
                                 hosts=[f"{hostname}:{attachments[0].ip}", *hosts_of(task)])

    async def _join_mesh(self, task: pb.Task, attachments: list[model.Attachment]) -> None:
        """A task on the ingress network gets its reply routes; its host-mode ports open."""
        ingress = next((a for a in attachments if a.network.id == self._ingress_id), None)
        if ingress is None:
            if task.host_ports:
                raise NetworkError(f"task {task.id} publishes host-mode ports but is not on the ingress network")
            return
        state = self._networks[ingress.network.id]
        self._ingress_tasks[task.id] = ingress.ip
        await self._kernel("set_ingress_routes", task.id, ingress.network.vni, node_addrs(state))
        await self._set_host_ports(task.id, host_ports(task))

    def hostname(self, task: pb.Task) -> str:
        facts = TaskFacts(task.service_name, task.service_id, task.slot, task.id, self._node_id, self._node_hostname)
        try:
            return render_hostname(task.spec.container.hostname, facts)
        except ValueError as exc:
            raise NetworkError(str(exc)) from None

    def _attachment(self, task: pb.Task, attachment: pb.NetworkAttachment) -> model.Attachment:
        state = self._networks.get(attachment.network_id)
        if state is None:
            raise NetworkError(f"network {attachment.network_id} of task {task.id} is not known on this node yet")
        return model.Attachment(plain_network(state.network), attachment.addr)

    async def _ensure_sandbox(self, net: model.Network) -> None:
        if net.id in self._sandboxes:
            return
        await self._kernel("ensure_network", net)
        self._sandboxes.add(net.id)
        state = self._networks.get(net.id)
        if state is not None:
            await self._kernel("set_peers", net.vni, self._peers(state))

    def _write_resolv_conf(self, task: pb.Task) -> Path:
        dns = task.spec.container.dns_config
        lines = [f"nameserver {model.DNS_ADDR}"]
        if dns.search:
            lines.append("search " + " ".join(dns.search))
        lines.append("options " + " ".join(["ndots:0", *dns.options]))
        path = self._run_dir / "resolv" / f"{task.id}.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    async def release(self, task_id: str) -> None:
        """The task's container is gone: its namespace goes, and a sandbox with it when it
        was the network's last local endpoint."""
        endpoint = self._local.pop(task_id, None)
        if task_id in self._host_ports:
            await self._set_host_ports(task_id, [])
        self._ingress_tasks.pop(task_id, None)
        if self._resolver is not None:
            await self._resolver.stop(task_id)
        await self._kernel("remove_endpoint_ns", task_id)
        (self._run_dir / "resolv" / f"{task_id}.conf").unlink(missing_ok=True)
        if endpoint is None:
            return
        still_used = {n for e in self._local.values() for n in e.network_ids}
        for network_id in endpoint.network_ids:
            if network_id not in still_used and network_id in self._sandboxes and network_id != self._ingress_id:
                self._sandboxes.discard(network_id)
                state = self._networks.get(network_id)
                if state is not None:
                    await self._kernel("remove_network", state.network.vni)

    async def _adopt(self, message: dispatcher_pb2.AssignmentsMessage) -> None:
        """After a restart: tasks whose namespace exists get their DNS and VIPs back; the
        interfaces are left as they are, so established connections live on."""
        if self._existing_ns is None:
            _, keys = await self._kernel("existing")
            self._existing_ns = set(keys)
        for task in message.updated:
            if task.id in self._existing_ns and task.id not in self._local and task.networks:
                self._existing_ns.discard(task.id)
                try:
                    await self.prepare(task)
                except NetworkError as exc:
                    log.warning("task %s: adopting its networks: %s", task.id, exc)

    async def remove_all(self) -> None:
        """The node left the swarm: everything the driver made goes."""
        for task_id in list(self._local):
            if self._resolver is not None:
                await self._resolver.stop(task_id)
        self._local.clear()
        self._sandboxes.clear()
        self._mesh_ports, self._host_ports, self._ingress_tasks, self._mesh_synced = {}, {}, {}, False
        await self._kernel("remove_all")
        await self.close()

    async def close(self) -> None:
        """coveyd stops: the kernel state stays (containers keep their network). The thread
        stays too, so that a node leaving the swarm after its tasks stopped can still
        remove_all (with a driver made anew)."""
        if self._resolver is not None:
            await self._resolver.close()
        if self._driver is not None:
            await self._kernel("close")
            self._driver = None


# ---------------------------------------------------------------- pure conversions

def ip_of(cidr: str) -> str:
    return cidr.split("/")[0]


def endpoint_names(state: NetworkState) -> dict[str, str]:
    """IP -> the task name of the endpoint there ("web.1.<task id>"), or the node's ID."""
    names = {}
    for endpoint in state.endpoints.values():
        named = [n for n in endpoint.names if endpoint.task_id and n.endswith(endpoint.task_id)]
        names[ip_of(endpoint.addr)] = named[0] if named else endpoint.node_id or endpoint.task_id
    return names


def endpoint_key(endpoint: dispatcher_pb2.NetworkEndpoint) -> str:
    """A task's endpoint by its task ID, a node's own (ingress) endpoint by its node ID."""
    return endpoint.task_id or endpoint.node_id


def node_endpoints(state: NetworkState) -> list[dispatcher_pb2.NetworkEndpoint]:
    return [e for e in state.service_endpoints("") if e.node_id]   # node endpoints have no service


def node_addrs(state: NetworkState) -> list[str]:
    """Every node's ingress address, serving or not: replies of its connections go back to it."""
    return sorted(ip_of(e.addr) for e in node_endpoints(state))


def mesh_backends(state: NetworkState, service_id: str) -> tuple[str, ...]:
    """The service's serving tasks, less those on a node whose own endpoint is gone or not
    serving (once the managers send node endpoints at all)."""
    nodes = node_endpoints(state)
    up = {e.node_addr for e in nodes if e.serving}
    return tuple(sorted(ip_of(e.addr) for e in state.service_endpoints(service_id)
                        if e.serving and (not nodes or e.node_addr in up)))


def mesh_ports(state: NetworkState, service: dispatcher_pb2.NetworkService) -> list[model.PublishedPort]:
    """The service's ingress-mode published ports (host-mode ones come with its tasks)."""
    preserve = service.labels.get(CLIENT_IP_LABEL) == CLIENT_IP_PRESERVE
    ports = [p for p in service.ports if p.publish_mode == specs_pb2.PortConfig.INGRESS and p.published_port]
    backends = mesh_backends(state, service.id) if ports else ()
    plain = []
    for port in ports:
        if port.protocol not in PROTOCOLS:
            log.warning("service %s: published port %d: only TCP and UDP are carried by the mesh",
                        service.name, port.published_port)
            continue
        plain.append(model.PublishedPort(PROTOCOLS[port.protocol], port.published_port, port.target_port,
                                         backends, preserve_client_ip=preserve))
    return plain


def host_ports(task: pb.Task) -> list[model.PublishedPort]:
    """The task's host-mode ports (allocated by the managers), its backend filled in later."""
    return [model.PublishedPort(PROTOCOLS[p.protocol], p.published_port, p.target_port, mode=model.HOST_MODE)
            for p in task.host_ports if p.protocol in PROTOCOLS and p.published_port]


def plain_network(network: pb.Network) -> model.Network:
    options = network.spec.driver_config.options
    if ENCRYPTED_OPT in options:
        why = encryption_support() or "Covey does not encrypt overlay traffic yet"
        raise NetworkError(f"network {network.spec.name} is encrypted: {why}; refusing to run it unencrypted")
    mtu = options.get(MTU_OPT, "0")
    if not mtu.isdigit():
        raise NetworkError(f"network {network.spec.name}: {MTU_OPT}={mtu!r} is not a number")
    return model.Network(id=network.id, vni=network.vni, subnet=network.subnet, gateway=ip_of(network.gateway),
                         internal=network.spec.internal, mtu=int(mtu))


def serving_ips(state: NetworkState, service_id: str) -> tuple[str, ...]:
    return tuple(sorted(ip_of(e.addr) for e in state.service_endpoints(service_id) if e.serving))


def dns_view(state: NetworkState) -> model.DnsView:
    """The names a network answers: services (VIP, or task IPs in dnsrr mode), tasks.<service>,
    aliases, and every endpoint's hostname and task name."""
    names: dict[str, tuple[str, ...]] = {}
    for endpoint in state.endpoints.values():
        for name in endpoint.names:
            names[name.lower()] = names.get(name.lower(), ()) + (ip_of(endpoint.addr),)
    for service in state.services.values():
        tasks = serving_ips(state, service.id)
        answer = (ip_of(service.vip),) if service.vip else tasks
        for name in (service.name, *service.aliases):
            names[name.lower()] = answer
        names[f"tasks.{service.name}".lower()] = tasks
    return model.DnsView(state.network.id, names)


def stack_of(task: pb.Task) -> str:
    return task.spec.container.labels.get("com.docker.stack.namespace", "")


def hosts_of(task: pb.Task) -> list[str]:
    """ContainerSpec.hosts ("IP NAME...", as Docker stores --host) in the executor's "name:ip"."""
    lines: list[str] = []
    for entry in task.spec.container.hosts:
        ip, *names = entry.split()
        lines.extend(f"{name}:{ip}" for name in names)
    return lines
