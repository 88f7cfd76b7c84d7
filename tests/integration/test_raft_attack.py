"""Attacks on a running 3-replica cluster's Raft ports (127.0.0.1): pysyncobj
unpickles what it receives, so nothing may reach pickle before the peer proved
it holds the cluster key, and no unauthenticated frame may be buffered whole."""
import os
import pickle
import socket
import struct
import time
import zlib

import pytest
from pysyncobj.encryptor import getEncryptor
from pysyncobj.utility import TcpUtility, UtilityException

from manager.state.raft.safety import DurableTransport, TransportLimits
from tests.integration.raftkit import CLUSTER_KEY, leader_of, start_cluster, stop_all
from tests.support.poll import wait_until

TIMEOUT = 10.0
CLOSE_TIMEOUT = 3.0


class Payload:
    """Unpickling this creates a file: proof that attacker bytes reached pickle."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def frame(data: bytes) -> bytes:
    return struct.pack("i", len(data)) + data       # pysyncobj's framing


@pytest.fixture
def cluster(tmp_path):
    replicas = start_cluster(tmp_path, 3)
    try:
        yield replicas
    finally:
        stop_all(replicas)


def closed_by_peer(addr: str, data: bytes, timeout: float = CLOSE_TIMEOUT) -> bool:
    """Send `data`; True once the replica closes the connection."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if s.recv(65536) == b"":
                    return True
            except ConnectionResetError:
                return True
            except TimeoutError:
                break
    return False


def attacks(marker: str) -> dict[str, bytes]:
    evil = pickle.dumps(Payload(marker))
    wrong = getEncryptor("not-the-cluster-key")
    return {
        "garbage": os.urandom(8192),
        "raw pickle": evil,
        "framed pickle": frame(zlib.compress(evil)),
        "framed utility command": frame(zlib.compress(pickle.dumps(["status", Payload(marker)]))),
        "wrong key": frame(wrong.encrypt_at_time(zlib.compress(evil), int(time.monotonic()))),
        "oversized frame": struct.pack("i", 2**31 - 1) + os.urandom(65536),
    }


def test_payload_is_live(tmp_path):
    """Control: the payload does create its file when unpickled."""
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(str(control))))
    assert control.exists()


def test_attacks_on_the_raft_port_change_nothing(cluster, tmp_path):
    leader = leader_of(cluster, TIMEOUT)
    for n in range(5):
        leader.write("node", f"n{n}", b"before")
    wait_until(lambda: all(r.state.tables == leader.state.tables for r in cluster), TIMEOUT,
               interval=0.01, what="replicas to agree")
    before = {name: dict(t) for name, t in leader.state.tables.items()}
    marker = tmp_path / "pwned"
    for replica in cluster:
        for name, data in attacks(str(marker)).items():
            assert closed_by_peer(replica.addr, data), f"{name}: {replica.addr} kept the connection"
        with pytest.raises(UtilityException):
            TcpUtility(password="not-the-cluster-key", timeout=CLOSE_TIMEOUT).executeCommand(replica.addr, ["status"])
    assert not marker.exists()
    assert all(r.state.tables == before for r in cluster)
    leader = leader_of(cluster, TIMEOUT)
    leader.write("node", "after", b"after")
    wait_until(lambda: all(r.state.tables["node"].get("after") == b"after" for r in cluster), TIMEOUT,
               interval=0.01, what="the cluster to commit a write after the attacks")
    status = TcpUtility(password=CLUSTER_KEY, timeout=TIMEOUT).executeCommand(leader.addr, ["status"])
    assert status["state"] == 2                     # control: the right key does get in
    assert not marker.exists()


def test_handshake_flood_does_not_lock_peers_out(cluster, monkeypatch):
    monkeypatch.setattr(DurableTransport, "limits", TransportLimits(pending_handshakes=8))
    leader = leader_of(cluster, TIMEOUT)
    transport = leader.raft._SyncObj__transport
    host, port = leader.addr.rsplit(":", 1)
    idle = []
    try:
        for _ in range(20):                          # each one accepted before the next
            idle.append(socket.create_connection((host, int(port)), timeout=TIMEOUT))
            local = idle[-1].getsockname()[1]
            wait_until(lambda local=local: transport._handshakes and _peer_port(transport._handshakes[-1]) == local,
                       TIMEOUT, interval=0.01, what="the connection to be accepted")
            assert len(transport._handshakes) <= 8
        evicted = sum(closed_by_peer_socket(s) for s in idle[:12])
        assert evicted == 12                         # the oldest went first
        leader.write("node", "during-flood", b"x")
        wait_until(lambda: all(r.state.tables["node"].get("during-flood") for r in cluster), TIMEOUT,
                   interval=0.01, what="a commit during the flood")
    finally:
        for s in idle:
            s.close()


def _peer_port(conn) -> int:
    return conn._TcpConnection__socket.getpeername()[1]


def closed_by_peer_socket(s: socket.socket) -> bool:
    s.settimeout(CLOSE_TIMEOUT)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
