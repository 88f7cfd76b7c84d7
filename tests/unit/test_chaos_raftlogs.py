"""The chaos suite's comparison of committed Raft logs (tests/chaos/raftlogs.py)."""
from tests.chaos.raftlogs import CommittedLog, compare


def test_logs_that_agree_where_they_overlap():
    a = CommittedLog("m1", {1: (0, b""), 2: (1, b"x"), 3: (1, b"y")})
    b = CommittedLog("m2", {2: (1, b"x"), 3: (1, b"y"), 4: (2, b"z")})   # compacted below 2, one more
    assert compare([a, b]) == (2, [])


def test_a_different_term_or_command_at_one_index_is_named():
    a = CommittedLog("m1", {2: (1, b"x"), 3: (1, b"y")})
    b = CommittedLog("m2", {2: (1, b"x"), 3: (2, b"y")})
    c = CommittedLog("m3", {2: (1, b"other")})
    compared, disagreements = compare([a, b, c])
    assert compared == 4
    assert disagreements == ["index 3: m1 has term 1, m2 has term 2",
                             "index 2: m1 has term 1, m3 has term 1 (other command)",
                             "index 2: m2 has term 1, m3 has term 1 (other command)"]
