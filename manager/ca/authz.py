"""Who is calling, and what they may do (DESIGN.md section 4).

A TCP caller is a node only if its certificate verifies against this cluster's
CA (not merely the TLS layer's trust store, which also admits the public
anonymous CA used for joining), names this cluster, and is not on the removed
list. The root-only unix socket speaks for the node itself.
"""
import functools
from dataclasses import dataclass

from covey import pki
from covey.errors import NOT_A_MANAGER, PermissionDenied, Unauthenticated
from proto import objects_pb2 as pb
@dataclass(frozen=True)
class Caller:
    local: bool = False
    node_id: str | None = None
    role: int | None = None

    @property
    def anonymous(self) -> bool:
        return not self.local and self.node_id is None


# Certificates whose signature was checked. Every heartbeat and status report is a call; a
# signature check per call was the largest cost of a heartbeat on a leader with 1,000 nodes.
VERIFIED_CERTS = 8192


@functools.lru_cache(maxsize=VERIFIED_CERTS)
def _verified(cert_pem: bytes, ca_cert_pem: bytes) -> tuple | None:
    """(identity, validity) of a certificate this CA issued; None for any other."""
    validity = pki.validity_if_issued_by(cert_pem, ca_cert_pem)
    if validity is None:
        return None
    try:
        return pki.cert_identity(cert_pem), validity
    except ValueError:
        return None


def identify(context, cluster: pb.Cluster) -> Caller:
    if context.peer().startswith("unix:"):
        return Caller(local=True)
    certs = context.auth_context().get("x509_pem_cert") or []
    verified = _verified(certs[0], cluster.root_ca.ca_cert_pem) if certs else None
    if verified is None or not pki.within(verified[1]):  # expiry is checked on every call
        return Caller()
    identity = verified[0]
    if identity.cluster_id != cluster.id:
        return Caller()
    if identity.node_id in cluster.removed_nodes:
        raise PermissionDenied(f"node {identity.node_id} was removed from the swarm")
    return Caller(node_id=identity.node_id, role=identity.role)


def require_node(caller: Caller) -> Caller:
    if caller.anonymous:
        raise Unauthenticated("this call needs a node certificate of this swarm")
    return caller


def require_manager(caller: Caller) -> Caller:
    require_node(caller)
    if not caller.local and caller.role != pb.MANAGER:
        raise PermissionDenied(f"{NOT_A_MANAGER}: worker nodes can't be used to view or modify "
                               "cluster state; run this command on a manager node")
    return caller
