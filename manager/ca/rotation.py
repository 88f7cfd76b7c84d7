"""Root CA rotation (`covey swarm ca --rotate`).

Start: the cluster gets a new root CA; the old certificate stays in root_ca.previous_ca_cert_pem,
so both are trusted (the trust bundle every node gets in its session messages), and the join
tokens keep their secrets under the new CA's digest. Each agent sees that its certificate is
not of the new CA and renews; the CA server records on the node which CA signed its
certificate. Finish (a leader loop): once every node has a certificate of the new CA, the old
one is dropped from the bundle.
"""
import asyncio
import logging
import time

from covey import pki
from covey.errors import FailedPrecondition
from manager.state import store as st
from manager.state.actions import modify
from proto import objects_pb2 as pb

log = logging.getLogger(__name__)


def start(cluster: pb.Cluster, ca_cert: bytes, ca_key: bytes) -> None:
    """Make `ca_cert` the cluster's root CA, the current one trusted until every node moved."""
    if cluster.root_ca.previous_ca_cert_pem:
        raise FailedPrecondition("a root CA rotation is already in progress: wait until every node "
                                 "has a certificate of the new CA (covey swarm ca)")
    digest = pki.ca_digest(ca_cert)
    previous = cluster.root_ca.ca_cert_pem
    cluster.root_ca.CopyFrom(pb.RootCA(ca_cert_pem=ca_cert, ca_key_pem=ca_key, ca_digest=digest,
                                       previous_ca_cert_pem=previous))
    tokens = cluster.join_tokens
    tokens.worker = pki.make_token(digest, pki.parse_token(tokens.worker)[1])
    tokens.manager = pki.make_token(digest, pki.parse_token(tokens.manager)[1])


def progress(cluster: pb.Cluster, nodes: list[pb.Node]) -> tuple[int, int]:
    """(nodes with a certificate of the current root CA, all nodes)."""
    moved = sum(1 for n in nodes if n.cert_ca_digest == cluster.root_ca.ca_digest)
    return moved, len(nodes)


async def run(store: st.Store, period: float) -> None:
    """Leader only: end a rotation once every node has moved to the new CA."""
    while True:
        clusters = store.clusters.list()
        if clusters and clusters[0].root_ca.previous_ca_cert_pem:
            await _finish_if_done(store, clusters[0])
        await asyncio.sleep(period)


async def _finish_if_done(store: st.Store, cluster: pb.Cluster) -> None:
    moved, total = progress(cluster, store.nodes.list())
    if moved < total:
        return
    digest = cluster.root_ca.ca_digest

    def drop_previous(c: pb.Cluster) -> None:
        if c.root_ca.ca_digest == digest:  # not a rotation started meanwhile
            c.root_ca.ClearField("previous_ca_cert_pem")
    await modify(store, pb.Cluster, cluster.id, drop_previous, time.time_ns())
    log.info("root CA rotation done: all %d nodes have certificates of the new CA", total)
