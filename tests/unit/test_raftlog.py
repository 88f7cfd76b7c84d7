"""The Raft safety layer (manager/state/raft/safety.py) without a network: a real SyncObj
follower driven with crafted messages, and the sealed journal/meta/snapshot files."""
import os
import pickle

import pytest
from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.node import TCPNode
from pysyncobj.transport import Transport

from covey.errors import FailedPrecondition
from manager.state.formats import TABLES
from manager.state.raft import journal, safety
from manager.state.raft.journal import DurableJournal, read_journal
from manager.state.raft.snapshots import SnapshotCodec
from proto import objects_pb2 as pb
from proto import raft_pb2

KEY = b"k" * 32
LEADER = TCPNode("127.0.0.1:2")
NO_OP, REGULAR, MEMBERSHIP = b"\x01", b"\x00", b"\x02"


class RecordingTransport(Transport):
    """No sockets: records what the follower sends and which nodes it adds/drops."""
    ready = True

    def __init__(self):
        super().__init__(None, None, None)
        self.sent, self.added, self.dropped = [], [], []

    def tryGetReady(self):
        pass

    def send(self, node, message):
        self.sent.append(message)
        return True

    def addNode(self, node):
        self.added.append(node.id)

    def dropNode(self, node):
        self.dropped.append(node.id)


class Follower:
    def __init__(self, raft_dir, durable=True):
        self.tables = {"node": {}}
        opts = {}
        if durable:
            opts, _ = safety.syncobj_options(raft_dir, KEY, lambda: self.tables, self._set)
        conf = SyncObjConf(autoTick=False, password="x", dynamicMembershipChange=True, **opts)
        self.transport = RecordingTransport()
        self.raft = SyncObj("127.0.0.1:1", [LEADER.id], conf, transport=self.transport)

    def _set(self, tables):
        self.tables = tables

    def append(self, term, prev, prev_term, entries, commit, handler=None):
        message = dict(type="append_entries", term=term, prevLogIdx=prev, prevLogTerm=prev_term,
                       entries=entries, commit_index=commit)
        (handler or self.raft._SyncObj__onMessageReceived)(LEADER, message)
        return self.transport.sent[-1]

    def log(self):
        return [(e[1], e[2]) for e in self.raft._SyncObj__raftLog]

    def members(self):
        return sorted(n.id for n in self.raft.otherNodes)


def cmd(value):
    return REGULAR + pickle.dumps(value)


def ok(next_idx):
    return {"type": "next_node_idx", "next_node_idx": next_idx, "reset": False, "success": True}


E = [(cmd("a"), 2, 1), (cmd("b"), 3, 1), (cmd("c"), 4, 1)]


@pytest.fixture(params=[True, False], ids=["durable", "stock-journal"])
def follower(request, tmp_path):
    f = Follower(tmp_path / "raft", durable=request.param)
    f.append(1, 1, 0, E, 1)
    assert f.log() == [(1, 0), (2, 1), (3, 1), (4, 1)]
    yield f
    f.raft.destroy()


# ---------------------------------------------------------------- 1. truncation

def test_stale_heartbeat_keeps_entries_and_commit(follower):
    follower.append(1, 4, 1, [], 4)
    assert follower.raft.raftCommitIndex == 4
    reply = follower.append(1, 2, 1, [], 2)          # sent before the leader saw our ack
    assert reply == ok(3)                            # acknowledges only what it checked
    assert follower.log() == [(1, 0), (2, 1), (3, 1), (4, 1)]
    assert follower.raft.raftCommitIndex == 4        # never goes down


def test_stock_pysyncobj_drops_them(follower):
    """The bug this layer closes, shown on pysyncobj's own handler."""
    stock = safety._STOCK_ON_MESSAGE.__get__(follower.raft)
    follower.append(1, 2, 1, [], 2, handler=stock)
    assert follower.log() == [(1, 0), (2, 1)]


def test_shorter_matching_append_keeps_tail(follower):
    assert follower.append(1, 1, 0, E[:2], 1) == ok(4)
    assert follower.log() == [(1, 0), (2, 1), (3, 1), (4, 1)]


def test_longer_append_adds_only_new_entries(follower):
    assert follower.append(1, 2, 1, E[1:] + [(cmd("d"), 5, 1)], 1) == ok(6)
    assert follower.log() == [(1, 0), (2, 1), (3, 1), (4, 1), (5, 1)]


def test_conflict_truncates_from_conflicting_entry(follower):
    reply = follower.append(2, 1, 0, [E[0], (cmd("x"), 3, 2)], 1)
    assert reply == ok(4)
    assert follower.log() == [(1, 0), (2, 1), (3, 2)]
    assert follower.raft._SyncObj__raftLog[2][0] == cmd("x")


def test_prev_term_mismatch_keeps_log_and_resets(follower):
    reply = follower.append(2, 3, 2, [], 1)
    assert reply["success"] is False and reply["reset"] is True
    assert len(follower.log()) == 4


def test_every_refusal_asks_from_after_the_commit_index(follower):
    """Entries 3 and 4 are not committed (commit 2). A new leader pipelines batches: the
    one whose prev conflicts and the ones past our log must ask for the same entries, or
    the later answers undo the first (safety.py, point 6)."""
    follower.append(1, 4, 1, [], 2)
    conflicting = follower.append(2, 4, 2, [], 9)            # our entry 4 is from term 1
    past_our_log = follower.append(2, 9, 2, [], 9)
    assert conflicting["reset"] and past_our_log["reset"]
    assert conflicting["next_node_idx"] == past_our_log["next_node_idx"] == 3
    assert follower.append(2, 2, 1, [(cmd("x"), 3, 2)], 9) == ok(4)   # from there it matches
    assert follower.log() == [(1, 0), (2, 1), (3, 2)]


def test_membership_change_in_matching_tail_not_rolled_back(tmp_path):
    f = Follower(tmp_path / "raft")
    change = MEMBERSHIP + pickle.dumps(("add", "127.0.0.1:3"))
    f.append(1, 1, 0, [E[0], (change, 3, 1), E[2]], 1)
    assert f.members() == ["127.0.0.1:2", "127.0.0.1:3"]
    assert f.append(1, 2, 1, [], 2) == ok(3)            # stale heartbeat
    assert f.append(1, 1, 0, [E[0], (change, 3, 1)], 2) == ok(4)  # shorter, matching
    assert f.members() == ["127.0.0.1:2", "127.0.0.1:3"]
    assert f.transport.dropped == [] and f.transport.added.count("127.0.0.1:3") == 1
    # a real conflict on that entry does roll it back
    f.append(2, 2, 1, [(cmd("y"), 3, 2)], 2)
    assert f.members() == ["127.0.0.1:2"] and f.log()[-1] == (3, 2)
    f.raft.destroy()


def test_large_entry_transmission_goes_through_the_same_rule(follower):
    piece = pickle.dumps(E[0])
    handler = follower.raft._SyncObj__onMessageReceived
    base = dict(type="append_entries", term=1, prevLogIdx=1, prevLogTerm=0, commit_index=1)
    handler(LEADER, {**base, "transmission": "start", "data": piece[:10]})
    handler(LEADER, {**base, "transmission": "finish", "data": piece[10:]})
    assert follower.transport.sent[-1] == ok(3)
    assert len(follower.log()) == 4


# ---------------------------------------------------------------- 2, 3. journal at rest

def test_journal_reopens_with_entries_commit_and_term(tmp_path):
    path = str(tmp_path / "j")
    j = DurableJournal(path, KEY)
    for i in range(1, 6):
        j.add(cmd(i), i, 1)
    j.deleteEntriesFrom(3)          # drops indexes 4 and 5
    j.add(cmd("x"), 4, 2)
    j.setRaftCommitIndex(3)
    j.setCurrentTerm(2, "127.0.0.1:9")
    again = DurableJournal(path, KEY)
    assert [(e[1], e[2]) for e in again] == [(1, 1), (2, 1), (3, 1), (4, 2)]
    assert again.getRaftCommitIndex() == 3
    assert (again.getCurrentTerm(), again.getVotedForNodeId()) == (2, "127.0.0.1:9")
    j._destroy()
    again._destroy()


def test_one_fsync_per_batch(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    j = DurableJournal(str(tmp_path / "j"), KEY)
    calls.clear()
    for i in range(1, 101):
        j.add(cmd(i), i, 1)
    assert calls == []              # nothing durable yet, nothing acknowledged yet
    j.sync()
    j.sync()                        # nothing new: no second fsync
    assert len(calls) == 1
    assert len(read_journal(j._path, KEY).entries) == 100
    j._destroy()


def test_compaction_rewrites_the_file(tmp_path):
    j = DurableJournal(str(tmp_path / "j"), KEY)
    for i in range(1, 11):
        j.add(cmd(i), i, 1)
    j.sync()
    j.deleteEntriesTo(8)
    j.sync()
    contents = read_journal(j._path, KEY)
    assert [e[1] for e in contents.entries] == [9, 10] and contents.records == 1
    j._destroy()


def test_torn_last_record_is_dropped(tmp_path):
    j = DurableJournal(str(tmp_path / "j"), KEY)
    j.add(cmd(1), 1, 1)
    j.sync()
    j.add(cmd(2), 2, 1)
    j.sync()
    j._destroy()
    size = os.path.getsize(j._path)
    os.truncate(j._path, size - 5)  # a crash half-way through the last append
    again = DurableJournal(j._path, KEY)
    assert [e[1] for e in again] == [1]
    again.add(cmd(2), 2, 1)         # and it goes on from there
    again._destroy()
    assert [e[1] for e in read_journal(j._path, KEY).entries] == [1, 2]


def _three_records(tmp_path):
    j = DurableJournal(str(tmp_path / "j"), KEY)
    for i in (1, 2, 3):
        j.add(cmd(i), i, 1)
        j.sync()
    j._destroy()
    return j._path


def _records(data: bytes) -> list[bytes]:
    """The file's records (after the header), each with its length prefix."""
    out, offset = [], journal._HEADER
    while offset < len(data):
        end = offset + 4 + int.from_bytes(data[offset:offset + 4], "little")
        out.append(data[offset:end])
        offset = end
    return out


def test_tampered_journal_record_fails_at_start(tmp_path):
    path = _three_records(tmp_path)
    data = open(path, "rb").read()
    records = _records(data)
    assert len(records) == 4        # the new file's record, then one per sync
    flipped = bytearray(records[2])
    flipped[-1] ^= 1
    open(path, "wb").write(data[:journal._HEADER] + b"".join([*records[:2], bytes(flipped), records[3]]))
    with pytest.raises(FailedPrecondition, match=f"{path}.*record 2"):
        DurableJournal(path, KEY)


def test_reordered_journal_records_fail_at_start(tmp_path):
    path = _three_records(tmp_path)
    data = open(path, "rb").read()
    r = _records(data)
    open(path, "wb").write(data[:journal._HEADER] + b"".join([r[0], r[2], r[1], r[3]]))
    with pytest.raises(FailedPrecondition, match="record 1"):
        DurableJournal(path, KEY)


def test_record_from_another_journal_fails_at_start(tmp_path):
    path = _three_records(tmp_path)
    (tmp_path / "other").mkdir()
    other = _three_records(tmp_path / "other")
    data, foreign = open(path, "rb").read(), _records(open(other, "rb").read())
    r = _records(data)
    open(path, "wb").write(data[:journal._HEADER] + b"".join([r[0], foreign[1], r[2], r[3]]))
    with pytest.raises(FailedPrecondition, match="record 1"):
        DurableJournal(path, KEY)


def test_wrong_key_fails_at_start(tmp_path):
    path = _three_records(tmp_path)
    with pytest.raises(FailedPrecondition, match=f"{path}.*wrong key"):
        DurableJournal(path, b"w" * 32)


def test_wrong_key_on_meta_fails_at_start(tmp_path):
    j = DurableJournal(str(tmp_path / "j"), KEY)
    j.setCurrentTerm(3, None)
    j._destroy()
    os.remove(j._path)              # only the meta file is left
    with pytest.raises(FailedPrecondition, match="j.meta"):
        DurableJournal(j._path, b"w" * 32)


def test_files_hold_no_plaintext(tmp_path):
    j = DurableJournal(str(tmp_path / "j"), KEY)
    j.add(REGULAR + b"secret-object-payload", 1, 1)
    j.setCurrentTerm(1, "127.0.0.1:7777")
    j._destroy()
    for path in (j._path, j._path + ".meta"):
        data = open(path, "rb").read()
        assert b"secret-object-payload" not in data and b"7777" not in data


# ---------------------------------------------------------------- 4. snapshots

def test_snapshot_codec_round_trip_and_tamper(tmp_path):
    got = {}
    node = pb.Node(id="n1").SerializeToString()
    codec = SnapshotCodec(str(tmp_path / "s"), KEY, lambda: {"node": {"n1": node}, "cluster": {}}, got.update)
    codec.serializer(codec.path, ((cmd(1), 7, 2), (cmd(0), 6, 2), {LEADER}))
    snap = raft_pb2.RaftSnapshot.FromString(codec.open(codec.path))
    assert snap.format_version == 2 and snap.last_entry.index == 7 and list(snap.members) == [LEADER.id]
    last, prev, members = codec.deserializer(codec.path)
    assert (last, prev, members) == ((cmd(1), 7, 2), (cmd(0), 6, 2), {LEADER})
    assert got == {**{name: {} for name in TABLES}, "node": {"n1": node}}
    data = bytearray(open(codec.path, "rb").read())
    data[30] ^= 1
    open(codec.path, "wb").write(bytes(data))
    with pytest.raises(FailedPrecondition, match=codec.path):
        codec.read()


def test_syncobj_options_refuses_a_snapshot_it_cannot_open(tmp_path):
    raft_dir = tmp_path / "raft"
    opts, _ = safety.syncobj_options(raft_dir, KEY, dict, lambda t: None)
    opts["serializer"](opts["fullDumpFile"], ((cmd(1), 2, 1), (cmd(0), 1, 1), {LEADER}))
    with pytest.raises(FailedPrecondition, match="snapshot.cvy"):
        safety.syncobj_options(raft_dir, b"w" * 32, dict, lambda t: None)


def test_syncobj_options_refuses_to_start_beside_a_stock_journal(tmp_path):
    raft_dir = tmp_path / "raft"
    raft_dir.mkdir()
    (raft_dir / "journal.bin").write_bytes(b"PYSYNCOBJ")
    with pytest.raises(FailedPrecondition, match="journal.bin"):
        safety.syncobj_options(raft_dir, KEY, dict, lambda t: None)


# ---------------------------------------------------------------- 5. transport

def test_transport_refuses_to_run_without_the_cluster_key(tmp_path):
    opts, transport = safety.syncobj_options(tmp_path / "raft", KEY, dict, lambda t: None)
    with pytest.raises(FailedPrecondition, match="cluster key"):
        SyncObj("127.0.0.1:1", [], SyncObjConf(autoTick=False, **opts), transportClass=transport)


def test_install_is_idempotent():
    safety.install()
    handler = SyncObj._SyncObj__onMessageReceived
    safety.install()
    assert SyncObj._SyncObj__onMessageReceived is handler and handler._covey_fixed


def test_install_refuses_another_pysyncobj_version_before_patching(monkeypatch):
    import pysyncobj.syncobj
    import pysyncobj.version
    monkeypatch.setattr(pysyncobj.version, "VERSION", "0.3.18")
    monkeypatch.setattr(SyncObj, "_SyncObj__onMessageReceived", safety._STOCK_ON_MESSAGE)
    monkeypatch.setattr(pysyncobj.syncobj, "createJournal", safety._STOCK_CREATE_JOURNAL)
    with pytest.raises(FailedPrecondition, match=r"pysyncobj 0\.3\.18 is installed.*pysyncobj==0\.3\.17"):
        safety.install()
    assert SyncObj._SyncObj__onMessageReceived is safety._STOCK_ON_MESSAGE
    assert pysyncobj.syncobj.createJournal is safety._STOCK_CREATE_JOURNAL
