"""The authorization matrix over real mutual TLS: who may call what."""
import grpc

from inproc import start_manager
from covey import pki, tls
from proto import ca_pb2
from proto import ca_pb2_grpc
from proto import control_pb2
from proto import control_pb2_grpc
from proto import dispatcher_pb2
from proto import dispatcher_pb2_grpc
from proto import objects_pb2 as pb

async def _first(call):
    """The first answer on a stream (its error, if the dispatcher refuses)."""
    return await call.read()


def _calls(channel):
    control, dispatcher, ca = control_pb2_grpc.ControlStub(channel), dispatcher_pb2_grpc.DispatcherStub(channel), ca_pb2_grpc.CAStub(channel)
    return {
        "control.ListNodes": lambda: control.ListNodes(control_pb2.ListNodesRequest(), timeout=5),
        "control.JoinToken": lambda: control.JoinToken(control_pb2.JoinTokenRequest(), timeout=5),
        "control.UpdateNode": lambda: control.UpdateNode(control_pb2.UpdateNodeRequest(node="x"), timeout=5),
        "dispatcher.Heartbeats": lambda: _first(dispatcher.Heartbeats(iter([dispatcher_pb2.HeartbeatRequest(session_id="x")]),
                                                                     timeout=5)),
        "ca.GetRootCA": lambda: ca.GetRootCA(ca_pb2.GetRootCARequest(), timeout=5),
        "ca.Renew": lambda: ca.RenewNodeCertificate(ca_pb2.RenewNodeCertificateRequest(
            csr_pem=pki.make_csr(pki.new_key_pem())), timeout=5),
    }


async def _outcomes(addr, ca_cert, key, cert):
    results = {}
    async with tls.secure_channel(addr, ca_cert, key, cert) as channel:
        for name, call in _calls(channel).items():
            try:
                await call()
                results[name] = "OK"
            except grpc.RpcError as exc:
                results[name] = exc.code().name
    return results


def test_authorization_matrix(tmp_path, run):
    async def scenario():
        node = await start_manager(tmp_path)
        try:
            state = node.state
            cluster = node.manager.store.clusters.list()[0]
            ca_cert, ca_key = cluster.root_ca.ca_cert_pem, cluster.root_ca.ca_key_pem
            addr = node.membership.advertise_addr

            def issued(node_id, role, cluster_id=cluster.id, ca=(ca_cert, ca_key)):
                key = pki.new_key_pem()
                return key, pki.sign_node_cert(ca[0], ca[1], pki.make_csr(key), node_id, role, cluster_id)

            worker_id = "w" * 25
            foreign_ca = pki.create_root_ca(cluster.id)
            identities = {
                "manager": (state.key(), state.cert()),
                "worker": issued(worker_id, pb.WORKER),
                "anonymous": tls.anonymous_identity(),
                "other-cluster": issued("o" * 25, pb.MANAGER, cluster_id="x" * 25),
            }
            table = {who: await _outcomes(addr, ca_cert, *ident) for who, ident in identities.items()}
            foreign = await _outcomes(addr, ca_cert, *issued("f" * 25, pb.MANAGER, ca=foreign_ca))
            return table, foreign
        finally:
            await node.close()

    table, foreign = run(scenario())
    control = ["control.ListNodes", "control.JoinToken", "control.UpdateNode"]
    # Managers pass authorization (UpdateNode then fails on the unknown node, as it should).
    assert [table["manager"][c] for c in control] == ["OK", "OK", "NOT_FOUND"]
    assert all(table["worker"][c] == "PERMISSION_DENIED" for c in control)
    for who in ("anonymous", "other-cluster"):
        assert all(table[who][c] == "UNAUTHENTICATED" for c in control), who
        assert table[who]["dispatcher.Heartbeats"] == "UNAUTHENTICATED"
        assert table[who]["ca.Renew"] == "UNAUTHENTICATED"
        assert table[who]["ca.GetRootCA"] == "OK"
    # A node with a valid certificate reaches the dispatcher (and is told its session is unknown).
    assert table["worker"]["dispatcher.Heartbeats"] == "NOT_FOUND"
    # A certificate of another CA does not even get through the TLS handshake.
    assert set(foreign.values()) == {"UNAVAILABLE"}


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
            await node.manager.control.JoinToken.__wrapped__(
                node.manager.control, control_pb2.JoinTokenRequest(role=pb.WORKER, rotate=True), _LocalContext())
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


class _LocalContext:
    """What the unix socket looks like to a handler: the node itself calling."""

    def peer(self):
        return "unix:/run/covey/covey.sock"

    def auth_context(self):
        return {}
