"""The CA server: hands out the root certificate, and node certificates for a valid token."""
import datetime
import logging
import time

from covey import addr, pki
from covey.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from covey.ids import new_id
from manager.ca import authz
from manager.state import store as st
from manager.state.actions import create, modify
from manager.state.queries import cluster_of
from proto import ca_pb2
from proto import objects_pb2 as pb

log = logging.getLogger(__name__)


def token_role(cluster: pb.Cluster, token: str) -> pb.NodeRole:
    """The role a join token grants; InvalidArgument for any token that grants none."""
    digest, _ = pki.parse_token(token)
    if digest != cluster.root_ca.ca_digest:
        raise InvalidArgument(f"{pki.INVALID_TOKEN}: it was made for another swarm's CA")
    for role, current in ((pb.WORKER, cluster.join_tokens.worker), (pb.MANAGER, cluster.join_tokens.manager)):
        if pki.token_matches(token.strip(), current):
            return role
    raise InvalidArgument(f"{pki.INVALID_TOKEN}: it is wrong or was rotated")


class CAServer:
    """The covey.CA service's handlers (manager/ca/authz.py says who may call each)."""

    def __init__(self, store: st.Store, managers):
        self._store = store
        self._managers = managers  # () -> list of manager API addresses
        self.handlers: dict[str, authz.Handler] = {
            "GetRootCA": self.get_root_ca, "IssueNodeCertificate": self.issue, "RenewNodeCertificate": self.renew}

    async def get_root_ca(self, request, context, caller):
        return ca_pb2.GetRootCAResponse(ca_cert_pem=cluster_of(self._store).root_ca.ca_cert_pem)

    async def issue(self, request, context, caller):
        cluster = cluster_of(self._store)
        role = token_role(cluster, request.token)
        if not request.hostname:
            raise InvalidArgument("a joining node must give its hostname")
        node_id = new_id()
        cert = pki.sign_node_cert(cluster.root_ca.ca_cert_pem, cluster.root_ca.ca_key_pem,
                                  request.csr_pem, node_id, role, cluster.id,
                                  _cert_lifetime(cluster))
        now = time.time_ns()
        node = pb.Node(id=node_id, meta=pb.Meta(created_at_ns=now, updated_at_ns=now), role=role,
                       spec=pb.NodeSpec(desired_role=role, availability=pb.ACTIVE),
                       description=pb.NodeDescription(hostname=request.hostname),
                       status=pb.NodeStatus(state=pb.NodeStatus.UNKNOWN, message="joined"),
                       cert_ca_digest=cluster.root_ca.ca_digest)
        if role == pb.MANAGER:
            node.manager_status.CopyFrom(self._new_manager_addrs(request.advertise_addr))
        await self._store.write([create(node)])
        log.info("node %s (%s) joined as %s", node_id, request.hostname, pb.NodeRole.Name(role).lower())
        response = ca_pb2.IssueNodeCertificateResponse(node_id=node_id, role=role, cert_pem=cert,
                                                   ca_cert_pem=pki.trust_bundle(cluster.root_ca),
                                                   managers=self._managers())
        if role == pb.MANAGER:
            response.raft_key, response.raft_addr = cluster.raft_key, node.manager_status.raft_addr
            response.raft_peers.extend(await self._admit_to_raft(node))
        return response

    def _new_manager_addrs(self, api_addr: str) -> pb.ManagerStatus:
        if not api_addr or not addr.host_of(api_addr) or ":" not in api_addr:
            raise InvalidArgument("a joining manager must give the HOST:PORT other nodes reach it on")
        raft_addr = addr.raft_addr(api_addr)
        for other in self._store.nodes.view():
            if other.manager_status.raft_addr == raft_addr:
                raise FailedPrecondition(f"the manager {other.id} already uses {api_addr}")
        return pb.ManagerStatus(api_addr=api_addr, raft_addr=raft_addr)

    async def _admit_to_raft(self, node: pb.Node) -> list[str]:
        """Add a manager to Raft; the other members it must start with."""
        raft_addr = node.manager_status.raft_addr
        peers = sorted(set(self._store.members()) - {raft_addr})
        if raft_addr not in self._store.members():
            await self._store.add_member(raft_addr)
        return peers

    async def renew(self, request, context, caller: authz.Caller | None):
        cluster = cluster_of(self._store)
        node_id = authz.calling_node(caller)
        node = self._store.nodes.get(node_id)
        if node is None:
            raise PermissionDenied(f"node {node_id} is not a member of this swarm")
        # The role in the store, not the desired one: it changes only once Raft membership has
        # (manager/state/membership.py), so a worker certificate never goes to a Raft member.
        cert = pki.sign_node_cert(cluster.root_ca.ca_cert_pem, cluster.root_ca.ca_key_pem,
                                  request.csr_pem, node.id, node.role, cluster.id,
                                  _cert_lifetime(cluster))
        if node.cert_ca_digest != cluster.root_ca.ca_digest:  # a root CA rotation counts it moved
            await modify(self._store, pb.Node, node.id, _issued_by(cluster.root_ca.ca_digest), time.time_ns())
        response = ca_pb2.RenewNodeCertificateResponse(cert_pem=cert, role=node.role, managers=self._managers(),
                                                       ca_cert_pem=pki.trust_bundle(cluster.root_ca))
        if node.role == pb.MANAGER:
            response.raft_key = cluster.raft_key
            response.raft_addr, response.api_addr = node.manager_status.raft_addr, node.manager_status.api_addr
            response.raft_peers.extend(await self._admit_to_raft(node))
        return response


def _issued_by(digest: str):
    def change(node: pb.Node) -> None:
        node.cert_ca_digest = digest
    return change


def _cert_lifetime(cluster: pb.Cluster):
    nanos = cluster.spec.node_cert_expiry_ns
    return datetime.timedelta(microseconds=nanos // 1000) if nanos else pki.NODE_CERT_LIFETIME
