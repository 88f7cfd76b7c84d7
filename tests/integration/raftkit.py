"""Helpers for the Raft safety-layer tests: in-process pysyncobj replicas on
loopback with manager.state.raft.safety wired in the way manager/state/store.py wires it."""
import socket
from pathlib import Path

from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.config import FAIL_REASON

from manager.state.formats import TABLES
from manager.state.raft import safety
from proto import objects_pb2 as pb
from tests.support.poll import wait_until

CLUSTER_KEY = "ab" * 32          # the transport password (store.py passes key.hex())
AT_REST_KEY = b"r" * 32


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class Tables(SyncObjConsumer):
    """A stand-in for tables.State: table -> id -> bytes."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, dict[str, bytes]] = {name: {} for name in TABLES}

    @replicated
    def put(self, table: str, obj_id: str, value: bytes):
        self.tables.setdefault(table, {})[obj_id] = value
        return obj_id

    # Snapshots hold store objects: each value travels as a label of a Node.
    def get_tables(self):
        return {name: {i: pb.Node(id=i, spec=pb.NodeSpec(labels={"v": v.decode()})).SerializeToString()
                       for i, v in table.items()} for name, table in self.tables.items()}

    def set_tables(self, tables):
        self.tables = {name: {i: pb.Node.FromString(data).spec.labels["v"].encode() for i, data in table.items()}
                       for name, table in tables.items()}


FAST = dict(raftMinTimeout=0.3, raftMaxTimeout=0.6, appendEntriesPeriod=0.01, autoTickPeriod=0.005,
            connectionTimeout=1.0, connectionRetryTime=0.2, leaderFallbackTimeout=0.6)


class Partition:
    """Raft addresses cut off from each other: their messages are dropped while the
    connections stay up, as a firewall drop does (the peer still counts as connected)."""

    def __init__(self):
        self.cut: set[frozenset[str]] = set()

    def split(self, side: list[str], rest: list[str]) -> None:
        self.cut = {frozenset((a, b)) for a in side for b in rest}

    def heal(self) -> None:
        self.cut = set()

    def transport(self, base: type) -> type:
        partition = self

        class PartitionedTransport(base):
            def send(self, node, message):
                if frozenset((self._selfNode.id, node.id)) in partition.cut:
                    return True      # lost on the way, as far as the sender can tell
                return super().send(node, message)
        return PartitionedTransport


class Replica:
    def __init__(self, raft_dir: Path, addr: str, peers: list[str], at_rest_key: bytes = AT_REST_KEY,
                 durable: bool = True, partition: Partition | None = None, **conf):
        self.addr = addr
        self.state = Tables()
        extra, transport = {}, None
        if durable:
            extra, transport = safety.syncobj_options(raft_dir, at_rest_key, self.state.get_tables,
                                                       self.state.set_tables)
        if partition is not None:
            transport = partition.transport(transport)
        settings = {**FAST, "password": CLUSTER_KEY, "dynamicMembershipChange": True, **extra, **conf}
        kwargs = {"transportClass": transport} if transport else {}
        self.raft = SyncObj(addr, peers, SyncObjConf(**settings), consumers=[self.state], **kwargs)

    def write(self, table: str, obj_id: str, value: bytes, timeout: float = 10.0):
        """Submit and wait for the acknowledgement (through the leader, wherever it is)."""
        return self.state.put(table, obj_id, value, sync=True, timeout=timeout)

    def journal(self):
        return self.raft._SyncObj__raftLog

    def stop(self):
        self.raft.destroy_synchronous()


def manager_key(i: int) -> bytes:
    """Each manager has its own at-rest key."""
    return bytes([0x41 + i]) * 32


def start_cluster(tmp_path: Path, size: int = 3, **conf) -> list[Replica]:
    addrs = [f"127.0.0.1:{port}" for port in free_ports(size)]
    replicas = []
    try:
        for i, addr in enumerate(addrs):
            replicas.append(Replica(tmp_path / f"m{i}", addr, [a for a in addrs if a != addr],
                                    at_rest_key=manager_key(i), **conf))
    except BaseException:
        stop_all(replicas)
        raise
    return replicas


def stop_all(replicas) -> None:
    for replica in replicas:
        try:
            replica.stop()
        except Exception:
            pass


def leader_of(replicas, timeout: float = 10.0) -> Replica:
    def one_leader():
        leaders = [r for r in replicas if r.raft._isLeader()]
        return leaders[0] if len(leaders) == 1 and all(r.raft.isReady() for r in replicas) else None
    return wait_until(one_leader, timeout, interval=0.01, what="one leader and every replica ready")


def callback_ok(error) -> bool:
    return error == FAIL_REASON.SUCCESS
