"""Linearizable reads over pysyncobj 0.3.17: a read index (Raft thesis, section 6.4).

A manager about to answer a read asks the leader for a read index; the leader takes its
commit index, then confirms it still leads with one round of messages to the members: a
majority (itself included) that still sees it as the leader of its term proves that no
newer leader had been elected when the read began, so no write acknowledged before then
can be beyond that index. The asking manager answers once it has applied up to the index.

Why a heartbeat round and not a lease: a lease (answering while a majority was heard from
within less than an election timeout) is sound only if followers refuse to vote while they
hear from a leader, and pysyncobj's followers grant a vote to any candidate of a higher
term at once (SyncObj.__onMessageReceived, "request_vote"). The round costs one round trip
between managers (a few ms on a LAN) per read: measured by tests/bench/bench_reads.py.

The messages are pysyncobj transport messages (authenticated and encrypted with the cluster
key like Raft's own) of the types in MESSAGE_TYPES; `route` takes them off the transport
before pysyncobj sees them. Everything here runs on pysyncobj's thread but `request`.
"""
import collections
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.syncobj import _RAFT_STATE, SyncObj

from covey.errors import NO_LEADER

log = logging.getLogger(__name__)

ASK, GRANT, REFUSE, PING, PONG = "covey_read", "covey_read_ok", "covey_read_refused", "covey_ping", "covey_pong"
MESSAGE_TYPES = frozenset({ASK, GRANT, REFUSE, PING, PONG})

# Reasons a read is refused (the caller raises Unavailable with them).
NO_CONTACT = "this manager cannot reach the leader to confirm that its state is current"
NOT_LEADER = "the manager asked for a read index is no longer the leader"
NEW_LEADER = "the leader was elected a moment ago and has not yet committed an entry of its term"
EXPIRED = "the leader did not confirm its leadership with a majority of the managers in time"

Done = Callable[[int | None, str], None]   # (index, "") when granted; (None, reason) when refused


@dataclass
class _Round:
    """One leadership confirmation: the asks it answers, at the commit index it read."""
    term: int
    index: int
    expires: float
    asks: list = field(default_factory=list)     # (origin node or None for this one, request id)
    acks: set = field(default_factory=set)


class ReadIndex:
    def __init__(self, raft: SyncObj, noop_index: Callable[[], int], expiry: float):
        """`noop_index()`: the index of the no-op of this manager's current leadership;
        `expiry`: how long a request or round may wait before it is refused."""
        self._raft = raft
        self._noop_index = noop_index
        self._expiry = expiry
        self._lock = threading.Lock()
        self._new: collections.deque = collections.deque()   # (request id, done), from any thread
        self._ids = itertools.count(1)
        self._asked: dict[int, tuple[float, Done]] = {}       # request id -> (expires, done)
        self._applying: list[tuple[int, float, Done]] = []     # (index, expires, done)
        self._rounds: dict[int, _Round] = {}
        self._round_ids = itertools.count(1)
        # A pipe that wakes pysyncobj's poller for a new request: without it, a request
        # waits for the next tick (autoTickPeriod), which was most of a read's cost.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._watching = False
        raft.addOnTickCallback(self._tick)

    # ---------------------------------------------------------------- any thread

    def request(self, done: Done) -> None:
        """Ask for a read index; `done` is called on pysyncobj's thread once this replica
        has applied it, or with the reason it was refused."""
        with self._lock:
            self._new.append((next(self._ids), done))
        try:
            os.write(self._wake_w, b"r")
        except BlockingIOError:
            pass   # the pipe is full of wake-ups already

    def stop(self) -> None:
        """Before pysyncobj stops: no more ticks here."""
        self._raft.removeOnTickCallback(self._tick)

    def close(self) -> None:
        """After pysyncobj's thread ended."""
        os.close(self._wake_r)
        os.close(self._wake_w)

    def route(self, handle: Callable) -> Callable:
        """The transport's message callback: our messages here, the rest to `handle`."""
        def on_message(node, message):
            if isinstance(message, dict) and message.get("type") in MESSAGE_TYPES:
                try:
                    self._on_message(node, message)
                except Exception:  # a malformed message must not stop Raft's thread
                    log.exception("raft: bad read-index message %r", message.get("type"))
                return None
            return handle(node, message)
        return on_message

    # ---------------------------------------------------------------- pysyncobj's thread

    def _tick(self) -> None:
        if not self._watching:   # the poller is pysyncobj's thread's own: subscribe from it
            self._raft._poller.subscribe(self._wake_r, self._on_wake, POLL_EVENT_TYPE.READ)
            self._watching = True
        now = time.monotonic()
        self._take_new(now)
        self._expire(now)
        self._apply_ready()

    def _on_wake(self, descr, event_mask) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        self._take_new(time.monotonic())

    def _take_new(self, now: float) -> None:
        with self._lock:
            new, self._new = list(self._new), collections.deque()
        for rid, done in new:
            self._ask(rid, done, now)

    def _ask(self, rid: int, done: Done, now: float) -> None:
        if self._raft._isLeader():
            self._asked[rid] = (now + self._expiry, done)
            self._confirm(None, rid, now)
            return
        leader = self._raft._getLeader()
        if leader is None:
            done(None, NO_LEADER)
            return
        self._asked[rid] = (now + self._expiry, done)
        if not self._send(leader, {"type": ASK, "rid": rid}):
            self._refused(rid, NO_CONTACT)

    def _confirm(self, origin, rid: int, now: float) -> None:
        """As the leader: start a round for one ask (from `origin`, None for this manager)."""
        why = self._cannot_grant()
        if why:
            self._answer(origin, rid, None, why)
            return
        term = self._raft._SyncObj__raftCurrentTerm
        round_ = _Round(term, self._raft._SyncObj__raftCommitIndex, now + self._expiry, [(origin, rid)], {None})
        round_id = next(self._round_ids)
        self._rounds[round_id] = round_
        for node in list(self._raft._SyncObj__otherNodes):
            self._send(node, {"type": PING, "round": round_id, "term": term})
        self._settle_round(round_id)   # a lone manager is its own majority

    def _cannot_grant(self) -> str:
        if not self._raft._isLeader():
            return NOT_LEADER
        if self._raft._SyncObj__raftCommitIndex < self._noop_index():
            return NEW_LEADER   # entries of earlier terms may be committed beyond what it knows
        return ""

    def _on_message(self, node, message: dict) -> None:
        kind = message["type"]
        if kind == ASK:
            self._confirm(node, int(message["rid"]), time.monotonic())
        elif kind == PING:
            self._send(node, {"type": PONG, "round": message["round"], "ok": self._follows(node, message["term"])})
        elif kind == PONG:
            round_ = self._rounds.get(message["round"])
            if round_ is not None and message["ok"] is True:
                round_.acks.add(node)
                self._settle_round(message["round"])
        elif kind == GRANT:
            entry = self._asked.pop(int(message["rid"]), None)
            if entry is not None:
                self._applying.append((int(message["index"]), entry[0], entry[1]))
                self._apply_ready()
        elif kind == REFUSE:
            self._refused(int(message["rid"]), str(message["why"]))

    def _follows(self, node, term) -> bool:
        """This replica sees `node` as the leader of `term` (so it has not voted past it)."""
        raft = self._raft
        return (term == raft._SyncObj__raftCurrentTerm and raft._getLeader() == node
                and raft._SyncObj__raftState == _RAFT_STATE.FOLLOWER)

    def _settle_round(self, round_id: int) -> None:
        round_ = self._rounds[round_id]
        if round_.term != self._raft._SyncObj__raftCurrentTerm or not self._raft._isLeader():
            del self._rounds[round_id]
            for origin, rid in round_.asks:
                self._answer(origin, rid, None, NOT_LEADER)
            return
        members = len(self._raft._SyncObj__otherNodes) + 1
        if 2 * len(round_.acks) > members:
            del self._rounds[round_id]
            for origin, rid in round_.asks:
                self._answer(origin, rid, round_.index, "")

    def _answer(self, origin, rid: int, index: int | None, why: str) -> None:
        if origin is None:   # this manager's own read
            if index is None:
                self._refused(rid, why)
                return
            entry = self._asked.pop(rid, None)
            if entry is not None:
                self._applying.append((index, entry[0], entry[1]))
                self._apply_ready()
            return
        message = {"type": GRANT, "rid": rid, "index": index} if index is not None \
            else {"type": REFUSE, "rid": rid, "why": why}
        self._send(origin, message)

    def _refused(self, rid: int, why: str) -> None:
        entry = self._asked.pop(rid, None)
        if entry is not None:
            entry[1](None, why)

    def _apply_ready(self) -> None:
        applied = self._raft._SyncObj__raftLastApplied
        ready = [entry for entry in self._applying if entry[0] <= applied]
        if ready:
            self._applying = [entry for entry in self._applying if entry[0] > applied]
            for index, _, done in ready:
                done(index, "")

    def _expire(self, now: float) -> None:
        """Refuse what waited too long, or waits for a leader that is gone."""
        leaderless = self._raft._getLeader() is None
        for rid in [rid for rid, (expires, _) in self._asked.items() if expires < now or leaderless]:
            self._refused(rid, NO_LEADER if leaderless else EXPIRED if self._raft._isLeader() else NO_CONTACT)
        term = self._raft._SyncObj__raftCurrentTerm
        for round_id in list(self._rounds):
            round_ = self._rounds[round_id]
            lost = round_.term != term or not self._raft._isLeader()
            if lost or round_.expires < now:
                del self._rounds[round_id]
                why = (NO_LEADER if leaderless else NOT_LEADER) if lost else EXPIRED
                for origin, rid in round_.asks:
                    self._answer(origin, rid, None, why)
        late = [entry for entry in self._applying if entry[1] < now]
        if late:
            self._applying = [entry for entry in self._applying if entry[1] >= now]
            for _, _, done in late:
                done(None, "this manager did not apply the leader's committed entries in time")

    def _send(self, node, message: dict) -> bool:
        return bool(self._raft._SyncObj__transport.send(node, message))
