"""Lookups over the store that more than one package needs: the cluster object, and a node,
service, network, secret or config by the reference a user gives (full ID, name, or unique ID prefix)."""
from collections.abc import Callable, Sequence
from typing import TypeVar

from covey.errors import FailedPrecondition, InvalidArgument, NotFound
from manager.state.store import Store
from proto import objects_pb2 as pb

Named = TypeVar("Named", pb.Node, pb.Service, pb.Network, pb.Secret, pb.Config)


def cluster_of(store: Store) -> pb.Cluster:
    """The swarm's cluster object (a copy); FailedPrecondition before bootstrap wrote it."""
    clusters = store.clusters.list()
    if not clusters:
        raise FailedPrecondition("the swarm is not initialized yet")
    return clusters[0]


def find_node(store: Store, ref: str) -> pb.Node:
    """A node by full ID, hostname, or unique ID prefix (as Docker resolves it)."""
    if not ref:
        raise InvalidArgument("a node ID or hostname is required")
    return _resolve(store.nodes.list(), ref, "node", lambda n: n.description.hostname)


def find_service(store: Store, ref: str) -> pb.Service:
    """A service by full ID, name, or unique ID prefix."""
    if not ref:
        raise InvalidArgument("a service ID or name is required")
    return _resolve(store.services.list(), ref, "service", lambda s: s.spec.name)


def find_network(store: Store, ref: str) -> pb.Network:
    """A network by full ID, name, or unique ID prefix."""
    if not ref:
        raise InvalidArgument("a network ID or name is required")
    return _resolve(store.networks.list(), ref, "network", lambda n: n.spec.name)


def find_secret(store: Store, ref: str) -> pb.Secret:
    """A secret (data included: callers blank it before answering) by full ID, name, or
    unique ID prefix."""
    if not ref:
        raise InvalidArgument("a secret ID or name is required")
    return _resolve(store.secrets.list(), ref, "secret", lambda s: s.spec.name)


def find_config(store: Store, ref: str) -> pb.Config:
    """A config by full ID, name, or unique ID prefix."""
    if not ref:
        raise InvalidArgument("a config ID or name is required")
    return _resolve(store.configs.list(), ref, "config", lambda c: c.spec.name)


def _resolve(objects: Sequence[Named], ref: str, kind: str, name_of: Callable[[Named], str]) -> Named:
    """The object whose ID is `ref`, else the one named `ref`, else the one whose ID starts
    with `ref`; NotFound when none is, InvalidArgument when several are."""
    for obj in objects:
        if obj.id == ref:
            return obj
    matches = [o for o in objects if name_of(o) == ref] or [o for o in objects if o.id.startswith(ref)]
    if not matches:
        raise NotFound(f"{kind} {ref} not found")
    if len(matches) > 1:
        raise InvalidArgument(f"{kind} {ref} is ambiguous ({len(matches)} matches): use a longer ID prefix")
    return matches[0]
