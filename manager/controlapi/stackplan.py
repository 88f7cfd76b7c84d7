"""What a stack deploy, removal or rollback changes: a pure plan over a snapshot of the store.

It lives beside the control API, not in the orchestrator: it runs once per request, from the
request and what is stored, and it reuses the API's validation (services, networks, IPAM); the
orchestrator package holds the leader loops. DeployStack writes the plan's actions as ONE Raft
entry (with the cluster object, whose version guards against a concurrent stack or network
write), so a stack changes all at once or not at all.

Names: a stack's objects are `<stack>_<name>` (the compose loader scopes them) and carry the
label com.docker.stack.namespace=<stack>; a reference in a service spec (network target,
secret, config) resolves to the stack's object by full or short name, else to an external
one the spec declares. An object of that name outside the stack is never taken over.

Secrets and configs are immutable objects with versions: a deploy whose secret (or config)
content or labels changed creates version N+1 as a NEW object named `<stack>_<name>-v<N+1>`
(version 1 keeps the plain name, as Docker's), points the services that use it at the new
object (so they roll), and deletes the versions no service uses any longer, in the same write.
Each version carries the label com.covey.stack.secret=<stack>_<name> to find its siblings.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from covey.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from covey.ids import new_id
from covey.registryauth import registry_of
from manager.allocator import ports
from manager.controlapi import networks as network_api
from manager.controlapi import secrets as secret_api
from manager.controlapi import services as service_api
from manager.scheduler import placement
from manager.state.actions import create, delete, update
from manager.state.raft.safety import TransportLimits
from proto import control_pb2, store_pb2
from proto import objects_pb2 as pb
from proto import specs_pb2 as specs

NAMESPACE_LABEL = "com.docker.stack.namespace"
VERSIONED_LABEL = "com.covey.stack.secret"   # on each version: the logical name it is a version of
# One deploy is one Raft entry; it must fit in one peer frame with room to spare (an entry
# rides in an append_entries message with others). Secrets count in full (and twice: the
# Stack object keeps its spec for `stack rollback`).
MAX_WRITE_BYTES = TransportLimits.frame // 4
STACK_NAME = service_api.NAME

Change = control_pb2.StackChange
Item = pb.Secret | pb.Config


@dataclass(frozen=True)
class Snapshot:
    """What a plan reads: copies of the store's objects at one moment."""
    cluster: pb.Cluster
    services: list[pb.Service] = field(default_factory=list)
    networks: list[pb.Network] = field(default_factory=list)
    secrets: list[pb.Secret] = field(default_factory=list)
    configs: list[pb.Config] = field(default_factory=list)
    stacks: list[pb.Stack] = field(default_factory=list)
    nodes: list[pb.Node] = field(default_factory=list)

    @classmethod
    def of(cls, store) -> Snapshot:
        clusters = store.clusters.list()
        if not clusters:
            raise FailedPrecondition("the swarm is not initialized yet")
        return cls(clusters[0], store.services.list(), store.networks.list(), store.secrets.list(),
                   store.configs.list(), store.stacks.list(), store.nodes.list())

    def stack(self, ref: str) -> pb.Stack | None:
        return next((s for s in self.stacks if s.id == ref), None) or \
            next((s for s in self.stacks if s.spec.name == ref), None)


@dataclass
class Plan:
    """The writes of one stack change (cluster guard included) and Docker's lines for them."""
    actions: list[store_pb2.StoreAction] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    stack: pb.Stack | None = None     # the Stack object as it is after the write

    def add(self, action: store_pb2.StoreAction, what: Change.Action, kind: str, name: str, obj_id: str) -> None:
        self.actions.append(action)
        self.changes.append(Change(action=what, kind=kind, name=name, id=obj_id))

    def note(self, kind: str, name: str, obj_id: str) -> None:
        self.changes.append(Change(action=Change.UNCHANGED, kind=kind, name=name, id=obj_id))

    @property
    def changed(self) -> bool:
        return bool(self.actions)


def owned_by(labels, stack: str) -> bool:
    return labels.get(NAMESPACE_LABEL) == stack


# ---------------------------------------------------------------- deploy

def deploy(snap: Snapshot, spec: specs.StackSpec, prune: bool = False, rollback: bool = False,
           now_ns: int | None = None, registry_auths: Mapping[str, pb.RegistryAuth] | None = None) -> Plan:
    """Every change that brings the stored objects in line with `spec`; raises (naming the
    problem) before anything is planned to be written when the spec or a reference is bad.
    `registry_auths` (--with-registry-auth, by registry): kept by each service whose image
    is on one (a change of credentials alone rolls nothing)."""
    return _Deploy(snap, spec, prune, rollback, time.time_ns() if now_ns is None else now_ns,
                   registry_auths or {}).plan()


class _Deploy:
    def __init__(self, snap: Snapshot, spec: specs.StackSpec, prune: bool, rollback: bool, now_ns: int,
                 registry_auths: Mapping[str, pb.RegistryAuth]):
        self.snap, self.spec, self.prune, self.rollback, self.now = snap, spec, prune, rollback, now_ns
        self.registry_auths = registry_auths
        self.name = spec.name
        self.out = Plan()
        self.networks: dict[str, pb.Network] = {}       # stack and external networks by full name
        self.items: dict[str, dict[str, Item]] = {"secret": {}, "config": {}}  # by declared name
        self.services: dict[str, specs.ServiceSpec] = {}  # planned specs by name
        self.planned: dict[str, pb.Service] = {}           # created or updated services by ID
        self.removed_services: set[str] = set()

    def plan(self) -> Plan:
        _check_stack(self.spec)
        self._plan_networks()
        for kind in ("secret", "config"):
            self._plan_items(kind)
        removals = self._prune_services()
        for service_spec in self.spec.services:
            self._plan_service(service_spec)
        self._check_dependencies()
        self.out.actions += removals.actions
        self.out.changes[:0] = removals.changes          # Docker prints removals first
        self._remove_unused()
        self._plan_stack()
        if self.out.changed:
            cluster = pb.Cluster()
            cluster.CopyFrom(self.snap.cluster)          # unchanged: its version guards the write
            cluster.meta.updated_at_ns = self.now
            self.out.actions.append(update(cluster))
        check_size(self.name, self.out.actions)
        return self.out

    # -------------------------------------------------------- networks

    def _plan_networks(self) -> None:
        planned = list(self.snap.networks)
        for wanted in self.spec.networks:
            net = specs.NetworkSpec()
            net.CopyFrom(wanted)
            network_api.validate_spec(net)
            net.driver_config.name = net.driver_config.name or "overlay"
            net.labels[NAMESPACE_LABEL] = self.name
            if net.name in self.networks:
                raise InvalidArgument(f"stack {self.name}: network {net.name} is declared twice")
            existing = next((n for n in self.snap.networks if n.spec.name == net.name), None)
            if existing is None:
                created = network_api.new_network(new_id(), net, planned, self.snap.cluster.network_defaults,
                                                  self.snap.nodes)
                planned.append(created)
                self.networks[net.name] = created
                self.out.add(create(created), Change.CREATE, "network", net.name, created.id)
                continue
            _refuse_taken(existing.spec.labels, self.name, "network", net.name)
            if existing.spec != net:
                raise FailedPrecondition(f"network {net.name} of stack {self.name} exists with other settings "
                                         f"(a network cannot be changed in place): remove the stack first, "
                                         f"or give the network another name")
            self.networks[net.name] = existing
            self.out.note("network", net.name, existing.id)
        for ref in self.spec.external_networks:
            self.networks[ref] = _external(self.snap.networks, ref, "network", self.name)

    # -------------------------------------------------------- secrets and configs

    def _plan_items(self, kind: str) -> None:
        stored: list[Item] = list(self.snap.secrets if kind == "secret" else self.snap.configs)
        wanted_list = self.spec.secrets if kind == "secret" else self.spec.configs
        for wanted in wanted_list:
            if not wanted.name:
                raise InvalidArgument(f"stack {self.name}: a {kind} needs a name")
            if wanted.name in self.items[kind]:
                raise InvalidArgument(f"stack {self.name}: {kind} {wanted.name} is declared twice")
            self.items[kind][wanted.name] = self._plan_item(kind, wanted, stored)
        externals = self.spec.external_secrets if kind == "secret" else self.spec.external_configs
        for ref in externals:
            self.items[kind][ref] = _external(stored, ref, kind, self.name)

    def _plan_item(self, kind: str, wanted, stored: list[Item]) -> Item:
        logical = wanted.name
        versions = [o for o in stored if owned_by(o.spec.labels, self.name)
                    and o.spec.labels.get(VERSIONED_LABEL) == logical]
        current = max(versions, key=lambda o: o.version, default=None)
        if current is None:
            clash = next((o for o in stored if o.spec.name == logical), None)
            if clash is not None:
                _refuse_taken(clash.spec.labels, self.name, kind, logical)
        spec = type(wanted)()
        spec.CopyFrom(wanted)
        spec.labels[NAMESPACE_LABEL] = self.name
        spec.labels[VERSIONED_LABEL] = logical
        if current is not None:
            spec.name = current.spec.name
            if current.spec == spec:
                self.out.note(kind, current.spec.name, current.id)
                return current
        version = current.version + 1 if current is not None else 1
        spec.name = logical if version == 1 else f"{logical}-v{version}"
        clash = next((o for o in stored if o.spec.name == spec.name), None)
        if clash is not None:
            raise AlreadyExists(f"{kind} {spec.name} already exists: it is not version {version} of "
                                f"{kind} {logical} of stack {self.name}; remove it or rename the {kind}")
        meta = pb.Meta(created_at_ns=self.now, updated_at_ns=self.now)
        obj: Item = pb.Secret(id=new_id(), meta=meta, spec=spec, version=version) if kind == "secret" \
            else pb.Config(id=new_id(), meta=meta, spec=spec, version=version)
        self.out.add(create(obj), Change.CREATE, kind, spec.name, obj.id)
        return obj

    # -------------------------------------------------------- services

    def _plan_service(self, wanted: specs.ServiceSpec) -> None:
        spec = specs.ServiceSpec()
        spec.CopyFrom(wanted)
        service_api.validate_spec(spec)
        if spec.name in self.services:
            raise InvalidArgument(f"stack {self.name}: service {spec.name} is declared twice")
        if spec.WhichOneof("mode") is None:
            spec.replicated.replicas = 1                 # Docker's default
        spec.labels[NAMESPACE_LABEL] = self.name
        placement.validate(placement.Demand.from_service(pb.Service(spec=spec)))
        self._resolve_networks(spec)
        self._resolve_items(spec)
        self.services[spec.name] = spec
        existing = next((s for s in self.snap.services if s.spec.name == spec.name), None)
        auth = self.registry_auths.get(registry_of(spec.task.container.image))
        if existing is None:
            service = pb.Service(id=new_id(), meta=pb.Meta(created_at_ns=self.now, updated_at_ns=self.now),
                                 spec=spec, spec_version=1, registry_auth=auth)
            self.out.add(create(self._with_ports(service)), Change.CREATE, "service", spec.name, service.id)
            return
        _refuse_taken(existing.spec.labels, self.name, "service", spec.name)
        new_auth = auth is not None and auth != existing.registry_auth
        if existing.spec == spec and not new_auth:
            self.out.note("service", spec.name, existing.id)
            return
        if spec.WhichOneof("mode") != existing.spec.WhichOneof("mode"):
            raise InvalidArgument(f"service {spec.name}: its mode ({existing.spec.WhichOneof('mode')}) cannot "
                                  f"be changed to {spec.WhichOneof('mode')}; remove the service first")
        service = existing if existing.spec == spec else \
            self._with_ports(updated_service(existing, spec, self.rollback, self.now))
        if new_auth and auth is not None:
            service = _with_auth(service, auth, self.now)
        self.out.add(update(service), Change.UPDATE, "service", spec.name, existing.id)

    def _with_ports(self, service: pb.Service) -> pb.Service:
        """The service with its published ports numbered (manager/allocator/ports.py), apart
        from every other service: stored, and planned in this same write."""
        others = {s.id: s for s in self.snap.services} | self.planned
        del service.ports[:]
        service.ports.extend(ports.allocate(service.spec, service.id, others.values()))
        self.planned[service.id] = service
        return service

    def _resolve_networks(self, spec: specs.ServiceSpec) -> None:
        seen: set[str] = set()
        for config in spec.task.networks:
            network = self._lookup(self.networks, config.target, "network", spec.name, "networks")
            if network.spec.ingress:
                raise InvalidArgument(f"service {spec.name}: the ingress network {network.spec.name} cannot be "
                                      "attached explicitly; publish a port instead")
            if network.id in seen:
                raise InvalidArgument(f"service {spec.name}: network {network.spec.name} is attached twice")
            seen.add(network.id)
            config.target = network.id
            service_api.check_addresses(spec.name, network, config.addresses)

    def _resolve_items(self, spec: specs.ServiceSpec) -> None:
        container = spec.task.container
        for ref in container.secrets:
            secret = self._lookup(self.items["secret"], ref.secret_name, "secret", spec.name, "secrets")
            ref.secret_name, ref.secret_id = secret.spec.name, secret.id
        for cref in container.configs:
            config = self._lookup(self.items["config"], cref.config_name, "config", spec.name, "configs")
            cref.config_name, cref.config_id = config.spec.name, config.id
        secret_api.fill_files(spec)

    def _lookup(self, known: dict, ref: str, kind: str, service: str, section: str):
        """A reference by the stack's full name or its short name (or an external's name)."""
        found = known.get(ref) or known.get(f"{self.name}_{ref}")
        if found is None:
            raise InvalidArgument(f"service {service}: {kind} {ref!r} is neither a {kind} of stack {self.name} "
                                  f"nor declared external (top-level {section}:)")
        return found

    def _check_dependencies(self) -> None:
        for dep in self.spec.dependencies:
            for name in (dep.service, dep.depends_on):
                if name not in self.services and f"{self.name}_{name}" not in self.services:
                    raise InvalidArgument(f"stack {self.name}: depends_on names {name!r}, which is not a "
                                          "service of the stack")

    def _prune_services(self) -> Plan:
        removals = Plan()
        wanted = {s.name for s in self.spec.services}
        for service in sorted(self.snap.services, key=lambda s: s.spec.name):
            if owned_by(service.spec.labels, self.name) and service.spec.name not in wanted and self.prune:
                removals.add(delete(service), Change.REMOVE, "service", service.spec.name, service.id)
                self.removed_services.add(service.id)
        return removals

    # -------------------------------------------------------- what no one uses any longer

    def _remaining_specs(self) -> list[specs.ServiceSpec]:
        """Every service spec as it will be after the write."""
        out = list(self.services.values())
        out += [s.spec for s in self.snap.services
                if s.id not in self.removed_services and s.spec.name not in self.services]
        return out

    def _remove_unused(self) -> None:
        remaining = self._remaining_specs()
        used_networks = {c.target for s in remaining for c in s.task.networks}
        declared = {n.name for n in self.spec.networks}
        for network in self.snap.networks:
            if owned_by(network.spec.labels, self.name) and network.spec.name not in declared \
                    and network.id not in used_networks:
                self.out.add(delete(network), Change.REMOVE, "network", network.spec.name, network.id)
        used = _used_items(remaining)
        for kind, stored in (("secret", self.snap.secrets), ("config", self.snap.configs)):
            current = {o.id for o in self.items[kind].values()}
            for obj in stored:
                if owned_by(obj.spec.labels, self.name) and obj.id not in current \
                        and (kind, obj.id) not in used and (kind, obj.spec.name) not in used:
                    self.out.add(delete(obj), Change.REMOVE, kind, obj.spec.name, obj.id)

    # -------------------------------------------------------- the stack object

    def _plan_stack(self) -> None:
        existing = self.snap.stack(self.name)
        if existing is None:
            stack = pb.Stack(id=new_id(), meta=pb.Meta(created_at_ns=self.now, updated_at_ns=self.now),
                             spec=self.spec, generation=1)
            self.out.actions.append(create(stack))
            self.out.stack = stack
            return
        self.out.stack = existing
        if existing.spec == self.spec:
            return                  # objects may change (a service scaled by hand): the spec did not
        stack = pb.Stack()
        stack.CopyFrom(existing)
        stack.previous_spec.CopyFrom(existing.spec)
        stack.spec.CopyFrom(self.spec)
        stack.generation += 1
        stack.meta.updated_at_ns = self.now
        self.out.actions.append(update(stack))
        self.out.stack = stack


def updated_service(existing: pb.Service, spec: specs.ServiceSpec, rollback: bool, now_ns: int) -> pb.Service:
    """The service rolling out `spec`, as `service update` (or `service rollback`) leaves it."""
    service = pb.Service()
    service.CopyFrom(existing)
    service.previous_spec.CopyFrom(existing.spec)
    service.spec.CopyFrom(spec)
    service.spec_version += 1
    state = pb.UpdateStatus.ROLLBACK_STARTED if rollback else pb.UpdateStatus.UPDATING
    message = "stack rollback" if rollback else "update in progress"
    service.update_status.CopyFrom(pb.UpdateStatus(state=state, started_at_ns=now_ns, message=message))
    service.meta.updated_at_ns = now_ns
    return service


def _with_auth(service: pb.Service, auth: pb.RegistryAuth, now_ns: int) -> pb.Service:
    """The service with new credentials (its spec unchanged, so no task restarts)."""
    changed = pb.Service()
    changed.CopyFrom(service)
    changed.registry_auth.CopyFrom(auth)
    changed.meta.updated_at_ns = now_ns
    return changed


def _used_items(service_specs: Iterable[specs.ServiceSpec]) -> set[tuple[str, str]]:
    """("secret" | "config", ID or name) of every secret and config the services use."""
    used: set[tuple[str, str]] = set()
    for spec in service_specs:
        for s in spec.task.container.secrets:
            used |= {("secret", s.secret_id), ("secret", s.secret_name)}
        for c in spec.task.container.configs:
            used |= {("config", c.config_id), ("config", c.config_name)}
    return used


def _check_stack(spec: specs.StackSpec) -> None:
    if not STACK_NAME.match(spec.name):
        raise InvalidArgument(f"invalid stack name {spec.name!r}: 1 to 63 letters, digits, '_.-', "
                              "starting with a letter or digit")
    for service in spec.services:
        if not service.name.startswith(spec.name + "_"):
            raise InvalidArgument(f"service {service.name!r} is not named after stack {spec.name} "
                                  f"({spec.name}_<name>)")


def _refuse_taken(labels, stack: str, kind: str, name: str) -> None:
    if not owned_by(labels, stack):
        owner = labels.get(NAMESPACE_LABEL)
        where = f"by stack {owner}" if owner else "outside any stack"
        raise AlreadyExists(f"{kind} {name} already exists ({where}): stack {stack} cannot take it over")


def _external(objects, ref: str, kind: str, stack: str):
    found = next((o for o in objects if o.spec.name == ref), None) or next((o for o in objects if o.id == ref), None)
    if found is None:
        raise NotFound(f"stack {stack}: external {kind} {ref} not found: create it first "
                       f"(covey {kind} create {ref} ...)")
    return found


def check_size(stack: str, actions: list[store_pb2.StoreAction]) -> None:
    size = store_pb2.StoreBatch(actions=actions).ByteSize()
    if size > MAX_WRITE_BYTES:
        raise InvalidArgument(f"stack {stack} is too big to change in one write: {size / 2**20:.1f} MiB of "
                              f"{MAX_WRITE_BYTES / 2**20:.0f} MiB (secrets and configs count in full); "
                              "split it into several stacks")


# ---------------------------------------------------------------- remove and rollback

def remove(snap: Snapshot, ref: str) -> Plan:
    """Every service, network, secret and config of the stack, and the Stack object, in one
    write (volumes stay, as Docker's). What a service outside the stack still uses stays too:
    deleting it would break that service."""
    stack = snap.stack(ref)
    name = stack.spec.name if stack is not None else ref
    out = Plan()
    ours = [s for s in snap.services if owned_by(s.spec.labels, name)]
    for service in sorted(ours, key=lambda s: s.spec.name):
        out.add(delete(service), Change.REMOVE, "service", service.spec.name, service.id)
    others = [s.spec for s in snap.services if not owned_by(s.spec.labels, name)]
    used_networks = {c.target for s in others for c in s.task.networks}
    used = _used_items(others)
    for secret in snap.secrets:
        if owned_by(secret.spec.labels, name) and not {("secret", secret.id), ("secret", secret.spec.name)} & used:
            out.add(delete(secret), Change.REMOVE, "secret", secret.spec.name, secret.id)
    for config in snap.configs:
        if owned_by(config.spec.labels, name) and not {("config", config.id), ("config", config.spec.name)} & used:
            out.add(delete(config), Change.REMOVE, "config", config.spec.name, config.id)
    for network in snap.networks:
        if owned_by(network.spec.labels, name) and network.id not in used_networks:
            out.add(delete(network), Change.REMOVE, "network", network.spec.name, network.id)
    if stack is not None:
        out.actions.append(delete(stack))
    if not out.actions:
        raise NotFound(f"nothing found in stack {ref}")
    check_size(name, out.actions)
    return out


def rollback(snap: Snapshot, ref: str, now_ns: int | None = None) -> Plan:
    """The stack back to its previous spec, as one change: services that were pruned since
    come back, services added since go, changed secrets get a version with the old content."""
    stack = snap.stack(ref)
    if stack is None:
        raise NotFound(f"stack {ref} not found")
    if not stack.HasField("previous_spec"):
        raise FailedPrecondition(f"stack {stack.spec.name} has no previous deploy to roll back to")
    return deploy(snap, stack.previous_spec, prune=True, rollback=True, now_ns=now_ns)


def public(stack: pb.Stack) -> pb.Stack:
    """The stack as the API shows it: without the data of its secrets."""
    shown = pb.Stack()
    shown.CopyFrom(stack)
    for spec in (shown.spec, shown.previous_spec):
        for secret in spec.secrets:
            secret.ClearField("data")
    return shown

