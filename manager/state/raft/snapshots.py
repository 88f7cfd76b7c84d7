"""Raft snapshots as encrypted protobuf, never pickle (docs/design.md, "Control plane").

pysyncobj calls `serializer(tmp_file, (last_entry, prev_entry, members))` and
`deserializer(file) -> (last_entry, prev_entry, members)`; with these hooks it
leaves the consumers' data out, so the store's tables come from `get_tables()`
and go back through `set_tables(tables)`.

The file on disk is sealed with the manager's own key. A follower that is too
far behind gets the snapshot from the leader, whose key it does not have, so
the leader sends the plaintext protobuf over the (Fernet-encrypted) Raft
transport and the follower seals it with its own key before loading it:
SnapshotSerializer replaces pysyncobj's file-chunk transmission for that.
"""
import logging
import os

from cryptography.exceptions import InvalidTag
from pysyncobj.node import TCPNode
from pysyncobj.serializer import SERIALIZER_STATE, Serializer

from covey.errors import FailedPrecondition
from manager.state import formats
from manager.state.raft.crash import crash_point
from manager.state.raft.journal import derive, describe, write_atomic
from proto import raft_pb2

log = logging.getLogger(__name__)

MAGIC = b"CVYRSNP1"
FORMAT_VERSION = 2   # 1: tables as RaftTableEntry (table name + bytes), migrated on load
_NONCE = 12


class SnapshotCodec:
    """Encode, seal and open snapshots for one manager."""

    def __init__(self, path: str, key: bytes, get_tables, set_tables):
        self.path = path
        self._aead = derive(key, b"covey raft snapshot v1")
        self._get_tables = get_tables
        self._set_tables = set_tables

    # ------------------------------------------------------------ sealing

    def seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, plaintext, MAGIC)

    def open(self, path: str) -> bytes:
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + _NONCE + 16:
            raise FailedPrecondition(f"{path} is not a Covey Raft snapshot")
        try:
            return self._aead.decrypt(data[len(MAGIC):len(MAGIC) + _NONCE], data[len(MAGIC) + _NONCE:], MAGIC)
        except InvalidTag:
            raise FailedPrecondition(f"Raft snapshot {path} cannot be opened with this manager's key "
                                     "(wrong key, or it was tampered with)") from None

    def read(self, path: str | None = None) -> raft_pb2.RaftSnapshot:
        path = path or self.path
        return parse(self.open(path), path)

    # ------------------------------------------------------------ pysyncobj hooks

    def serializer(self, file_name: str, raft_data) -> None:
        """Runs on pysyncobj's thread (no fork with a custom serializer), so the
        tables are exactly those of `last_entry`."""
        last, prev, members = raft_data
        try:
            snap = encode(self._get_tables(), last, prev, sorted(_addr(m) for m in members))
            with open(file_name, "wb") as f:
                f.write(self.seal(snap.SerializeToString(deterministic=True)))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            # A full or read-only disk: pysyncobj keeps the old snapshot and the whole journal
            # and tries again at its next compaction. Remove the partial file for the space.
            _remove_quietly(file_name)
            log.error("raft: cannot write the snapshot %s (%s); the previous snapshot and the "
                      "journal are kept, retried later", file_name, describe(exc))
            raise
        except Exception:
            log.exception("raft: writing the snapshot %s failed", file_name)
            raise
        crash_point("snapshot.after_write")

    def deserializer(self, file_name: str):
        snap = self.read(file_name)
        self._set_tables(tables_of(snap))
        return _entry(snap.last_entry), _entry(snap.prev_entry), {TCPNode(m) for m in snap.members}

    def install_plaintext(self, plaintext: bytes) -> None:
        """A snapshot received from the leader: check it, seal it with our key, store it."""
        parse(plaintext, "snapshot from the leader")
        write_atomic(self.path, self.seal(plaintext))


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def encode(tables: dict, last, prev, members: list[str]) -> raft_pb2.RaftSnapshot:
    snap = raft_pb2.RaftSnapshot(format_version=FORMAT_VERSION, members=members,
                                 store=formats.snapshot_of(tables))
    for field, entry in (("last_entry", last), ("prev_entry", prev)):
        getattr(snap, field).CopyFrom(raft_pb2.RaftLogEntry(command=bytes(entry[0]), index=entry[1], term=entry[2]))
    return snap


def parse(plaintext: bytes, where: str) -> raft_pb2.RaftSnapshot:
    """A snapshot in the current format (format 1 is migrated); FailedPrecondition if it
    is not a snapshot or comes from a newer coveyd."""
    try:
        snap = raft_pb2.RaftSnapshot.FromString(plaintext)
        if snap.format_version == 1:
            _migrate_v1(snap)
        if snap.format_version != FORMAT_VERSION:
            raise formats.FormatError(formats.newer("Raft snapshot", snap.format_version))
        formats.tables_of(snap.store)  # a store snapshot this manager reads
    except formats.FormatError as exc:
        raise FailedPrecondition(f"{where}: {exc}") from None
    except Exception:
        raise FailedPrecondition(f"{where}: not a Raft snapshot") from None
    return snap


def _migrate_v1(snap: raft_pb2.RaftSnapshot) -> None:
    tables: dict[str, dict[str, bytes]] = {name: {} for name in snap.tables}
    for entry in snap.entries:
        tables.setdefault(entry.table, {})[entry.id] = entry.object
    snap.store.CopyFrom(formats.snapshot_of(tables))
    del snap.entries[:], snap.tables[:]
    snap.format_version = FORMAT_VERSION


def tables_of(snap: raft_pb2.RaftSnapshot) -> dict[str, dict[str, bytes]]:
    return formats.tables_of(snap.store)


def _entry(entry: raft_pb2.RaftLogEntry) -> tuple[bytes, int, int]:
    return entry.command, entry.index, entry.term


def _addr(node) -> str:
    return node.id if hasattr(node, "id") else str(node)


class SnapshotSerializer(Serializer):
    """pysyncobj's Serializer, with snapshots sent as plaintext protobuf (the
    transport encrypts it) and sealed by the receiver with its own key."""

    def __init__(self, fileName, transmissionBatchSize, tryUseFork, serializer, deserializer,
                 serializeChecker, codec: SnapshotCodec):
        super().__init__(fileName, transmissionBatchSize, False, serializer, deserializer, serializeChecker)
        self._codec = codec
        self._batch = transmissionBatchSize
        self._outgoing: dict = {}          # transmission id -> [plaintext, offset]
        self._incoming: bytearray | None = None

    def checkSerializing(self):
        state, ident = super().checkSerializing()
        if state == SERIALIZER_STATE.SUCCESS:
            self._outgoing.clear()         # a new snapshot: restart transfers from it
        return state, ident

    def getTransmissionData(self, transmissionID):
        if self._Serializer__pid != 0:     # a snapshot is being written
            return None
        sending = self._outgoing.get(transmissionID)
        if sending is None:
            try:
                sending = self._outgoing[transmissionID] = [self._codec.open(self._codec.path), 0]
            except Exception:
                log.exception("raft: cannot read the snapshot to send it")
                return None
        data, offset = sending
        chunk = data[offset:offset + self._batch]
        sending[1] += len(chunk)
        if not chunk:
            self._outgoing.pop(transmissionID, None)
        return chunk, offset == 0, not chunk

    def setTransmissionData(self, data):
        if data is None:
            return False
        chunk, is_first, is_last = data
        if is_first:
            self._incoming = bytearray()
        elif self._incoming is None:
            return False
        self._incoming += chunk
        if not is_last:
            return False
        plaintext, self._incoming = bytes(self._incoming), None
        try:
            self._codec.install_plaintext(plaintext)
        except Exception:
            log.exception("raft: the snapshot received from the leader was refused")
            return False
        return True

    def cancelTransmisstion(self, id):     # sic: pysyncobj's name
        self._outgoing.pop(id, None)
