"""A 3-replica cluster in one process with the Raft safety layer: snapshot
transfer between managers with different at-rest keys, no truncation of
acknowledged entries under load, and a leader cut off from the majority
stepping down in time."""
import logging
import shutil
import time

import pytest

from manager.state.raft import safety
from tests.integration.raftkit import Partition, Replica, leader_of, manager_key, start_cluster, stop_all
from tests.support.poll import wait_until

TIMEOUT = 10.0
ELECTION_MIN, ELECTION_MAX = 0.3, 0.6
TICK_MARGIN = 0.2


@pytest.fixture
def cluster(tmp_path):
    replicas = []

    def start(**conf):
        replicas.extend(start_cluster(tmp_path, 3, **conf))
        return replicas

    yield start
    stop_all(replicas)


def test_far_behind_follower_gets_a_snapshot_sealed_with_its_own_key(cluster, tmp_path):
    replicas = cluster()
    leader = leader_of(replicas, TIMEOUT)
    lagging = next(r for r in replicas if r is not leader)
    i = replicas.index(lagging)
    lagging.stop()
    shutil.rmtree(tmp_path / f"m{i}")                        # it lost everything
    for n in range(50):
        leader.write("node", f"n{n}", b"v%d" % n)
    leader.raft.forceLogCompaction()
    wait_until(lambda: len(leader.journal()) <= 3, TIMEOUT, interval=0.01, what="the leader's log to be compacted")
    peers = [r.addr for r in replicas if r is not lagging]
    replicas[i] = Replica(tmp_path / f"m{i}", lagging.addr, peers, at_rest_key=manager_key(i))
    wait_until(lambda: replicas[i].state.tables == leader.state.tables, TIMEOUT,
               interval=0.01, what="the snapshot installed")
    codec_file = tmp_path / f"m{i}" / safety.SNAPSHOT_NAME
    assert codec_file.exists()                               # it came as a snapshot, not as entries
    replicas[i].raft._SyncObj__serializer._codec.read()      # sealed with its own key


def test_replicas_agree_under_load_without_truncation(cluster, caplog):
    replicas = cluster()
    leader = leader_of(replicas, TIMEOUT)
    caplog.set_level(logging.WARNING, logger="pysyncobj.syncobj")
    done = []
    writes = 3000
    for n in range(writes):
        leader.state.put("node", f"n{n}", b"x" * 100, callback=lambda res, err: done.append(err))
    wait_until(lambda: len(done) == writes, TIMEOUT * 3, interval=0.01, what="every write acknowledged")
    assert set(done) == {0}
    wait_until(lambda: all(r.state.tables == leader.state.tables for r in replicas), TIMEOUT,
               interval=0.01, what="equal replicas")
    assert not [r for r in caplog.records if "truncating" in r.getMessage()]


def test_leader_cut_off_from_majority_steps_down(cluster):
    replicas = cluster(**safety.recommended_conf(ELECTION_MIN, ELECTION_MAX), connectionTimeout=1.0,
                       connectionRetryTime=0.2)
    leader = leader_of(replicas, TIMEOUT)
    leader.write("node", "n1", b"x")
    start = time.monotonic()
    for replica in replicas:
        if replica is not leader:
            replica.stop()
    limit = 2 * ELECTION_MAX + TICK_MARGIN
    wait_until(lambda: not leader.raft._isLeader(), limit, interval=0.01, what="the leader to step down")
    assert time.monotonic() - start < limit


def test_old_leader_with_a_conflicting_tail_catches_up(cluster):
    """A leader cut off while it took writes keeps them, uncommitted, at indices the new
    leader fills with other entries. The new leader, counting it connected, pipelines every
    batch to it; once healed, the follower's answers to the later batches ("I lack that,
    send from my last index + 1") used to undo its answer to the first ("your entry there
    conflicts with mine: go back"), and the leader resent the same batches forever (the
    chaos suite's isolate-leader found it)."""
    partition = Partition()
    replicas = cluster(partition=partition)
    old = leader_of(replicas, TIMEOUT)
    old.write("node", "committed", b"x")
    others = [r for r in replicas if r is not old]
    partition.split([old.addr], [r.addr for r in others])
    before = len(old.journal())
    for n in range(20):     # appended on the minority side: never committed
        old.state.put("node", f"lost{n}", b"y", callback=lambda res, err: None)
    wait_until(lambda: len(old.journal()) >= before + 20, TIMEOUT, interval=0.01, what="the tail appended")
    new = wait_until(lambda: next((r for r in others if r.raft._isLeader()), None), TIMEOUT, interval=0.01,
                     what="a leader on the majority side")
    done = []
    writes = 2000            # about 4 batches of appendEntriesBatchSizeBytes (64 KiB)
    for n in range(writes):
        new.state.put("node", f"n{n}", b"x" * 100, callback=lambda res, err: done.append(err))
    wait_until(lambda: len(done) == writes, TIMEOUT * 3, interval=0.01, what="every write acknowledged")
    partition.heal()
    wait_until(lambda: old.state.tables == new.state.tables, TIMEOUT, interval=0.05,
               what="the old leader to hold the new leader's state")
    assert "lost0" not in old.state.tables["node"]
