"""How long the leader waits for a node's next heartbeat before it marks the node Down."""
import pytest

from manager.dispatcher import sessions as sessions_module
from manager.dispatcher.sessions import DOWN_AFTER_PERIODS, LATE_FACTOR, Sessions


@pytest.fixture
def beats(monkeypatch):
    """Sessions with a 1 s period and a clock the test moves: beat(gap) -> the allowance."""
    now = [100.0]
    monkeypatch.setattr(sessions_module.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(Sessions, "heartbeat_period", lambda self: 1.0)
    s = Sessions(store=None, managers=list, leader_api_addr=lambda: None)

    def beat(gap: float, node: str = "n1") -> float:
        now[0] += gap
        return s._allowance(node)
    beat.sessions = s
    return beat


def test_a_node_that_beats_every_period_gets_the_four_period_rule(beats):
    assert [beats(1.0) for _ in range(20)] == [DOWN_AFTER_PERIODS * 1.0] * 20


def test_a_node_whose_beats_come_late_gets_twice_its_longest_recent_gap(beats):
    for _ in range(5):
        beats(1.0)
    assert beats(3.0) == LATE_FACTOR * 3.0         # late beats: more room, not a Down
    assert beats(1.0) == LATE_FACTOR * 3.0
    for _ in range(10):                              # ten regular beats later, it is forgotten
        allowance = beats(1.0)
    assert allowance == DOWN_AFTER_PERIODS * 1.0


def test_a_new_session_starts_afresh(beats):
    beats(1.0)
    beats(3.0)
    beats.sessions.end_session("n1")                 # e.g. the node reconnected after a blip
    assert beats(5.0) == DOWN_AFTER_PERIODS * 1.0    # the gap across sessions is no lateness
