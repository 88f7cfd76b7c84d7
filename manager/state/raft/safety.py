"""The Raft safety layer over pysyncobj 0.3.17 (docs/design.md, "Control plane").

What pysyncobj gets wrong, and what this module does about it:

1. On an append_entries whose prevLogIdx is below the follower's last index
   it truncates the tail unconditionally (and rolls back membership changes
   in it), even when the tail matches the leader's log: a stale heartbeat
   drops acknowledged entries. `install()` wraps the message handler so that
   only the first entry whose term conflicts is truncated, as Raft says.
2. Its FileJournal never fsyncs: `DurableJournal` (raftjournal.py) appends
   one sealed record per batch and fsyncs it before any message leaves the
   node (`DurableTransport.send`) and when the commit index moves. While the
   journal cannot be written (disk full), nothing is sent and nothing applied.
3. Its files are plaintext pickles: journal, meta and snapshot are sealed
   with AES-GCM under a per-manager key.
4. Snapshots are pickles: here they are protobuf (raftsnap.py).
5. Its transport reads frames of any size before authenticating them:
   `DurableTransport` refuses to run without the cluster key, caps frame
   sizes (small until the peer proved the key) and the number of
   connections still in their handshake.
6. A follower that refuses an append answers "send from N", and the leader
   takes the last answer, while it pipelines many batches per round trip. The
   answers to later batches ("I lack that: from my last index + 1") undid the
   answer to the first ("my entry there conflicts: from one index back"), so an
   old leader with an uncommitted tail was sent the same batches forever.
   `_ask_from_commit` makes every refusal ask for the entries after this
   follower's commit index: they are in every later leader's log, so the next
   append matches and truncates the tail, and every refusal names the same index.

Use:
    conf_kwargs, transport_class = syncobj_options(raft_dir, at_rest_key, get_tables, set_tables)
    SyncObj(addr, peers, SyncObjConf(**conf_kwargs, ...), consumers=[...],
            transportClass=transport_class)
"""
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pysyncobj.pickle as pysyncobj_pickle
import pysyncobj.syncobj as pysyncobj_syncobj
import pysyncobj.version as pysyncobj_version
from pysyncobj.syncobj import SyncObj
from pysyncobj.transport import TCPTransport

from covey.errors import FailedPrecondition
from manager.state.raft.journal import KEY_SIZE, DurableJournal
from manager.state.raft.snapshots import SnapshotCodec, SnapshotSerializer

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.cvy"
SNAPSHOT_NAME = "snapshot.cvy"
LEGACY_NAMES = ("journal.bin", "snapshot.bin")   # what store.py wrote before this layer

# The layer reaches into pysyncobj's private attributes: only the version it was written
# against (pinned in pyproject.toml) is known to have them as they are read here.
PYSYNCOBJ_VERSION = "0.3.17"

_STOCK_CREATE_JOURNAL = pysyncobj_syncobj.createJournal
_STOCK_SERIALIZER = pysyncobj_syncobj.Serializer
_STOCK_ON_MESSAGE = SyncObj._SyncObj__onMessageReceived
_STOCK_APPLY = SyncObj._SyncObj__applyLogEntries
_STOCK_ON_TICK = SyncObj._onTick
_STOCK_SEND_NEXT_NODE_IDX = SyncObj._SyncObj__sendNextNodeIdx

_JOURNALS: dict[str, bytes] = {}              # journal path -> at-rest key
_SNAPSHOTS: dict[str, SnapshotCodec] = {}     # snapshot path -> codec


# ---------------------------------------------------------------- public API

def syncobj_options(raft_dir: Path, at_rest_key: bytes, get_tables: Callable[[], dict],
                    set_tables: Callable[[dict], None]) -> tuple[dict, type]:
    """SyncObjConf keyword arguments and the transport class for one manager.

    Raises FailedPrecondition if the Raft files there cannot be opened with
    `at_rest_key` (wrong key, tampered or not ours), before anything starts.
    """
    install()
    if not isinstance(at_rest_key, bytes) or len(at_rest_key) != KEY_SIZE:
        raise ValueError(f"the at-rest key must be {KEY_SIZE} bytes")
    raft_dir.mkdir(parents=True, exist_ok=True)
    for legacy in LEGACY_NAMES:
        if (raft_dir / legacy).exists():      # starting empty beside it would lose the cluster state
            raise FailedPrecondition(f"{raft_dir / legacy} is an unencrypted pysyncobj file; "
                                     "this manager only reads sealed Raft files (move it away)")
    journal = os.path.abspath(raft_dir / JOURNAL_NAME)
    snapshot = os.path.abspath(raft_dir / SNAPSHOT_NAME)
    codec = SnapshotCodec(snapshot, at_rest_key, get_tables, set_tables)
    if os.path.exists(snapshot):
        codec.read()                          # fail now, not in pysyncobj's thread (it would log and go on)
    _JOURNALS[journal] = at_rest_key
    _SNAPSHOTS[snapshot] = codec
    conf = {
        "journalFile": journal,
        "fullDumpFile": snapshot,
        "serializer": codec.serializer,
        "deserializer": codec.deserializer,
        # With a serializer pysyncobj never forks; say so: the snapshot is taken on
        # its thread, where the tables are consistent with the last applied entry.
        "useFork": False,
    }
    return conf, DurableTransport


def recommended_conf(election_min: float = 0.4, election_max: float = 1.4) -> dict:
    """Timings measured by tests/bench/bench_raft.py (see its docstring)."""
    return {
        "raftMinTimeout": election_min,
        "raftMaxTimeout": election_max,
        "appendEntriesPeriod": 0.01,
        "autoTickPeriod": 0.005,
        "appendEntriesUseBatch": True,
        # A leader that has not heard from a majority for one election timeout
        # steps down: by then the others may be electing a new one.
        "leaderFallbackTimeout": election_max,
    }


def install() -> None:
    """Apply the fixes (1, 2, 6) and the journal/serializer factories (idempotent).
    Must run before the SyncObj is created: it binds its handler in __init__.
    Refuses, before patching anything, a pysyncobj other than the one it was written for."""
    if pysyncobj_version.VERSION != PYSYNCOBJ_VERSION:
        raise FailedPrecondition(
            f"pysyncobj {pysyncobj_version.VERSION} is installed, but Covey's Raft safety layer "
            f"patches private parts of pysyncobj {PYSYNCOBJ_VERSION} only: install "
            f"pysyncobj=={PYSYNCOBJ_VERSION}")
    if getattr(SyncObj._SyncObj__onMessageReceived, "_covey_fixed", False):
        return
    SyncObj._SyncObj__onMessageReceived = _on_message_received
    SyncObj._SyncObj__applyLogEntries = _apply_durable_entries
    SyncObj._onTick = _on_tick_no_election_while_not_durable
    SyncObj._SyncObj__sendNextNodeIdx = _ask_from_commit
    pysyncobj_syncobj.createJournal = _create_journal
    pysyncobj_syncobj.Serializer = _create_serializer


def _create_journal(journalFile=None):
    key = _JOURNALS.get(os.path.abspath(journalFile)) if journalFile else None
    if key is None:
        return _STOCK_CREATE_JOURNAL(journalFile)
    return DurableJournal(os.path.abspath(journalFile), key)


def _create_serializer(fileName, transmissionBatchSize, tryUseFork, serializer, deserializer, serializeChecker):
    """Called as pysyncobj 0.3.17's SyncObj calls its Serializer, with these six."""
    args = (fileName, transmissionBatchSize, tryUseFork, serializer, deserializer, serializeChecker)
    codec = _SNAPSHOTS.get(os.path.abspath(fileName)) if fileName else None
    if codec is None:
        return _STOCK_SERIALIZER(*args)
    return SnapshotSerializer(*args, codec=codec)


# ---------------------------------------------------------------- 1. truncation fix

def _on_message_received(self, node, message):
    message, keep_until = _plan_append(self, message)
    if keep_until is None:
        return _STOCK_ON_MESSAGE(self, node, message)
    # Everything the leader sent matches, and our log goes further: let pysyncobj
    # see the log end at the last entry the message covers, so that it neither
    # truncates nor acknowledges entries it did not check; then show it again.
    journal = self._SyncObj__raftLog
    commit = self._SyncObj__raftCommitIndex
    self._SyncObj__raftLog = _PrefixView(journal, keep_until)
    try:
        return _STOCK_ON_MESSAGE(self, node, message)
    finally:
        self._SyncObj__raftLog = journal
        if self._SyncObj__raftCommitIndex < commit:
            self._SyncObj__raftCommitIndex = commit   # the commit index never goes down
            journal.setRaftCommitIndex(commit)


# A marker on the function itself, which install() looks for on SyncObj's handler: mypy
# has no attributes for functions.
_on_message_received._covey_fixed = True  # type: ignore[attr-defined]


def _plan_append(self, message):
    """(message to hand pysyncobj, how many of our log entries to show it:
    None for all)."""
    if not isinstance(message, dict) or message.get("type") != "append_entries" or "prevLogIdx" not in message:
        return message, None
    if message.get("term", -1) < self._SyncObj__raftCurrentTerm:
        return message, None                          # pysyncobj ignores it
    message = _assemble_transmission(self, message)
    if message.get("transmission") is not None:
        return message, None                          # a piece of a large entry
    log_ = self._SyncObj__raftLog
    prev, entries = message["prevLogIdx"], list(message.get("entries", []))
    first, last = log_[0][1], log_[-1][1]
    if prev is None or not first <= prev <= last or log_[prev - first][2] != message["prevLogTerm"]:
        return message, None                          # pysyncobj answers "reset" and keeps the log
    if any(entry[1] != prev + 1 + i for i, entry in enumerate(entries)):
        return message, None
    matched = 0
    while matched < len(entries) and entries[matched][1] <= last \
            and log_[entries[matched][1] - first][2] == entries[matched][2]:
        matched += 1
    end = prev + len(entries)
    if matched == len(entries) and end < last:        # all ours already: keep our tail
        return _rebased(message, end, log_[end - first][2], []), end - first + 1
    if matched == 0:
        return message, None
    # Drop what matches: pysyncobj then truncates only at a real conflict (or appends)
    new_prev = entries[matched - 1][1]
    return _rebased(message, new_prev, entries[matched - 1][2], entries[matched:]), None


def _rebased(message: dict, prev: int, prev_term: int, entries: list) -> dict:
    message = dict(message)
    message.update(prevLogIdx=prev, prevLogTerm=prev_term, entries=entries)
    return message


def _assemble_transmission(self, message: dict):
    """A large entry comes in pieces; take the last piece's whole entry here, as
    pysyncobj would, so that it goes through the same rule.

    pysyncobj's leader marks a piece "finish" once the entry's data (not its pickled form,
    which is longer) would end within it, so the real end may come in a later piece, also
    marked "finish". A "finish" whose bytes do not unpickle yet is passed on as "process"
    (pysyncobj keeps gathering); the real last piece then completes the entry."""
    if message.get("transmission") != "finish" or not isinstance(self._SyncObj__recvTransmission, bytes):
        return message
    try:
        entry = pysyncobj_pickle.loads(self._SyncObj__recvTransmission + message["data"])
    except Exception:  # truncated: not the last piece yet
        return dict(message, transmission="process")
    self._SyncObj__recvTransmission = ""
    message = {k: v for k, v in message.items() if k not in ("transmission", "data")}
    message["entries"] = [entry]
    return message


class _PrefixView:
    """The first `count` entries of a journal; everything else goes to the journal."""

    def __init__(self, journal, count: int):
        self._journal = journal
        self._count = count

    def __len__(self):
        return self._count

    def __getitem__(self, item):
        if isinstance(item, slice):
            return self._journal[slice(*item.indices(self._count))]
        if item < 0:
            item += self._count
        if not 0 <= item < self._count:
            raise IndexError(item)
        return self._journal[item]

    def __getattr__(self, name):
        return getattr(self._journal, name)


# ---------------------------------------------------------------- 2. apply only what is durable

def _apply_durable_entries(self):
    """A leader alone counts itself a majority and applies (acknowledges) as soon as it
    appended: with a journal that cannot be written, apply nothing until the retried
    write succeeds. On a healthy journal this costs one attribute read per tick."""
    journal = self._SyncObj__raftLog
    if getattr(journal, "disk_error", None) is not None and journal.sync() is False:
        return False
    return _STOCK_APPLY(self)


def _on_tick_no_election_while_not_durable(self, timeToWait=0.0):
    """A manager that cannot write its term and vote cannot run for leader: it would bump
    its term in memory at every election timeout, send nothing, know no leader (so its API
    would answer "no leader" instead of why), and on recovery disrupt the healthy leader
    with its runaway term. It stays a follower until a write succeeds."""
    journal = self._SyncObj__raftLog
    if getattr(journal, "disk_error", None) is not None and journal.sync() is False:
        self._SyncObj__raftElectionDeadline = pysyncobj_syncobj.monotonicTime() + self._SyncObj__generateRaftTimeout()
    return _STOCK_ON_TICK(self, timeToWait)


# ---------------------------------------------------------------- 6. refusals that agree

def _ask_from_commit(self, node, reset=False, nextNodeIdx=None, success=False):
    """pysyncobj's answer to an append, but a refusal ("reset") asks for no later entry
    than the first one after this follower's commit index."""
    if reset and not success:
        asked = self._SyncObj__getCurrentLogIndex() + 1 if nextNodeIdx is None else nextNodeIdx
        nextNodeIdx = min(asked, self._SyncObj__raftCommitIndex + 1)
    return _STOCK_SEND_NEXT_NODE_IDX(self, node, reset=reset, nextNodeIdx=nextNodeIdx, success=success)


# ---------------------------------------------------------------- 2 and 5. the transport

@dataclass(frozen=True)
class TransportLimits:
    handshake_frame: int = 4096           # before the peer proved it has the cluster key
    frame: int = 64 * 1024 * 1024         # after (entries are batched by 64 KiB by default)
    pending_handshakes: int = 64


class DurableTransport(TCPTransport):
    """pysyncobj's TCP transport that (a) fsyncs the journal before any message
    leaves, so nothing is acknowledged or replicated before it is durable here,
    and (b) refuses unencrypted operation and oversized or excess unauthenticated
    frames and connections."""

    limits = TransportLimits()

    def __init__(self, syncObj, selfNode, otherNodes):
        if syncObj.encryptor is None:
            raise FailedPrecondition("the Raft transport needs the cluster key (SyncObjConf password)")
        self._journal = syncObj._SyncObj__raftLog
        self._handshakes: list = []       # incoming connections not yet authenticated, oldest first
        super().__init__(syncObj, selfNode, otherNodes)

    def send(self, node, message):
        # Nothing leaves before it is durable here: a journal that cannot be written
        # (disk full, read-only) silences this manager. A leader then gets no answers and
        # steps down after leaderFallbackTimeout; it catches up once a write succeeds.
        sync = getattr(self._journal, "sync", None)
        if sync is not None and sync() is False:
            return False
        return super().send(node, message)

    def addNode(self, node):
        super().addNode(node)
        conn = self._connections.get(node)
        if conn is not None:
            _guard(conn, self.limits)

    def _onNewIncomingConnection(self, conn):
        # Bound the connections still in their handshake; evict the oldest so that
        # an attacker holding many open cannot lock real peers out.
        self._handshakes = [c for c in self._handshakes if c in self._unknownConnections]
        while len(self._handshakes) >= self.limits.pending_handshakes:
            self._handshakes.pop(0).disconnect()
        _guard(conn, self.limits)
        super()._onNewIncomingConnection(conn)
        self._handshakes.append(conn)


def _guard(conn, limits: TransportLimits) -> None:
    """Check each frame's length as soon as it is read, before buffering it whole."""
    read = conn._TcpConnection__processRead

    def guarded_read():
        more = read()
        buffer = conn._TcpConnection__readBuffer
        if len(buffer) >= 4:
            size = struct.unpack_from("i", buffer)[0]
            cap = limits.frame if conn.sendRandKey else limits.handshake_frame
            if not 0 < size <= cap:
                log.warning("raft: dropping a connection that sent a %d-byte frame", size)
                conn.disconnect()
                return False
        return more

    conn._TcpConnection__processRead = guarded_read
