"""Named crash points for fault-injection tests (tests/chaos).

With COVEY_CRASH_AT=NAME in its environment, coveyd exits at once (os._exit, no
cleanup, no flush: as a power cut would leave the process's files) the first time it
reaches the point NAME; with NAME:N, the N-th time. Unset, `crash_point` is a
function that does nothing: no lookup, no comparison.

The points (each marked where it is):
    journal.after_append     a journal record written, not yet fsynced   (raft/journal.py)
    journal.after_fsync      a journal record durable, before anything is sent
    journal.before_rewrite   about to replace the journal with a compacted one
    atomic.before_rename     a new journal, meta or snapshot file fsynced, not yet renamed
    snapshot.after_write     a snapshot written and fsynced, before pysyncobj renames it
                                                                           (raft/snapshots.py)
    apply.before_entry       a committed entry about to be applied      (manager/state/tables.py)
"""
import os
import sys

ENV = "COVEY_CRASH_AT"
EXIT_CODE = 86     # what a crash point exits with (tests tell it from a real failure)

POINTS = ("journal.after_append", "journal.after_fsync", "journal.before_rewrite",
          "atomic.before_rename", "snapshot.after_write", "apply.before_entry")


def _parse(value: str) -> tuple[str, int]:
    name, _, count = value.partition(":")
    if name not in POINTS:
        raise ValueError(f"{ENV}={value!r}: unknown crash point {name!r}; known: {', '.join(POINTS)}")
    if count and (not count.isdigit() or int(count) < 1):
        raise ValueError(f"{ENV}={value!r}: the count after ':' must be a positive integer")
    return name, int(count or 1)


def _no_crash(name: str) -> None:
    pass


def _armed(target: str, count: int):
    hits = 0

    def crash_point(name: str) -> None:
        nonlocal hits
        if name != target:
            return
        hits += 1
        if hits >= count:
            sys.stderr.write(f"coveyd: crash point {name} reached ({ENV}), exiting\n")
            sys.stderr.flush()
            os._exit(EXIT_CODE)
    return crash_point


def _install():
    value = os.environ.get(ENV, "")
    return _armed(*_parse(value)) if value else _no_crash


crash_point = _install()
