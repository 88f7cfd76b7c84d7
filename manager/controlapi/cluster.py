"""The control API for the cluster object: inspect it, show or rotate the join tokens."""
import time

from covey import pki
from manager.state import store as st
from manager.state.actions import modify
from manager.state.queries import cluster_of
from proto import control_pb2
from proto import objects_pb2 as pb


def public_cluster(cluster: pb.Cluster) -> pb.Cluster:
    """The cluster without its secrets (CA key, Raft key, join tokens)."""
    shown = pb.Cluster()
    shown.CopyFrom(cluster)
    shown.root_ca.ClearField("ca_key_pem")
    shown.ClearField("raft_key")
    shown.ClearField("join_tokens")
    return shown


class ClusterAPI:
    def __init__(self, store: st.Store, api_addr: str):
        self._store = store
        self._api_addr = api_addr  # where joining nodes reach this manager

    async def get(self, request: control_pb2.GetClusterRequest) -> control_pb2.GetClusterResponse:
        return control_pb2.GetClusterResponse(cluster=public_cluster(cluster_of(self._store)))

    async def join_token(self, request: control_pb2.JoinTokenRequest) -> control_pb2.JoinTokenResponse:
        cluster = cluster_of(self._store)
        if request.rotate:
            secret = pki.new_token_secret()
            token = pki.make_token(cluster.root_ca.ca_digest, secret)

            def change(c):
                if request.role == pb.MANAGER:
                    c.join_tokens.manager = token
                else:
                    c.join_tokens.worker = token
            cluster = await modify(self._store, pb.Cluster, cluster.id, change, time.time_ns())
        tokens = cluster.join_tokens
        token = tokens.manager if request.role == pb.MANAGER else tokens.worker
        return control_pb2.JoinTokenResponse(token=token, manager_addr=self._api_addr)
