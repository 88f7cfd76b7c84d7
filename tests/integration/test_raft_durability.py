"""Durability of acknowledged writes and protobuf snapshots (manager/state/raft/safety.py),
on real single-node SyncObjs with the layer wired in."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pysyncobj.pickle
import pytest

from manager.state.raft import safety
from manager.state.raft.journal import read_journal
from manager.state.raft.snapshots import SnapshotCodec
from proto import raft_pb2
from tests.integration.raftkit import AT_REST_KEY, Replica, free_ports
from tests.support.poll import wait_until

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 10.0


@pytest.fixture
def single(tmp_path):
    replicas = []

    def start(addr=None, **conf):
        addr = addr or f"127.0.0.1:{free_ports(1)[0]}"
        replica = Replica(tmp_path / "raft", addr, [], **conf)
        replicas.append(replica)
        wait_until(replica.raft._isLeader, TIMEOUT, interval=0.01, what="the single node to lead")
        return replica

    yield start
    for replica in replicas:
        replica.stop()


def journal_path(tmp_path) -> str:
    return str(tmp_path / "raft" / safety.JOURNAL_NAME)


def test_acked_write_is_in_the_fsynced_part_of_the_journal(single, tmp_path, monkeypatch):
    synced: dict[str, int] = {}
    real = os.fsync

    def fsync(fd):
        size = os.fstat(fd).st_size                  # everything written so far
        real(fd)
        path = os.readlink(f"/proc/self/fd/{fd}")
        synced[path] = max(size, synced.get(path, 0))
    monkeypatch.setattr(os, "fsync", fsync)
    replica = single()
    path = journal_path(tmp_path)
    for i in range(20):
        marker = f"acked-{i}".encode()
        replica.write("node", f"n{i}", marker)
        prefix = tmp_path / "prefix"
        prefix.write_bytes(open(path, "rb").read()[:synced.get(path, 0)])
        commands = [e[0] for e in read_journal(str(prefix), AT_REST_KEY).entries]
        assert any(marker in c for c in commands), f"write {i} acknowledged before fsync"


def test_group_commit_one_fsync_for_many_writes(single, monkeypatch):
    replica = single()
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    done = []
    writes = 300
    for i in range(writes):
        replica.state.put("node", f"n{i}", b"v" * 100, callback=lambda res, err: done.append(err))
    wait_until(lambda: len(done) == writes, TIMEOUT, interval=0.01, what="every write acknowledged")
    assert set(done) == {0}
    assert 1 <= len(calls) <= writes / 10, f"{len(calls)} fsyncs for {writes} writes"


CHILD = """
import sys
sys.path[:0] = [{repo!r}]
from pathlib import Path
from tests.integration.raftkit import Replica
from tests.support.poll import wait_until
replica = Replica(Path({raft_dir!r}), {addr!r}, [])
wait_until(replica.raft._isLeader, 10, interval=0.01, what="leader")
for i in range(5):
    replica.write("node", f"n{{i}}", b"killed-after-ack-%d" % i)
    print("ACK", i, flush=True)
sys.stdin.read()
"""


def test_acked_write_survives_sigkill(tmp_path):
    raft_dir = tmp_path / "raft"
    addr = f"127.0.0.1:{free_ports(1)[0]}"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(repo=str(REPO), raft_dir=str(raft_dir), addr=addr)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lines = [child.stdout.readline() for _ in range(5)]
        os.kill(child.pid, signal.SIGKILL)            # right after the fifth ack
        assert lines == [f"ACK {i}\n" for i in range(5)]
    finally:
        child.kill()
        child.wait(TIMEOUT)
    commands = [e[0] for e in read_journal(journal_path(tmp_path), AT_REST_KEY).entries]
    assert all(any(b"killed-after-ack-%d" % i in c for c in commands) for i in range(5))
    replica = Replica(raft_dir, addr, [])              # and the restarted node applies them
    try:
        wait_until(lambda: len(replica.state.tables["node"]) == 5, TIMEOUT,
                   interval=0.01, what="the writes applied after restart")
        assert replica.state.tables["node"]["n4"] == b"killed-after-ack-4"
    finally:
        replica.stop()


def test_compaction_writes_protobuf_snapshot_and_restart_restores(single, tmp_path, monkeypatch):
    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle used for a snapshot")
    monkeypatch.setattr(pysyncobj.pickle, "dump", no_pickle)
    monkeypatch.setattr(pysyncobj.pickle, "load", no_pickle)
    replica = single()
    for i in range(30):
        replica.write("node", f"n{i}", b"before-%d" % i)
    replica.raft.forceLogCompaction()
    wait_until(lambda: len(replica.journal()) <= 3, TIMEOUT, interval=0.01, what="the log to be compacted")
    snapshot_file = tmp_path / "raft" / safety.SNAPSHOT_NAME
    codec = SnapshotCodec(str(snapshot_file), AT_REST_KEY, dict, dict)
    snap = raft_pb2.RaftSnapshot.FromString(codec.open(str(snapshot_file)))
    assert snap.format_version == 2 and snap.members == [replica.addr]
    assert {n.id: n.spec.labels["v"] for n in snap.store.nodes} == {f"n{i}": f"before-{i}" for i in range(30)}
    assert b"before-" not in snapshot_file.read_bytes()   # sealed at rest
    replica.write("node", "after", b"after-snapshot")
    expected = {name: dict(t) for name, t in replica.state.tables.items()}
    replica.stop()
    again = single(replica.addr)       # the snapshot names the members: same address
    wait_until(lambda: again.state.tables == expected, TIMEOUT,
               interval=0.01, what="the same tables after restart")


def test_wrong_at_rest_key_fails_at_start_naming_the_file(single, tmp_path):
    from covey.errors import FailedPrecondition
    replica = single()
    replica.write("node", "n1", b"x")
    replica.stop()
    with pytest.raises(FailedPrecondition, match=safety.JOURNAL_NAME):
        Replica(tmp_path / "raft", replica.addr, [], at_rest_key=b"z" * 32)
