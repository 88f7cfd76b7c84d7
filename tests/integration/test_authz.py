"""Authorization over real mutual TLS: every method of every service, called by every kind
of caller, gets exactly what manager/ca/authz.py POLICY declares for it."""
import importlib
import pkgutil

import grpc
import pytest
from google.protobuf import message_factory

import proto
from covey import pki, tls
from covey.errors import NOT_A_MANAGER
from manager.ca import authz
from manager.ca.authz import ANYONE, MANAGER, NODE, POLICY
from manager.state.actions import update
from proto import ca_pb2, ca_pb2_grpc, control_pb2, local_pb2
from proto import objects_pb2 as pb
from tests.integration.inproc import start_manager

DENIED = ("PERMISSION_DENIED", "UNAUTHENTICATED")
UNAUTHENTICATED = ("UNAUTHENTICATED", "this call needs a node certificate of this swarm")
REMOVED = ("PERMISSION_DENIED", "was removed from the swarm")
NOT_MANAGER = ("PERMISSION_DENIED", NOT_A_MANAGER)
# Who is refused what, and how, by the access a method declares; anyone else gets through.
REFUSALS = {
    ANYONE: {},
    NODE: {"anonymous": UNAUTHENTICATED, "other-cluster": UNAUTHENTICATED, "removed": REMOVED},
    MANAGER: {"anonymous": UNAUTHENTICATED, "other-cluster": UNAUTHENTICATED, "removed": REMOVED,
              "worker": NOT_MANAGER},
}


def _services():
    """(module, service descriptor) of every service in proto/."""
    for info in pkgutil.iter_modules(proto.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"proto.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                yield module, service


def _methods(local: bool):
    """(full method name, method descriptor) of the services served on TCP, or of the local ones."""
    return [(f"/{service.full_name}/{method.name}", method)
            for module, service in _services() if (module is local_pb2) == local
            for method in service.methods]


def test_every_tcp_method_is_declared_and_nothing_else():
    names = [name for name, _ in _methods(local=False)]
    undeclared = [name for name in names if name not in POLICY]
    assert not undeclared, f"declare who may call these in manager/ca/authz.py POLICY: {undeclared}"
    assert set(POLICY) == set(names)
    assert {name.split("/")[1] for name in names} == {"covey.CA", "covey.Dispatcher", "covey.LogBroker",
                                                      "covey.Control"}


def test_policy_follows_the_rules_of_design_section_4():
    """Anonymous callers: the CA certificate and a join. Workers: the dispatcher, the log
    broker and their own renewal. Everything else: managers only."""
    by_access = {access: {n for n, a in POLICY.items() if a is access} for access in authz.Access}
    assert by_access[ANYONE] == {"/covey.CA/GetRootCA", "/covey.CA/IssueNodeCertificate"}
    node_services = ("/covey.Dispatcher/", "/covey.LogBroker/")
    assert by_access[NODE] == ({n for n, _ in _methods(local=False) if n.startswith(node_services)}
                               | {"/covey.CA/RenewNodeCertificate"})
    assert by_access[MANAGER] == set(POLICY) - by_access[ANYONE] - by_access[NODE]


class _Server:
    def add_generic_rpc_handlers(self, handlers):
        pass

    def add_registered_method_handlers(self, name, handlers):
        pass


def test_registration_refuses_a_method_without_a_declaration():
    service = ca_pb2.DESCRIPTOR.services_by_name["CA"]
    handlers = {m.name: None for m in service.methods}
    authz.serve(_Server(), service, handlers, cluster=None)  # all declared: registers
    policy = {n: a for n, a in POLICY.items() if n != "/covey.CA/RenewNodeCertificate"}
    with pytest.raises(LookupError, match="/covey.CA/RenewNodeCertificate: no access declared"):
        authz.serve(_Server(), service, handlers, cluster=None, policy=policy)
    with pytest.raises(LookupError, match="no handler"):
        authz.serve(_Server(), service, {"GetRootCA": None}, cluster=None)


def _request(method):
    request = message_factory.GetMessageClass(method.input_type)()
    if method.full_name == "covey.CA.RenewNodeCertificate":
        request.csr_pem = pki.make_csr(pki.new_key_pem())
    return request


async def _call(channel, name, method) -> tuple[str, str]:
    """(status code name, details) of one call with a default request (the first answer of a
    server stream; a client stream sends that one request)."""
    kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
            (True, False): channel.stream_unary, (True, True): channel.stream_stream}
    multicallable = kind[method.client_streaming, method.server_streaming](
        name, request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=message_factory.GetMessageClass(method.output_type).FromString)
    request = _request(method)
    call = multicallable(iter([request]) if method.client_streaming else request, timeout=5)
    try:
        if method.server_streaming:
            await call.read()
            call.cancel()
        else:
            await call
        return "OK", ""
    except grpc.RpcError as exc:
        return exc.code().name, exc.details()


async def _outcomes(addr, ca_cert, key, cert, methods):
    async with tls.secure_channel(addr, ca_cert, key, cert) as channel:
        return {name: await _call(channel, name, method) for name, method in methods}


async def _join_worker(addr, cluster) -> tuple[bytes, bytes]:
    """A real worker: a node in the store, with the certificate the CA gave it."""
    key = pki.new_key_pem()
    async with tls.secure_channel(addr, cluster.root_ca.ca_cert_pem, *tls.anonymous_identity()) as channel:
        request = ca_pb2.IssueNodeCertificateRequest(token=cluster.join_tokens.worker, hostname="w1",
                                                     csr_pem=pki.make_csr(key))
        response = await ca_pb2_grpc.CAStub(channel).IssueNodeCertificate(request, timeout=5)
    return key, response.cert_pem


def test_every_method_answers_every_caller_as_declared(tmp_path, run):
    async def scenario():
        node = await start_manager(tmp_path)
        try:
            store, state = node.manager.store, node.state
            cluster = store.clusters.list()[0]
            ca_cert, ca_key = cluster.root_ca.ca_cert_pem, cluster.root_ca.ca_key_pem
            addr = node.membership.advertise_addr

            def issued(node_id, role, cluster_id=cluster.id, ca=(ca_cert, ca_key)):
                key = pki.new_key_pem()
                return key, pki.sign_node_cert(ca[0], ca[1], pki.make_csr(key), node_id, role, cluster_id)

            removed_id = "r" * 25
            cluster.removed_nodes.append(removed_id)
            await store.write([update(cluster)])
            identities = {
                "manager": (state.key(), state.cert()),
                "worker": await _join_worker(addr, cluster),
                "anonymous": tls.anonymous_identity(),
                "other-cluster": issued("o" * 25, pb.MANAGER, cluster_id="x" * 25),
                "removed": issued(removed_id, pb.MANAGER),  # removal beats the role
            }
            served = _methods(local=False)

            def trusted() -> bytes:  # the manager's RotateRootCA call starts a rotation: trust both CAs
                return pki.trust_bundle(store.clusters.list()[0].root_ca)
            table = {who: await _outcomes(addr, trusted(), *ident, served) for who, ident in identities.items()}
            local = await _outcomes(addr, trusted(), *identities["manager"], _methods(local=True))
            foreign_ca = pki.create_root_ca(cluster.id)
            foreign = await _outcomes(addr, trusted(), *issued("f" * 25, pb.MANAGER, ca=foreign_ca), served[:3])
            return table, local, foreign
        finally:
            await node.close()

    table, local, foreign = run(scenario())
    wrong = []
    for who, outcomes in table.items():
        for name, (code, details) in outcomes.items():
            refusal = REFUSALS[POLICY[name]].get(who)
            if (refusal is None and code in DENIED) or (refusal and (code != refusal[0] or refusal[1] not in details)):
                wrong.append(f"{who} {name}: {code} {details!r}, expected {refusal or 'no refusal'}")
    assert not wrong, "\n".join(wrong)
    # The legitimate callers really got through (an empty request then fails on its own merits).
    assert table["worker"]["/covey.Dispatcher/Session"] == ("OK", "")
    assert table["worker"]["/covey.CA/RenewNodeCertificate"] == ("OK", "")
    assert table["manager"]["/covey.Control/ListNodes"] == ("OK", "")
    assert table["manager"]["/covey.Control/UpdateNode"][0] == "INVALID_ARGUMENT"
    assert table["anonymous"]["/covey.CA/GetRootCA"] == ("OK", "")
    # The local services are served on the root-only unix socket, never on TCP.
    assert {code for code, _ in local.values()} == {"UNIMPLEMENTED"}
    # A certificate of another CA does not even get through the TLS handshake.
    assert {code for code, _ in foreign.values()} == {"UNAVAILABLE"}


def test_join_token_grants_a_certificate_once_and_rotation_kills_the_old(tmp_path, run):
    async def scenario():
        node = await start_manager(tmp_path)
        try:
            cluster = node.manager.store.clusters.list()[0]
            addr = node.membership.advertise_addr
            ca_cert = cluster.root_ca.ca_cert_pem
            anon = tls.anonymous_identity()

            async def issue(token):
                async with tls.secure_channel(addr, ca_cert, *anon) as channel:
                    request = ca_pb2.IssueNodeCertificateRequest(token=token, hostname="w1",
                                                             csr_pem=pki.make_csr(pki.new_key_pem()))
                    try:
                        return await ca_pb2_grpc.CAStub(channel).IssueNodeCertificate(request, timeout=5)
                    except grpc.RpcError as exc:
                        return exc.details()

            first = await issue(cluster.join_tokens.worker)
            nodes_after_join = len(node.manager.store.nodes.list())
            await node.manager.control.handlers["JoinToken"](
                control_pb2.JoinTokenRequest(role=pb.WORKER, rotate=True), None, authz.LOCAL)
            stale = await issue(cluster.join_tokens.worker)
            garbage = await issue("garbage")
            return first, nodes_after_join, stale, garbage, len(node.manager.store.nodes.list())
        finally:
            await node.close()

    first, joined, stale, garbage, final = run(scenario())
    ident = pki.cert_identity(first.cert_pem)
    assert ident.node_id == first.node_id and ident.role == pb.WORKER
    assert joined == 2
    assert "invalid join token" in stale and "invalid join token" in garbage
    assert final == 2  # refused joins create nothing
