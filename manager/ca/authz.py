"""Who is calling, and what they may do (docs/design.md, "Security").

Every RPC served on TCP is declared once, in POLICY, and enforced by one wrapper put around
its handler when its service is registered (serve): no handler authorizes by itself, and a
method without a declaration cannot be served at all.

A TCP caller is a node only if its certificate verifies against this cluster's
CA (not merely the TLS layer's trust store, which also admits the public
anonymous CA used for joining), names this cluster, and is not on the removed
list. The root-only unix socket is not served through here: coveyd/localapi.py
passes LOCAL, the node itself.
"""
import enum
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from covey import pki
from covey.errors import NOT_A_MANAGER, CoveyError, FailedPrecondition, PermissionDenied, Unauthenticated
from proto import objects_pb2 as pb


@dataclass(frozen=True)
class Caller:
    node_id: str | None = None
    role: pb.NodeRole | None = None
    local: bool = False  # the node itself, on its root-only unix socket


def calling_node(caller: Caller | None) -> str:
    """The ID of the node making a NODE or MANAGER call: authorize gives every such TCP call
    one; an anonymous (ANYONE) or local caller has none, and may not make the calls that ask."""
    if caller is None or caller.node_id is None:
        raise FailedPrecondition("this call must come from a node of the swarm, over its certificate")
    return caller.node_id


LOCAL = Caller(local=True)


class Access(enum.Enum):
    ANYONE = "anyone"    # even an anonymous certificate: a node that is joining
    NODE = "node"        # a worker or a manager of this swarm
    MANAGER = "manager"  # a manager of this swarm


ANYONE, NODE, MANAGER = Access.ANYONE, Access.NODE, Access.MANAGER

POLICY: dict[str, Access] = {
    "/covey.CA/GetRootCA": ANYONE,
    "/covey.CA/IssueNodeCertificate": ANYONE,  # the join token is checked inside
    "/covey.CA/RenewNodeCertificate": NODE,    # its own: the certificate names the node
    "/covey.Dispatcher/Session": NODE,
    "/covey.Dispatcher/Heartbeats": NODE,
    "/covey.Dispatcher/Assignments": NODE,
    "/covey.Dispatcher/TaskStatusReports": NODE,
    "/covey.Dispatcher/Leader": NODE,
    "/covey.Dispatcher/Leave": NODE,
    "/covey.LogBroker/LogSubscriptions": NODE,
    "/covey.LogBroker/PublishLogs": NODE,
    "/covey.Control/GetCluster": MANAGER,
    "/covey.Control/JoinToken": MANAGER,
    "/covey.Control/UpdateCluster": MANAGER,
    "/covey.Control/UnlockKey": MANAGER,       # the key that opens every manager's keys at rest
    "/covey.Control/RotateRootCA": MANAGER,
    "/covey.Control/ListNodes": MANAGER,
    "/covey.Control/GetNode": MANAGER,
    "/covey.Control/UpdateNode": MANAGER,
    "/covey.Control/RemoveNode": MANAGER,
    "/covey.Control/CreateService": MANAGER,
    "/covey.Control/ListServices": MANAGER,
    "/covey.Control/GetService": MANAGER,
    "/covey.Control/ScaleService": MANAGER,
    "/covey.Control/UpdateService": MANAGER,
    "/covey.Control/RemoveService": MANAGER,
    "/covey.Control/ServiceLogs": MANAGER,
    "/covey.Control/ListTasks": MANAGER,
    "/covey.Control/Backup": MANAGER,          # the CA key, Raft key and join tokens are in it
    "/covey.Control/CreateNetwork": MANAGER,
    "/covey.Control/ListNetworks": MANAGER,
    "/covey.Control/GetNetwork": MANAGER,
    "/covey.Control/RemoveNetwork": MANAGER,
    "/covey.Control/PruneNetworks": MANAGER,
    "/covey.Control/DeployStack": MANAGER,
    "/covey.Control/ListStacks": MANAGER,
    "/covey.Control/GetStack": MANAGER,
    "/covey.Control/RemoveStack": MANAGER,
    "/covey.Control/RollbackStack": MANAGER,
    "/covey.Control/CreateSecret": MANAGER,
    "/covey.Control/ListSecrets": MANAGER,
    "/covey.Control/GetSecret": MANAGER,
    "/covey.Control/RemoveSecret": MANAGER,
    "/covey.Control/CreateConfig": MANAGER,
    "/covey.Control/ListConfigs": MANAGER,
    "/covey.Control/GetConfig": MANAGER,
    "/covey.Control/RemoveConfig": MANAGER,
}

# (request or request iterator, context, Caller: None for ANYONE) -> an awaitable response, or
# an async iterator of responses for a server-streaming method. Any for the request and the
# result: their types depend on the method, which only its descriptor says (_guarded).
Handler = Callable[[Any, grpc.aio.ServicerContext, Caller | None], Any]

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


def identify(context, cluster: pb.Cluster) -> Caller | None:
    """The node of this swarm the call's certificate names; None when it names none."""
    certs = context.auth_context().get("x509_pem_cert") or []
    verified = _verified(certs[0], pki.trust_bundle(cluster.root_ca)) if certs else None
    if verified is None or not pki.within(verified[1]):  # expiry is checked on every call
        return None
    identity = verified[0]
    if identity.cluster_id != cluster.id:
        return None
    if identity.node_id in cluster.removed_nodes:
        raise PermissionDenied(f"node {identity.node_id} was removed from the swarm")
    return Caller(node_id=identity.node_id, role=identity.role)


def authorize(access: Access, context, cluster: Callable[[], pb.Cluster]) -> Caller | None:
    if access is ANYONE:
        return None  # not even asked: a removed node may still fetch the public CA certificate
    caller = identify(context, cluster())
    if caller is None:
        raise Unauthenticated("this call needs a node certificate of this swarm")
    if access is MANAGER and caller.role != pb.MANAGER:
        raise PermissionDenied(f"{NOT_A_MANAGER}: worker nodes can't be used to view or modify "
                               "cluster state; run this command on a manager node")
    return caller


def serve(server, service: ServiceDescriptor, handlers: Mapping[str, Handler],
          cluster: Callable[[], pb.Cluster], policy: Mapping[str, Access] = POLICY) -> None:
    """Register `service` on `server`, each method behind the access POLICY declares for it.
    LookupError when a method has no declaration or no handler, or a handler no method."""
    methods = {}
    for method in service.methods:
        name = f"/{service.full_name}/{method.name}"
        if name not in policy:
            raise LookupError(f"{name}: no access declared for it in manager/ca/authz.py POLICY")
        if method.name not in handlers:
            raise LookupError(f"{name}: no handler")
        methods[method.name] = _method_handler(method, _guarded(method, policy[name], handlers[method.name], cluster))
    if unknown := set(handlers) - set(methods):
        raise LookupError(f"{service.full_name} has no methods {sorted(unknown)}")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, methods),))
    server.add_registered_method_handlers(service.full_name, methods)


def _guarded(method: MethodDescriptor, access: Access, handler: Handler, cluster):
    """The handler behind its authorization; a CoveyError aborts the call with its code."""
    if method.server_streaming:
        async def streaming(request, context):
            try:
                async for message in handler(request, context, authorize(access, context, cluster)):
                    yield message
            except CoveyError as exc:
                await context.abort(exc.code, str(exc), trailing_metadata=exc.metadata())
        return streaming

    async def unary(request, context):
        try:
            return await handler(request, context, authorize(access, context, cluster))
        except CoveyError as exc:
            await context.abort(exc.code, str(exc), trailing_metadata=exc.metadata())
    return unary


_HANDLER_KINDS = {(False, False): grpc.unary_unary_rpc_method_handler,
                  (False, True): grpc.unary_stream_rpc_method_handler,
                  (True, False): grpc.stream_unary_rpc_method_handler,
                  (True, True): grpc.stream_stream_rpc_method_handler}


def _method_handler(method: MethodDescriptor, behaviour) -> grpc.RpcMethodHandler:
    request = message_factory.GetMessageClass(method.input_type)
    response = message_factory.GetMessageClass(method.output_type)
    kind = _HANDLER_KINDS[method.client_streaming, method.server_streaming]
    return kind(behaviour, request_deserializer=request.FromString,
                response_serializer=response.SerializeToString)
