"""The network views the dispatcher sends each node with its assignments (proto/dispatcher.proto,
NetworkView): for every overlay network a node's tasks use, the network, its endpoints (one per
live task on it, on any node) and its services.

One index for all nodes, kept from the store's change events: network -> its endpoints and
services, network -> the nodes that use it. A change is computed once and queued to the feeds
(the assignments streams) of the nodes that use its network, as the IDs of what changed; a
feed reads their current state when its stream next sends. So a change costs in proportion to
what changed and to the nodes that must hear of it, never to the size of the swarm, and many
changes to one endpoint before a send make one entry.

A node uses a network while one of its assigned tasks that has not finished is attached to it
(a task told to stop is no endpoint any more, but its container is still attached). Every node
with a stream uses the ingress network: it answers every published port, and holds its own
endpoint there (keyed by its node ID, as removed_endpoints then names it) besides the tasks'.

A change to a network every node uses (the ingress) reaches every node: its cost grows with the
nodes. What each feed is sent is built once per distinct set of changes, not once per node:
feeds that heard the same changes since their last send share one built view (`_built`,
dropped at the network's next change).
In an increment, a view's `network` holds only the ID (meta.version 0) unless the network
itself changed.
The index lives while some stream has a feed: built from the store when the first one opens,
dropped with the last (e.g. this manager lost leadership and its sessions ended).
"""
import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from manager.dispatcher import endpoints as ep
from manager.state import store as st
from manager.state.tables import Event
from proto import dispatcher_pb2, store_pb2
from proto import objects_pb2 as pb

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    """What changed on one network since a feed last sent (IDs: their state is read at send)."""
    network: bool = False
    endpoints: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)


@dataclass(eq=False)
class Feed:
    """One assignments stream's share: what its node was sent and what changed since."""
    node_id: str
    wake: Callable[[], None]                   # tells the stream that something is pending
    known: set[str] = field(default_factory=set)  # networks whose view the node holds
    pending: dict[str, _Pending] = field(default_factory=dict)

    def note(self, network_id: str) -> _Pending:
        if not self.pending:
            self.wake()
        return self.pending.setdefault(network_id, _Pending())


class NetworkViews:
    def __init__(self, store: st.Store):
        self._store = store
        self._feeds: dict[str, list[Feed]] = {}          # node ID -> its streams' feeds
        self._events: asyncio.Queue | None = None
        self._follower: asyncio.Task | None = None
        self._reset()

    def _reset(self) -> None:
        self._networks: dict[str, pb.Network] = {}
        self._by_name: dict[str, str] = {}                # network name -> ID
        self._nodes: dict[str, ep.NodeFacts] = {}
        self._endpoints: dict[str, dict[str, dispatcher_pb2.NetworkEndpoint]] = {}  # network -> task -> it
        self._services: dict[str, dict[str, dispatcher_pb2.NetworkService]] = {}    # network -> service -> it
        self._task_nets: dict[str, tuple[str, frozenset[str], frozenset[str]]] = {}  # task -> node, used, endpoints
        self._service_nets: dict[str, frozenset[str]] = {}
        self._service_targets: dict[str, frozenset[str]] = {}  # service -> its spec's network targets
        self._by_target: dict[str, set[str]] = {}         # a spec's network target (ID or name) -> services
        self._uses: dict[str, dict[str, int]] = {}        # node -> network -> its tasks using it
        self._users: dict[str, set[str]] = {}             # network -> nodes using it
        self._ingress_id: str | None = None
        self._node_eps: dict[str, str] = {}               # node -> the network its own endpoint is on
        self._built: dict[str, dict[tuple, dispatcher_pb2.NetworkView | None]] = {}  # network -> shared views

    # ------------------------------------------------------------ feeds

    def open(self, node_id: str, wake: Callable[[], None]) -> Feed:
        """A feed for a new stream; its first send() holds the complete views of its node."""
        if self._events is None:
            self._start()
        self.catch_up()
        feed = Feed(node_id, wake)
        self._feeds.setdefault(node_id, []).append(feed)
        for network_id in self._used_by(node_id):
            feed.pending[network_id] = _Pending()
        return feed

    def _used_by(self, node_id: str) -> set[str]:
        used = set(self._uses.get(node_id, {}))
        return used | {self._ingress_id} if self._ingress_id is not None else used

    def close(self, feed: Feed) -> None:
        feeds = self._feeds.get(feed.node_id, [])
        if feed in feeds:
            feeds.remove(feed)
        if not feeds:
            self._feeds.pop(feed.node_id, None)
        if not self._feeds and self._events is not None:
            self._stop()

    def send(self, feed: Feed) -> tuple[list[dispatcher_pb2.NetworkView], list[str]]:
        """The views to send the feed's node now and the networks it no longer uses."""
        self.catch_up()
        views: list[dispatcher_pb2.NetworkView] = []
        removed = []
        used = self._used_by(feed.node_id)
        for network_id, pending in feed.pending.items():
            network = self._networks.get(network_id)
            if network_id not in used or network is None:
                if network_id in feed.known:
                    removed.append(network_id)
                    feed.known.discard(network_id)
                continue
            view = self._shared(network_id, None if network_id not in feed.known else pending)
            feed.known.add(network_id)
            if view is not None:
                views.append(view)
        feed.pending.clear()
        return views, sorted(removed)

    def _shared(self, network_id: str, pending: _Pending | None) -> dispatcher_pb2.NetworkView | None:
        """The complete view (pending None) or the delta for `pending`, built once for every
        feed with the same changes since the network last changed."""
        key = ("complete",) if pending is None else (
            pending.network, tuple(sorted(pending.endpoints)), tuple(sorted(pending.services)))
        built = self._built.setdefault(network_id, {})
        if key not in built:
            built[key] = self.complete_view(network_id) if pending is None else self._delta_view(network_id, pending)
        return built[key]

    def complete_view(self, network_id: str) -> dispatcher_pb2.NetworkView:
        return dispatcher_pb2.NetworkView(
            network=self._networks[network_id], complete=True,
            endpoints=list(self._endpoints.get(network_id, {}).values()),
            services=list(self._services.get(network_id, {}).values()))

    def _delta_view(self, network_id: str, pending: _Pending) -> dispatcher_pb2.NetworkView | None:
        """What changed, or None when it all changed back before this send."""
        endpoints, services = self._endpoints.get(network_id, {}), self._services.get(network_id, {})
        view = dispatcher_pb2.NetworkView(
            endpoints=[endpoints[t] for t in sorted(pending.endpoints) if t in endpoints],
            removed_endpoints=sorted(t for t in pending.endpoints if t not in endpoints),
            services=[services[s] for s in sorted(pending.services) if s in services],
            removed_services=sorted(s for s in pending.services if s not in services))
        if pending.network:
            view.network.CopyFrom(self._networks[network_id])
        elif view.ByteSize() == 0:
            return None
        else:
            view.network.id = network_id  # says which network; no meta.version: the network is unchanged
        return view

    def _notify(self, network_id: str, change: Callable[[_Pending], None]) -> None:
        self._built.pop(network_id, None)
        everyone = network_id == self._ingress_id
        for node_id in self._feeds if everyone else self._users.get(network_id, ()):
            for feed in self._feeds.get(node_id, ()):
                change(feed.note(network_id))

    # ------------------------------------------------------------ the index

    def _start(self) -> None:
        """Subscribe, then read the store: a change in between comes again as an event, and
        applying an object's current state twice changes nothing."""
        self._events = self._store.subscribe()
        self._reset()
        for network in self._store.networks.view():
            self._network_changed(network.id, network)
        for node in self._store.nodes.view():
            self._nodes[node.id] = ep.node_facts(node)
        for service in self._store.services.view():
            self._service_changed(service.id, service)
        for task in self._store.tasks.view():
            self._task_changed(task.id, task)
        self._follower = asyncio.create_task(self._follow(self._events), name="network views")

    def _stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
        if self._events is not None:
            self._store.unsubscribe(self._events)
        self._events, self._follower = None, None
        self._reset()

    async def _follow(self, events: asyncio.Queue) -> None:
        """Apply changes as they come, so that the nodes hear of them without a task change of their own."""
        while True:
            self.apply(await events.get())
            self.catch_up()

    def catch_up(self) -> None:
        """Apply every change published so far (a stream calls this before it sends, so that the
        views it sends are as new as the tasks beside them)."""
        while self._events is not None and not self._events.empty():
            self.apply(self._events.get_nowait())

    def apply(self, event: Event) -> None:
        gone, obj = event.kind == store_pb2.StoreAction.DELETE, event.obj
        try:
            if isinstance(obj, pb.Task):
                self._task_changed(event.id, None if gone else obj)
            elif isinstance(obj, pb.Node):
                self._node_changed(event.id, None if gone else obj)
            elif isinstance(obj, pb.Service):
                self._service_changed(event.id, None if gone else obj)
            elif isinstance(obj, pb.Network):
                self._network_changed(event.id, None if gone else obj)
        except Exception:  # one bad object must not stop every node's views
            log.exception("network views: could not apply the change of %s", event.id)

    def _task_changed(self, task_id: str, task: pb.Task | None) -> None:
        old_node, old_used, old_eps = self._task_nets.pop(task_id, ("", frozenset(), frozenset()))
        node_id = task.node_id if task is not None else ""
        endpoints = ep.endpoints_of(task, self._nodes.get(node_id)) if task is not None else {}
        used = ep.networks_used(task) if task is not None else frozenset()
        for network_id in old_eps | endpoints.keys():
            self._set_endpoint(network_id, task_id, endpoints.get(network_id))
        for network_id in old_used:
            self._use(old_node, network_id, -1)
        for network_id in used:
            self._use(node_id, network_id, +1)
        if used or endpoints:
            self._task_nets[task_id] = (node_id, used, frozenset(endpoints))

    def _set_endpoint(self, network_id: str, task_id: str, endpoint: dispatcher_pb2.NetworkEndpoint | None) -> None:
        endpoints = self._endpoints.setdefault(network_id, {})
        if endpoints.get(task_id) == endpoint:
            return
        if endpoint is None:
            del endpoints[task_id]
        else:
            endpoints[task_id] = endpoint
        self._notify(network_id, lambda p: p.endpoints.add(task_id))

    def _use(self, node_id: str, network_id: str, delta: int) -> None:
        """Count the node's tasks on the network; its feeds hear when the count leaves or reaches 0."""
        counts = self._uses.setdefault(node_id, {})
        count = counts.get(network_id, 0) + delta
        if count > 0:
            counts[network_id] = count
            self._users.setdefault(network_id, set()).add(node_id)
        else:
            counts.pop(network_id, None)
            users = self._users.get(network_id, set())
            users.discard(node_id)
            if not users:
                self._users.pop(network_id, None)
        if (count > 0) != (count - delta > 0):
            for feed in self._feeds.get(node_id, ()):
                feed.note(network_id)
        if not counts:
            del self._uses[node_id]

    def _node_changed(self, node_id: str, node: pb.Node | None) -> None:
        """A node's own endpoint; its address, hostname and state are in its tasks' endpoints."""
        self._node_endpoint_changed(node_id, node)
        facts = ep.node_facts(node) if node is not None else None
        if self._nodes.get(node_id) == facts:
            return
        if facts is None:
            self._nodes.pop(node_id, None)
        else:
            self._nodes[node_id] = facts
        for task in self._store.tasks.on_node(node_id):
            if task.id in self._task_nets:
                self._task_changed(task.id, task)

    def _node_endpoint_changed(self, node_id: str, node: pb.Node | None) -> None:
        endpoint = ep.node_endpoint(node, self._ingress_id) if node is not None else None
        old = self._node_eps.pop(node_id, None)
        if old is not None and (endpoint is None or old != self._ingress_id):
            self._set_endpoint(old, node_id, None)
        if endpoint is not None and self._ingress_id is not None:
            self._node_eps[node_id] = self._ingress_id
            self._set_endpoint(self._ingress_id, node_id, endpoint)

    def _service_changed(self, service_id: str, service: pb.Service | None) -> None:
        for target in self._service_targets.pop(service_id, ()):
            self._by_target[target].discard(service_id)
            if not self._by_target[target]:
                del self._by_target[target]
        entries = ep.services_of(service, self._resolve, self._ingress_id) if service is not None else {}
        if service is not None:
            targets = self._service_targets[service_id] = frozenset(ep.network_targets(service.spec))
            for target in targets:
                self._by_target.setdefault(target, set()).add(service_id)
        for network_id in self._service_nets.pop(service_id, frozenset()) | entries.keys():
            self._set_service(network_id, service_id, entries.get(network_id))
        if entries:
            self._service_nets[service_id] = frozenset(entries)

    def _set_service(self, network_id: str, service_id: str, entry: dispatcher_pb2.NetworkService | None) -> None:
        services = self._services.setdefault(network_id, {})
        if services.get(service_id) == entry:
            return
        if entry is None:
            del services[service_id]
        else:
            services[service_id] = entry
        self._notify(network_id, lambda p: p.services.add(service_id))

    def _resolve(self, target: str) -> str | None:
        return target if target in self._networks else self._by_name.get(target)

    def _network_changed(self, network_id: str, network: pb.Network | None) -> None:
        old = self._networks.pop(network_id, None)
        if old is not None:
            self._by_name.pop(old.spec.name, None)
        if network is not None:
            self._networks[network_id] = network
            self._by_name[network.spec.name] = network_id
        was_ingress = network_id == self._ingress_id
        if was_ingress or (network is not None and network.spec.ingress):
            self._ingress_swapped(network_id, network)
            return
        named = network or old
        if named is not None and (old is None or network is None):  # services that name it may now (not) find it
            names = {network_id, named.spec.name}
            for service_id in set().union(*(self._by_target.get(n, set()) for n in names)):
                self._service_changed(service_id, self._store.services.peek(service_id))
        self._notify(network_id, lambda p: setattr(p, "network", True))

    def _ingress_swapped(self, network_id: str, network: pb.Network | None) -> None:
        """The ingress network came, changed or went (rare: `network create --ingress`): every
        node hears of it; the nodes' own endpoints and the publishing services move to it."""
        self._notify(network_id, lambda p: setattr(p, "network", True))  # while it is still the ingress
        self._ingress_id = network_id if network is not None else None
        if network is None:
            self._endpoints.pop(network_id, None)
            self._services.pop(network_id, None)
        for node in self._store.nodes.view():
            self._node_endpoint_changed(node.id, node)
        for service in self._store.services.view():
            if service.spec.endpoint.ports:
                self._service_changed(service.id, service)
