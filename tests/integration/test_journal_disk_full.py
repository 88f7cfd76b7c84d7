"""A full or read-only disk never corrupts the Raft journal (issue 12): a journal on a tiny
tmpfs, and on ext4 on a loop device that a filesystem error turns read-only.

The finding: a failed append left a partial record, the record number advanced, the next
syncs reported success, and the restarted manager refused its journal as tampered with.
"""
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pysyncobj import SyncObjException

from manager.state.raft import journal as journal_module
from manager.state.raft import safety
from manager.state.raft.journal import DurableJournal, read_journal
from tests.integration import raftkit
from tests.integration.raftkit import Replica, free_ports, stop_all
from tests.support.poll import holds_for, wait_until
from tests.support.smalldisk import LoopDisk, SmallDisk, TmpfsDisk

KEY = b"d" * 32
TINY = 64 * 1024
ROOMY = 4 * 1024 * 1024
WRITE_TIMEOUT = 10.0     # s: one write through Raft, an election
HOLD = 1.0               # s: several election timeouts of raftkit.FAST (0.3-0.6 s)
REFUSED_AFTER = 2.0      # s: a write not acknowledged by then is taken as refused (the disk is full)
ENTRY = os.urandom(3000)       # incompressible, a few per 4 KiB page


@contextmanager
def mounted(kind: type[SmallDisk], path, size: int) -> Iterator[SmallDisk]:
    assert os.geteuid() == 0, f"a {kind.__name__} is a mount: these tests must run as root (as CI does)"
    disk = kind(path, size)
    try:
        yield disk
    finally:
        disk.unmount()


@pytest.fixture
def disk(tmp_path):
    with mounted(TmpfsDisk, tmp_path / "disk", TINY) as disk:
        yield disk


def fill_until_failure(journal: DurableJournal, start: int) -> tuple[int, int]:
    """Append and sync entries until a sync fails: (last durable index, index that failed)."""
    idx = start
    while True:
        idx += 1
        journal.add(ENTRY, idx, 1)
        if not journal.sync():
            return idx - 1, idx
        assert idx < start + 1000, "the tiny disk never filled up"


def test_disk_full_undoes_the_append_and_a_restart_reads_the_journal(disk):
    path = str(disk.path / "journal.cvy")
    journal = DurableJournal(path, KEY)
    durable, failed = fill_until_failure(journal, 0)
    assert "No space left" in journal.disk_error
    for _ in range(3):     # retried syncs keep failing: nothing is reported durable that is not
        assert journal.sync(force=True) is False
    contents = read_journal(path, KEY)           # whole records only, no partial tail
    assert not contents.torn
    assert [e[1] for e in contents.entries] == list(range(1, durable + 1))
    assert os.path.getsize(path) == contents.good_size

    restarted = DurableJournal(path, KEY)         # a restart while still full works
    assert [e[1] for e in restarted] == list(range(1, durable + 1))
    restarted._destroy()


def test_when_space_returns_the_pending_writes_land(disk):
    path = str(disk.path / "journal.cvy")
    journal = DurableJournal(path, KEY)
    _, failed = fill_until_failure(journal, 0)
    journal.add(ENTRY, failed + 1, 1)            # more comes in while the disk is full
    assert journal.sync() is False
    disk.resize(ROOMY)
    assert journal.sync() is True
    assert journal.disk_error is None
    journal.add(ENTRY, failed + 2, 1)
    assert journal.sync() is True
    journal._destroy()
    assert [e[1] for e in read_journal(path, KEY).entries] == list(range(1, failed + 3))


def test_term_and_vote_wait_for_the_disk(disk):
    path = str(disk.path / "journal.cvy")
    journal = DurableJournal(path, KEY)
    fill_until_failure(journal, 0)
    journal.setCurrentTerm(7, "127.0.0.1:9")
    assert journal.dirty and journal.disk_error
    assert journal_module.MetaFile(path + ".meta", KEY).load() == (0, None)
    assert not os.path.exists(path + ".meta.tmp")   # the partial file gave its space back
    disk.resize(ROOMY)
    assert journal.sync() is True
    assert journal_module.MetaFile(path + ".meta", KEY).load() == (7, "127.0.0.1:9")


@pytest.mark.parametrize("error", [errno.EIO, errno.EROFS])
def test_a_failed_fsync_is_a_failed_write(tmp_path, monkeypatch, error):
    """The kernel reports a write-back error once, then fsync succeeds on pages it dropped:
    the record that saw the error is cut off and written again whole."""
    path = str(tmp_path / "journal.cvy")
    journal = DurableJournal(path, KEY)
    journal.add(b"one", 1, 1)
    assert journal.sync()
    size = os.path.getsize(path)
    real_fsync = os.fsync
    failures = iter([OSError(error, os.strerror(error))])

    def failing_fsync(fd):
        error = next(failures, None)
        if error is not None:
            raise error
        real_fsync(fd)

    monkeypatch.setattr(journal_module.os, "fsync", failing_fsync)
    journal.add(b"two", 2, 1)
    assert journal.sync() is False
    assert os.strerror(error) in journal.disk_error
    assert os.path.getsize(path) == size             # the unconfirmed record is gone
    assert journal.sync() is True                    # written again, whole, and confirmed
    journal._destroy()
    assert [e[0] for e in read_journal(path, KEY).entries] == [b"one", b"two"]


def test_the_log_says_when_the_cause_changes(tmp_path, monkeypatch, caplog):
    """A disk an ext4 error turned read-only may fail the fsync in flight with EIO, and every
    write after it with EROFS: the log names both, once each, not every retry."""
    journal = DurableJournal(str(tmp_path / "journal.cvy"), KEY)
    errors = iter([errno.EIO] + [errno.EROFS] * 3)

    def failing_fsync(fd):
        error = next(errors)
        raise OSError(error, os.strerror(error))
    monkeypatch.setattr(journal_module.os, "fsync", failing_fsync)
    journal.add(b"one", 1, 1)
    for _ in range(4):
        assert journal.sync() is False
    logged = [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(logged) == 2, logged
    assert "Input/output error" in logged[0] and "Read-only file system" in logged[1]
    assert journal.disk_error == "Read-only file system"


@pytest.fixture
def ext4(tmp_path):
    with mounted(LoopDisk, tmp_path / "ext4", ROOMY) as disk:
        yield disk


@pytest.mark.parametrize("when", ["before the write", "between the write and its fsync"])
def test_a_read_only_disk_fails_the_write_and_the_repaired_journal_opens(ext4, monkeypatch, when):
    path = str(ext4.path / "journal.cvy")
    journal = DurableJournal(path, KEY)
    for idx in (1, 2):
        journal.add(ENTRY, idx, 1)
        assert journal.sync()
    if when == "before the write":
        ext4.fail_read_only()
    else:
        real_fsync = journal_module.os.fsync

        def fail_then_fsync(fd):
            if ext4.mounted() and not journal.disk_error:
                ext4.fail_read_only()
            real_fsync(fd)
        monkeypatch.setattr(journal_module.os, "fsync", fail_then_fsync)
    journal.add(ENTRY, 3, 1)
    assert journal.sync() is False
    assert "Read-only file system" in journal.disk_error
    journal.setCurrentTerm(2, "127.0.0.1:9")
    assert journal.sync(force=True) is False          # retried: nothing reported durable
    assert journal_module.MetaFile(path + ".meta", KEY).load() == (0, None)
    journal._destroy()
    monkeypatch.undo()
    ext4.repair()

    reopened = DurableJournal(path, KEY)              # what the read-only disk left opens
    assert [e[1] for e in reopened][:2] == [1, 2] and len(reopened) <= 3, [e[1] for e in reopened]
    reopened.add(ENTRY, 4, 1)
    assert reopened.sync() is True
    reopened._destroy()


# ---------------------------------------------------------------- through Raft

@pytest.fixture
def replicas():
    started = []
    yield started
    stop_all(started)


def fill_through_raft(replica: Replica) -> int:
    """Acknowledged writes until one is not: the index of the first not acknowledged."""
    for i in range(1000):
        try:
            replica.write("node", f"n{i}", ENTRY.hex().encode(), timeout=REFUSED_AFTER)
        except SyncObjException:
            return i
    raise AssertionError("the tiny disk never filled up")


def test_a_single_manager_acknowledges_nothing_its_full_disk_did_not_take(disk, replicas):
    replica = Replica(disk.path / "raft", f"127.0.0.1:{free_ports(1)[0]}", [])
    replicas.append(replica)
    wait_until(replica.raft._isLeader, WRITE_TIMEOUT, 0.01, "the single node to lead")
    first_refused = fill_through_raft(replica)
    assert replica.journal().disk_error
    durable = read_journal(str(disk.path / "raft" / safety.JOURNAL_NAME), raftkit.AT_REST_KEY)
    stored = {c for c, _, _ in durable.entries}
    assert sum(1 for c in stored if ENTRY.hex().encode() in c) >= first_refused   # every ack is on disk
    disk.resize(ROOMY)                                 # space returns: the refused write applies
    wait_until(lambda: f"n{first_refused}" in replica.state.tables["node"], WRITE_TIMEOUT, 0.05,
               "the pending write to apply once the disk has room")
    assert replica.journal().disk_error is None


def test_a_leader_whose_disk_fills_steps_down_and_catches_up(tmp_path, replicas):
    assert os.geteuid() == 0, "a full disk is a tmpfs mounted small: these tests must run as root (as CI does)"
    disks = [TmpfsDisk(tmp_path / f"m{i}", ROOMY) for i in range(3)]
    try:
        replicas.extend(raftkit.start_cluster(tmp_path))
        leader = raftkit.leader_of(replicas)
        leader.write("node", "before", b"1")
        disk = disks[replicas.index(leader)]
        disk.fill()
        # A full disk shows only when there is something to write: a heartbeat writes nothing.
        refused = []
        leader.state.put("node", "while-full", ENTRY, callback=lambda result, error: refused.append(error))
        new_leader = wait_until(lambda: next((r for r in replicas if r is not leader and r.raft._isLeader()), None),
                                WRITE_TIMEOUT, 0.05, "another replica to lead")
        assert not leader.raft._isLeader() and leader.journal().disk_error
        # It runs for nothing (it could not store its vote): it follows the new leader, at
        # its term, so its API answers and its return disrupts no one.
        def follows():
            current = leader.raft._getLeader()
            return (current is not None and current.id == new_leader.addr
                    and leader.raft.raftCurrentTerm == new_leader.raft.raftCurrentTerm)
        wait_until(follows, WRITE_TIMEOUT, 0.05, "the full replica to follow the new leader")
        leader.raft._SyncObj__raftElectionDeadline = 0       # its election timer runs out now
        holds_for(follows, HOLD, 0.02, "the full replica following the new leader at its term")
        assert refused != [raftkit.FAIL_REASON.SUCCESS]     # never acknowledged while full
        new_leader.write("node", "during", b"2")
        disk.resize(ROOMY)
        wait_until(lambda: leader.state.tables["node"].get("during") == b"2", WRITE_TIMEOUT, 0.05,
                   "the old leader to catch up once its disk has room")
        assert leader.journal().disk_error is None
    finally:
        stop_all(replicas)
        replicas.clear()
        for disk in disks:
            disk.unmount()
