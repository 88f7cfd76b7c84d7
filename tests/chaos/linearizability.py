"""A linearizability checker for single registers (tests/chaos), keys checked apart.

Wing & Gong's search with Lowe's memoization, as Porcupine does it: repeatedly pick an
operation that may take effect next (none of the operations still to place returned
before it was invoked), apply it to the model if the model allows it, and backtrack when
stuck; a (set of placed operations, register value) pair already explored is not explored
again.

Outcomes: "ok" must take effect, between its invocation and its completion; "fail" certainly
did not (left out); "info" may or may not have: it has no completion time, and the search
succeeds without placing it. Reads that did not complete ok observed nothing (left out).

Operations on one register: ("read", None) -> value, ("write", v), ("cas", (old, new)).
A register that was never written holds None.
"""
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

INFINITY = float("inf")


@dataclass(frozen=True)
class Op:
    key: str
    kind: str              # read | write | cas
    value: object          # write: the value; cas: (expected, new); read: the value read
    invoked: float
    completed: float       # INFINITY for "info"
    outcome: str           # ok | fail | info
    process: int = 0


@dataclass
class Verdict:
    key: str
    ok: bool
    operations: int
    explored: int
    # On failure: the longest sequence of operations that could be placed, for the report.
    longest_prefix: list = field(default_factory=list)


def step(kind: str, value: object, state: object) -> tuple[bool, object]:
    """(allowed, next state) of the register model."""
    if kind == "read":
        return value == state, state
    if kind == "write":
        return True, value
    if kind == "cas":
        expected, new = value  # type: ignore[misc]
        return state == expected, (new if state == expected else state)
    raise ValueError(f"unknown register operation {kind!r}")


def relevant(ops: Iterable[Op]) -> list[Op]:
    """What the search must consider: certainly-not-applied operations and reads that
    observed nothing are left out."""
    kept = []
    for op in ops:
        if op.outcome == "fail" or (op.kind == "read" and op.outcome != "ok"):
            continue
        if op.outcome == "info":
            op = Op(op.key, op.kind, op.value, op.invoked, INFINITY, "info", op.process)
        kept.append(op)
    return sorted(kept, key=lambda o: o.invoked)


def check_key(key: str, ops: list[Op], budget: int = 2_000_000) -> Verdict:
    ops = relevant(ops)
    required = 0
    for i, op in enumerate(ops):
        if op.outcome == "ok":
            required |= 1 << i
    seen: set[tuple[int, object]] = set()
    best: list[int] = []
    path: list[int] = []
    explored = 0

    def search(placed: int, state: object) -> bool:
        nonlocal explored, best
        if placed & required == required:
            return True
        if (placed, state) in seen:
            return False
        seen.add((placed, state))
        explored += 1
        if explored > budget:
            raise RuntimeError(f"linearizability search for {key} gave up after {budget} states")
        if len(path) > len(best):
            best = list(path)
        first_return = min((op.completed for i, op in enumerate(ops) if not placed >> i & 1), default=INFINITY)
        for i, op in enumerate(ops):
            if placed >> i & 1 or op.invoked > first_return:
                continue
            allowed, after = step(op.kind, op.value, state)
            if allowed:
                path.append(i)
                if search(placed | 1 << i, after):
                    return True
                path.pop()
        return False

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * len(ops) + 100))
    try:
        ok = search(0, None)
    finally:
        sys.setrecursionlimit(limit)
    return Verdict(key, ok, len(ops), explored, [] if ok else [ops[i] for i in best])


def check(history: Iterable[Op]) -> list[Verdict]:
    """One verdict per key."""
    by_key: dict[str, list[Op]] = {}
    for op in history:
        by_key.setdefault(op.key, []).append(op)
    return [check_key(key, ops) for key, ops in sorted(by_key.items())]
