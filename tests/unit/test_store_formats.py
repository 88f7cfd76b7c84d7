"""The store's formats in Raft: format 1 entries and snapshots (table name + object bytes)
are migrated when read; a newer format is refused with what to do."""
import pytest

from covey.errors import FailedPrecondition
from manager.state import formats
from manager.state.formats import TABLES
from manager.state.raft.snapshots import SnapshotCodec
from proto import objects_pb2 as pb
from proto import raft_pb2, store_pb2

KEY = b"k" * 32
NODE = pb.Node(id="n1", spec=pb.NodeSpec(labels={"zone": "a"}), meta=pb.Meta(version=3))


def v1_batch() -> bytes:
    """An entry as format 1 wrote it: table name, id, serialized object."""
    return store_pb2.StoreBatchV1(actions=[
        store_pb2.StoreActionV1(kind=store_pb2.StoreAction.UPDATE, table="node", id="n1", expected_version=3,
                                object=NODE.SerializeToString()),
        store_pb2.StoreActionV1(kind=store_pb2.StoreAction.DELETE, table="task", id="t1", expected_version=1),
    ]).SerializeToString()


def test_a_format_1_entry_is_migrated():
    batch = formats.decode_batch(v1_batch())
    assert batch.format_version == formats.FORMAT_VERSION
    update, delete = batch.actions
    assert update.WhichOneof("object") == "node" and update.node == NODE and update.expected_version == 3
    assert delete.WhichOneof("object") == "task" and delete.task.id == "t1"
    assert delete.kind == store_pb2.StoreAction.DELETE


def test_a_newer_entry_is_refused_with_what_to_do():
    newer = store_pb2.StoreBatch(format_version=formats.FORMAT_VERSION + 1).SerializeToString()
    with pytest.raises(formats.FormatError, match="newer coveyd; upgrade coveyd"):
        formats.decode_batch(newer)


def write_snapshot(codec: SnapshotCodec, snap: raft_pb2.RaftSnapshot) -> None:
    snap.last_entry.index, snap.prev_entry.index = 7, 6
    with open(codec.path, "wb") as f:
        f.write(codec.seal(snap.SerializeToString()))


def test_a_format_1_snapshot_is_migrated_on_load(tmp_path):
    loaded = {}
    codec = SnapshotCodec(str(tmp_path / "snapshot.cvy"), KEY, dict, loaded.update)
    write_snapshot(codec, raft_pb2.RaftSnapshot(
        format_version=1, members=["127.0.0.1:1"], tables=["cluster", "node"],
        entries=[raft_pb2.RaftTableEntry(table="node", id="n1", object=NODE.SerializeToString())]))
    last, _, _ = codec.deserializer(codec.path)
    assert last[1] == 7
    assert loaded == {**{name: {} for name in TABLES}, "node": {"n1": NODE.SerializeToString(deterministic=True)}}


def test_a_newer_snapshot_is_refused_with_what_to_do(tmp_path):
    codec = SnapshotCodec(str(tmp_path / "snapshot.cvy"), KEY, dict, dict)
    write_snapshot(codec, raft_pb2.RaftSnapshot(format_version=3))
    with pytest.raises(FailedPrecondition, match="snapshot.cvy: Raft snapshot format 3 .*upgrade coveyd"):
        codec.read()
