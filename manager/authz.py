"""Who is calling, and what they may do (DESIGN.md section 4).

A TCP caller is a node only if its certificate verifies against this cluster's
CA (not merely the TLS layer's trust store, which also admits the public
anonymous CA used for joining), names this cluster, and is not on the removed
list. The root-only unix socket speaks for the node itself.
"""
from dataclasses import dataclass

from covey import pki
from covey.errors import NOT_A_MANAGER, PermissionDenied, Unauthenticated
from proto import covey_pb2 as pb


@dataclass(frozen=True)
class Caller:
    local: bool = False
    node_id: str | None = None
    role: int | None = None

    @property
    def anonymous(self) -> bool:
        return not self.local and self.node_id is None


def identify(context, cluster: pb.Cluster) -> Caller:
    if context.peer().startswith("unix:"):
        return Caller(local=True)
    certs = context.auth_context().get("x509_pem_cert") or []
    if not certs or not pki.verify_signed_by(certs[0], cluster.root_ca.ca_cert_pem):
        return Caller()
    try:
        identity = pki.cert_identity(certs[0])
    except ValueError:
        return Caller()
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
