"""The agent's network glue (docs/design.md, "Data plane"): the managers' network views
(sent with the assignments) and the tasks' attachments become the overlay's plain data.

Per network this node uses it keeps the view (endpoints and services, from Raft state),
and from it programs: the sandbox and its peers (every endpoint on another node), the
names the embedded DNS answers, and the VIP table of every local container on it. A
change to one network touches only that network's sandbox and local containers.
The kernel driver is synchronous: it runs on one thread of its own, in order.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from covey.hostname import TaskFacts, render_hostname
from overlay import model
from overlay.api import OverlayDriver
from overlay.driver import encryption_support
from proto import dispatcher_pb2
from proto import objects_pb2 as pb
from worker.executor import ExecutorError

log = logging.getLogger(__name__)

ENCRYPTED_OPT = "encrypted"
MTU_OPT = "com.docker.network.driver.mtu"


class NetworkError(ExecutorError):
    """A task's networks cannot be set up on this node (the task fails with this message)."""


@dataclass
class NetworkState:
    """One network as the managers last described it."""
    network: pb.Network
    endpoints: dict[str, dispatcher_pb2.NetworkEndpoint] = field(default_factory=dict)   # task ID ->
    services: dict[str, dispatcher_pb2.NetworkService] = field(default_factory=dict)     # service ID ->


@dataclass
class LocalEndpoint:
    """A local task's network namespace and what it is attached to."""
    task_id: str
    netns: str
    network_ids: list[str]
    stack: str


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
        changed: set[str] = set()
        for view in message.networks:
            self._merge(view)
            changed.add(view.network.id)
        for network_id in message.removed_networks:
            self._networks.pop(network_id, None)
            if self._resolver is not None:
                self._resolver.drop_network(network_id)
        for network_id in changed:
            await self._program(network_id)
        await self._adopt(message)

    def _merge(self, view: dispatcher_pb2.NetworkView) -> None:
        state = self._networks.get(view.network.id)
        if state is None or view.complete:
            state = self._networks[view.network.id] = NetworkState(view.network)
        elif view.network.vni:                # the whole network: it changed
            state.network = view.network
        for task_id in view.removed_endpoints:
            state.endpoints.pop(task_id, None)
        for endpoint in view.endpoints:
            state.endpoints[endpoint.task_id] = endpoint
        for service_id in view.removed_services:
            state.services.pop(service_id, None)
        for service in view.services:
            state.services[service.id] = service

    async def _program(self, network_id: str) -> None:
        """Peers, names and VIPs of one network, after its view changed."""
        state = self._networks.get(network_id)
        if state is None:
            return
        if self._resolver is not None:
            self._resolver.set_names(dns_view(state))
        if network_id in self._sandboxes:
            await self._kernel("set_peers", state.network.vni, self._peers(state))
        for endpoint in self._local.values():
            if network_id in endpoint.network_ids:
                await self._kernel("set_vips", endpoint.task_id, self._vips(endpoint))

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
        endpoint = self._local[task.id] = LocalEndpoint(task.id, netns, network_ids, stack_of(task))
        await self._kernel("set_vips", task.id, self._vips(endpoint))
        if self._resolver is not None:
            await self._resolver.serve(task.id, netns, network_ids, endpoint.stack)
        hostname = self.hostname(task)
        return TaskNetworkConfig(netns=netns, resolv_conf=str(self._write_resolv_conf(task)),
                                 hosts=[f"{hostname}:{attachments[0].ip}", *hosts_of(task)])

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
        if self._resolver is not None:
            await self._resolver.stop(task_id)
        await self._kernel("remove_endpoint_ns", task_id)
        (self._run_dir / "resolv" / f"{task_id}.conf").unlink(missing_ok=True)
        if endpoint is None:
            return
        still_used = {n for e in self._local.values() for n in e.network_ids}
        for network_id in endpoint.network_ids:
            if network_id not in still_used and network_id in self._sandboxes:
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
        await self._kernel("remove_all")

    async def close(self) -> None:
        """coveyd stops: the kernel state stays (containers keep their network)."""
        if self._resolver is not None:
            await self._resolver.close()
        if self._driver is not None:
            await self._kernel("close")
        self._thread.shutdown(wait=True)


# ---------------------------------------------------------------- pure conversions

def ip_of(cidr: str) -> str:
    return cidr.split("/")[0]


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
    return tuple(sorted(ip_of(e.addr) for e in state.endpoints.values() if e.service_id == service_id and e.serving))


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
