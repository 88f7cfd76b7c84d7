"""The chaos suite's register checker (tests/chaos/linearizability.py) on histories whose
answer is known."""
from tests.chaos.linearizability import INFINITY, Op, check, check_key


def op(kind, value, invoked, completed, outcome="ok", key="k"):
    return Op(key, kind, value, invoked, completed, outcome)


def test_a_sequential_history_is_linearizable():
    h = [op("write", 1, 0, 1), op("read", 1, 2, 3), op("cas", (1, 2), 4, 5), op("read", 2, 6, 7)]
    assert check_key("k", h).ok


def test_a_stale_read_after_an_acknowledged_write_is_not():
    h = [op("write", 1, 0, 1), op("write", 2, 2, 3), op("read", 1, 4, 5)]
    verdict = check_key("k", h)
    assert not verdict.ok
    assert [o.kind for o in verdict.longest_prefix] == ["write", "write"]


def test_concurrent_operations_may_take_effect_in_either_order():
    h = [op("write", 1, 0, 10), op("write", 2, 1, 10), op("read", 1, 11, 12)]
    assert check_key("k", h).ok
    h = [op("write", 1, 0, 10), op("write", 2, 1, 10), op("read", 1, 11, 12), op("read", 2, 13, 14)]
    assert not check_key("k", h).ok


def test_an_unknown_outcome_may_or_may_not_have_happened():
    happened = [op("write", 1, 0, 1), op("write", 2, 2, INFINITY, "info"), op("read", 2, 5, 6)]
    did_not = [op("write", 1, 0, 1), op("write", 2, 2, INFINITY, "info"), op("read", 1, 5, 6)]
    assert check_key("k", happened).ok and check_key("k", did_not).ok
    flip_flop = did_not + [op("read", 2, 7, 8), op("read", 1, 9, 10)]
    assert not check_key("k", flip_flop).ok


def test_a_failed_write_never_happened():
    h = [op("write", 1, 0, 1), op("write", 2, 2, 3, "fail"), op("read", 2, 5, 6)]
    assert not check_key("k", h).ok


def test_compare_and_set_needs_the_expected_value():
    assert not check_key("k", [op("write", 1, 0, 1), op("cas", (5, 6), 2, 3)]).ok
    assert check_key("k", [op("write", 1, 0, 1), op("cas", (5, 6), 2, 3, "fail")]).ok


def test_keys_are_checked_apart():
    verdicts = check([op("write", 1, 0, 1, key="a"), op("read", 1, 2, 3, key="a"),
                      op("write", 1, 0, 1, key="b"), op("read", None, 2, 3, key="b")])
    assert [(v.key, v.ok) for v in verdicts] == [("a", True), ("b", False)]


def test_many_unknown_writes_stay_tractable():
    h = [op("write", i, 2 * i, INFINITY, "info") for i in range(40)]
    h += [op("read", 39, 100, 101), op("write", 100, 102, 103), op("read", 100, 104, 105)]
    verdict = check_key("k", h)
    assert verdict.ok and verdict.explored < 10_000
