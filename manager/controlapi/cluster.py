"""The control API for the cluster object: inspect and update it, show or rotate the join
tokens and the unlock key, rotate the root CA."""
import secrets
import time

from covey import pki
from covey.errors import FailedPrecondition, InvalidArgument
from covey.units import parse_duration
from manager.ca import rotation
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
    shown.ClearField("unlock_key")
    return shown


MIN_HEARTBEAT = parse_duration("100ms")   # Docker's floor too: a faster one floods the leader
MIN_CERT_EXPIRY = parse_duration("10s")   # as `swarm init` checks it
NO_UNLOCK_KEY = "autolock is not enabled on this swarm: it has no unlock key (covey swarm update --autolock=true)"


def check_update(request: control_pb2.UpdateClusterRequest) -> None:
    """InvalidArgument naming the first bad value; nothing is stored then."""
    if request.HasField("heartbeat_period_ns") and request.heartbeat_period_ns < MIN_HEARTBEAT:
        raise InvalidArgument(f"invalid dispatcher heartbeat {request.heartbeat_period_ns / 1e9:g}s: "
                              "it must be at least 100ms")
    if request.HasField("node_cert_expiry_ns") and request.node_cert_expiry_ns < MIN_CERT_EXPIRY:
        raise InvalidArgument(f"invalid certificate expiry {request.node_cert_expiry_ns / 1e9:g}s: "
                              "it must be at least 10s")
    if request.HasField("task_history_limit") and request.task_history_limit < 0:
        raise InvalidArgument(f"invalid task history limit {request.task_history_limit}: "
                              "it cannot be negative")


def apply_update(cluster: pb.Cluster, request: control_pb2.UpdateClusterRequest) -> None:
    spec = cluster.spec
    if request.HasField("heartbeat_period_ns"):
        spec.heartbeat_period_ns = request.heartbeat_period_ns
    if request.HasField("node_cert_expiry_ns"):
        spec.node_cert_expiry_ns = request.node_cert_expiry_ns
    if request.HasField("task_history_limit"):
        spec.task_history_limit = request.task_history_limit
    if request.HasField("autolock") and request.autolock != spec.autolock:
        spec.autolock = request.autolock
        # On: a new key (each manager seals its keys with it). Off: none (each unseals).
        cluster.unlock_key = pki.new_unlock_key() if request.autolock else b""


class ClusterAPI:
    def __init__(self, store: st.Store, api_addr: str):
        self._store = store
        self._api_addr = api_addr  # where joining nodes reach this manager

    async def get(self, request: control_pb2.GetClusterRequest) -> control_pb2.GetClusterResponse:
        return control_pb2.GetClusterResponse(cluster=public_cluster(cluster_of(self._store)))

    async def update(self, request: control_pb2.UpdateClusterRequest) -> control_pb2.UpdateClusterResponse:
        check_update(request)
        cluster = await modify(self._store, pb.Cluster, cluster_of(self._store).id,
                               lambda c: apply_update(c, request), time.time_ns())
        return control_pb2.UpdateClusterResponse(cluster=public_cluster(cluster))

    async def unlock_key(self, request: control_pb2.UnlockKeyRequest) -> control_pb2.UnlockKeyResponse:
        cluster = cluster_of(self._store)
        if not cluster.spec.autolock:
            raise FailedPrecondition(NO_UNLOCK_KEY)
        if request.rotate:
            def change(c: pb.Cluster) -> None:
                if not c.spec.autolock:
                    raise FailedPrecondition(NO_UNLOCK_KEY)
                c.unlock_key = pki.new_unlock_key()
            cluster = await modify(self._store, pb.Cluster, cluster.id, change, time.time_ns())
        return control_pb2.UnlockKeyResponse(unlock_key=pki.format_unlock_key(cluster.unlock_key))

    async def rotate_root_ca(self, request: control_pb2.RotateRootCARequest) -> control_pb2.RotateRootCAResponse:
        cluster = cluster_of(self._store)
        ca_cert, ca_key = pki.create_root_ca(cluster.id, rotation=secrets.token_hex(4))
        cluster = await modify(self._store, pb.Cluster, cluster.id,
                               lambda c: rotation.start(c, ca_cert, ca_key), time.time_ns())
        return control_pb2.RotateRootCAResponse(cluster=public_cluster(cluster))

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
