"""A durable, encrypted Raft journal for pysyncobj (docs/design.md, "Control plane").

pysyncobj's FileJournal writes pickles to an mmap and never fsyncs, so an
acknowledged write can vanish in a power cut. This journal keeps the log in
memory (pysyncobj reads it on every tick) and appends to a file in batches:
everything changed since the last sync is sealed into ONE record and fsynced
once, when `sync()` is called: before any message leaves the node (see
safety.DurableTransport) and when the commit index moves (a single-node
leader acknowledges without sending anything).

File: MAGIC | file_id (16) | key check (nonce 12 + tag 16) | records...
Record: length (4, little endian) | nonce (12) | AES-GCM(ops), with
file_id + record number as associated data, so records cannot be moved,
dropped from the middle or spliced in from another file.
Ops: ADD index term command | TRUNCATE from index | COMMIT index.

currentTerm and votedFor live in `<journal>.meta`, written with fsync and an
atomic rename (Raft needs them durable before any vote is sent).

A write that fails (disk full, read-only, an fsync error) is undone: the file
is cut back to its last whole record, the record number does not advance and
the unwritten ops stay pending for the next `sync()`, which returns False and
sets `disk_error` until a write succeeds again. The transport sends nothing
while the journal is not durable (safety.DurableTransport), so nothing is
acknowledged or voted on from memory alone.
"""
import logging
import os
import struct
import threading
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pysyncobj.journal import Journal

from covey.errors import FailedPrecondition
from manager.state.raft.crash import crash_point

log = logging.getLogger(__name__)

MAGIC = b"CVYRJNL1"
META_MAGIC = b"CVYRMTA1"
KEY_SIZE = 32
_NONCE = 12
_HEADER = len(MAGIC) + 16 + _NONCE + 16
_ADD, _TRUNC, _COMMIT = 0x41, 0x54, 0x43   # 'A', 'T', 'C'
_ADD_HEAD = struct.Struct("<BQQI")
_IDX = struct.Struct("<BQ")
_LEN = struct.Struct("<I")


def derive(key: bytes, label: bytes) -> AESGCM:
    """One AES-GCM key per purpose (journal, meta, snapshot) from the manager key."""
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError(f"the at-rest key must be {KEY_SIZE} bytes")
    return AESGCM(HKDF(hashes.SHA256(), 32, salt=None, info=label).derive(key))


def fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """tmp file, fsync, rename, fsync the directory (also persisting earlier renames).
    On failure the tmp file is removed (a full disk gets its space back) and `path`
    is as it was."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(path)
    except OSError:
        _remove_quietly(tmp)
        raise
    crash_point("atomic.before_rename")
    os.replace(tmp, path)
    fsync_dir(path)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def describe(exc: OSError) -> str:
    """What went wrong with the disk, for logs and `node inspect`."""
    return f"{exc.strerror or exc} ({exc.filename})" if exc.filename else str(exc.strerror or exc)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# ---------------------------------------------------------------- file format

class JournalContents:
    """What a journal file holds (read without changing it)."""

    def __init__(self):
        self.file_id = b""
        self.entries: list[tuple[bytes, int, int]] = []
        self.commit = 1
        self.records = 0
        self.good_size = 0     # bytes up to the end of the last valid record
        self.torn = False      # an unfinished last record was dropped


def read_journal(path: str, key: bytes) -> JournalContents:
    aead = derive(key, b"covey raft journal v1")
    with open(path, "rb") as f:
        data = f.read()
    out = JournalContents()
    out.file_id = _check_header(path, data, aead)
    offset = _HEADER
    while offset < len(data):
        end = _record_end(data, offset)
        if end is None:                       # crash while appending: never synced
            out.torn = True
            break
        aad = out.file_id + out.records.to_bytes(8, "little")
        try:
            ops = aead.decrypt(data[offset + 4:offset + 4 + _NONCE], data[offset + 4 + _NONCE:end], aad)
        except InvalidTag:
            if end == len(data):              # the last record: written, never fsynced
                out.torn = True
                break
            raise FailedPrecondition(f"Raft journal {path} is corrupt or was tampered with "
                                     f"(record {out.records} fails authentication)") from None
        _replay(ops, out)
        out.records += 1
        offset = end
    out.good_size = offset
    return out


def _check_header(path: str, data: bytes, aead: AESGCM) -> bytes:
    if len(data) < _HEADER or not data.startswith(MAGIC):
        raise FailedPrecondition(f"{path} is not a Covey Raft journal (bad header)")
    file_id = data[len(MAGIC):len(MAGIC) + 16]
    nonce = data[len(MAGIC) + 16:len(MAGIC) + 16 + _NONCE]
    try:
        aead.decrypt(nonce, data[len(MAGIC) + 16 + _NONCE:_HEADER], MAGIC + file_id)
    except InvalidTag:
        raise FailedPrecondition(f"Raft journal {path} cannot be opened with this manager's key "
                                 "(wrong key, or the header was tampered with)") from None
    return file_id


def _record_end(data: bytes, offset: int):
    if offset + 4 > len(data):
        return None
    end = offset + 4 + _LEN.unpack_from(data, offset)[0]
    return end if end <= len(data) else None


def _replay(ops: bytes, out: JournalContents) -> None:
    pos = 0
    while pos < len(ops):
        kind = ops[pos]
        if kind == _ADD:
            _, idx, term, size = _ADD_HEAD.unpack_from(ops, pos)
            pos += _ADD_HEAD.size
            out.entries.append((ops[pos:pos + size], idx, term))
            pos += size
        elif kind in (_TRUNC, _COMMIT):
            _, idx = _IDX.unpack_from(ops, pos)
            pos += _IDX.size
            if kind == _COMMIT:
                out.commit = idx
            while kind == _TRUNC and out.entries and out.entries[-1][1] >= idx:
                out.entries.pop()
        else:
            raise FailedPrecondition(f"unknown Raft journal op {kind:#x}")


def _add_op(command: bytes, idx: int, term: int) -> bytes:
    return _ADD_HEAD.pack(_ADD, idx, term, len(command)) + command


# ---------------------------------------------------------------- the journal

class DurableJournal(Journal):
    """pysyncobj's Journal interface; durable at each `sync()`."""

    def __init__(self, path: str, key: bytes):
        self._path = path
        self._key = key
        self._aead = derive(key, b"covey raft journal v1")
        self._meta = MetaFile(path + ".meta", key)
        self._term, self._voted = self._meta.load()
        self._lock = threading.Lock()
        self._pending = bytearray()    # ops since the last record
        self._rewrite = False          # head dropped (compaction) or cleared: rewrite the file
        self._fd: int | None = None
        self._size = 0                 # bytes in the file up to the end of its last whole record
        self._meta_dirty = False       # term/vote changed but not yet durable
        self.disk_error: str | None = None   # why the last write failed; None once one succeeds
        self.disk_error_since = 0.0
        self._disk_errno: int | None = None   # the errno of disk_error
        self._entries: list[tuple[bytes, int, int]]  # (command, index, term), from the file or new
        if os.path.exists(path):
            self._open_existing()
        else:
            self._entries, self._commit = [], 1
            self._write_new_file()
        self._synced_commit = self._commit

    def _open_existing(self) -> None:
        contents = read_journal(self._path, self._key)
        if contents.torn:
            log.warning("raft journal %s: dropping an unfinished last record (crash while "
                        "writing; it was never acknowledged)", self._path)
            with open(self._path, "r+b") as f:
                f.truncate(contents.good_size)
                os.fsync(f.fileno())
        self._entries, self._commit = contents.entries, contents.commit
        self._file_id, self._seq = contents.file_id, contents.records
        self._size = contents.good_size
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)

    def _write_new_file(self) -> None:
        """The whole log as one record in a fresh file (new id, so no nonce/record reuse).
        If it fails, the old file and the old descriptor stay as they were."""
        file_id = os.urandom(16)
        nonce = os.urandom(_NONCE)
        header = MAGIC + file_id + nonce + self._aead.encrypt(nonce, b"", MAGIC + file_id)
        ops = b"".join(_add_op(*entry) for entry in self._entries) + _IDX.pack(_COMMIT, self._commit)
        record = self._seal(ops, file_id, 0)
        write_atomic(self._path, header + record)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND)
        self._file_id, self._seq, self._size = file_id, 1, len(header) + len(record)
        self._pending.clear()
        self._rewrite = False

    def _seal(self, ops: bytes | bytearray, file_id: bytes, seq: int) -> bytes:
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, bytes(ops), file_id + seq.to_bytes(8, "little"))
        return _LEN.pack(len(sealed)) + sealed

    # ------------------------------------------------------------ durability

    def sync(self, force: bool = False) -> bool:
        """Write and fsync what changed, as one record. A commit-index move alone
        waits for the next batch (or `force`): losing it loses nothing.
        True if everything is durable; False if a write failed (undone, retried next time)."""
        with self._lock:
            if self._fd is None:
                return True
            try:
                self._sync_meta()
                self._sync_log(self._fd, force)
            except OSError as exc:
                self._failed(exc)
                return False
            if self.disk_error is not None:
                log.warning("raft journal %s: writes succeed again after %.1f s (%s)", self._path,
                            time.monotonic() - self.disk_error_since, self.disk_error)
                self.disk_error = None
            return True

    def _sync_meta(self) -> None:
        if self._meta_dirty:
            self._meta.store(self._term, self._voted)
            self._meta_dirty = False

    def _sync_log(self, fd: int, force: bool) -> None:
        if self._rewrite:
            crash_point("journal.before_rewrite")
            self._write_new_file()
            self._synced_commit = self._commit
            return
        if not self._pending and not (force and self._commit != self._synced_commit):
            return
        ops = self._pending + (_IDX.pack(_COMMIT, self._commit) if self._commit != self._synced_commit else b"")
        record = self._seal(ops, self._file_id, self._seq)
        try:
            _write_all(fd, record)
            crash_point("journal.after_append")
            os.fsync(fd)
        except OSError:
            self._undo_append(fd)
            raise
        crash_point("journal.after_fsync")
        self._seq += 1
        self._size += len(record)
        self._pending.clear()
        self._synced_commit = self._commit

    def _undo_append(self, fd: int) -> None:
        """Cut the file back to its last whole record. After a failed fsync the kernel may
        have dropped the dirty pages (and reports the error once): the record is rewritten
        whole next time, never trusted. If even the cut fails, the next sync rewrites the
        file atomically instead of appending to it."""
        try:
            os.ftruncate(fd, self._size)
        except OSError:
            self._rewrite = True

    def _failed(self, exc: OSError) -> None:
        """Log the first failure, and each change of its cause: a disk an error turned
        read-only may first fail an fsync with EIO, then every write with EROFS, and the
        operator must learn that it is read-only (retrying will not help)."""
        reason = describe(exc)
        if self.disk_error is None:
            self.disk_error_since = time.monotonic()
        if self.disk_error is None or exc.errno != self._disk_errno:
            log.error("raft journal %s: cannot write (%s); this manager sends no Raft messages "
                      "until it can, the write is retried", self._path, reason)
        self.disk_error, self._disk_errno = reason, exc.errno

    @property
    def dirty(self) -> bool:
        return bool(self._pending) or self._rewrite or self._meta_dirty

    # ------------------------------------------------------------ Journal interface

    def add(self, command, idx, term):
        command = command if isinstance(command, bytes) else bytes(command)
        self._entries.append((command, idx, term))
        if not self._rewrite:
            self._pending += _add_op(command, idx, term)

    def clear(self):
        self._entries = []
        self._pending.clear()
        self._rewrite = True

    def deleteEntriesFrom(self, entryFrom):
        if entryFrom >= len(self._entries):
            return
        from_idx = self._entries[entryFrom][1]
        del self._entries[entryFrom:]
        if not self._rewrite:
            self._pending += _IDX.pack(_TRUNC, from_idx)

    def deleteEntriesTo(self, entryTo):
        del self._entries[:entryTo]
        self._pending.clear()
        self._rewrite = True

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self):
        return len(self._entries)

    def _destroy(self):
        self.sync(force=True)
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def flush(self):
        self.sync(force=True)

    def onOneSecondTimer(self):
        self.sync(force=True)

    def setRaftCommitIndex(self, raftCommitIndex):
        self._commit = raftCommitIndex
        self.sync()

    def getRaftCommitIndex(self):
        return self._commit

    def setCurrentTerm(self, term, votedForNodeId):
        # Stored at the next sync, which runs before any message leaves (the vote or the
        # request for votes): raising here would kill pysyncobj's tick on a full disk.
        self._term, self._voted = term, votedForNodeId
        self._meta_dirty = True
        self.sync()

    def getCurrentTerm(self):
        return self._term

    def getVotedForNodeId(self):
        return self._voted


class MetaFile:
    """currentTerm and votedFor, sealed, replaced atomically."""

    def __init__(self, path: str, key: bytes):
        self._path = path
        self._aead = derive(key, b"covey raft meta v1")

    def load(self) -> tuple[int, str | None]:
        if not os.path.exists(self._path):
            return 0, None
        with open(self._path, "rb") as f:
            data = f.read()
        if not data.startswith(META_MAGIC) or len(data) < len(META_MAGIC) + _NONCE + 16:
            raise FailedPrecondition(f"{self._path} is not a Covey Raft meta file")
        nonce = data[len(META_MAGIC):len(META_MAGIC) + _NONCE]
        try:
            plain = self._aead.decrypt(nonce, data[len(META_MAGIC) + _NONCE:], META_MAGIC)
        except InvalidTag:
            raise FailedPrecondition(f"Raft meta file {self._path} cannot be opened with this "
                                     "manager's key (wrong key, or it was tampered with)") from None
        term, has_vote = struct.unpack_from("<QB", plain)
        return term, plain[9:].decode() if has_vote else None

    def store(self, term: int, voted: str | None) -> None:
        plain = struct.pack("<QB", term, voted is not None) + (str(voted).encode() if voted is not None else b"")
        nonce = os.urandom(_NONCE)
        write_atomic(self._path, META_MAGIC + nonce + self._aead.encrypt(nonce, plain, META_MAGIC))
