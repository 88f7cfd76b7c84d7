import pytest

from covey.errors import InvalidArgument
from covey.units import format_bytes, format_duration, parse_bytes, parse_duration
from coveyd.settings import Settings


@pytest.mark.parametrize("text,nanos", [("1s", 10**9), ("250ms", 250 * 10**6), ("1m30s", 90 * 10**9),
                                        ("1.5h", 5400 * 10**9), ("0", 0), ("10us", 10_000), ("3ns", 3)])
def test_durations(text, nanos):
    assert parse_duration(text) == nanos


@pytest.mark.parametrize("bad", ["", "5", "s", "1x", "1s2", "-1s", "1 s"])
def test_bad_durations(bad):
    with pytest.raises(InvalidArgument, match="invalid duration"):
        parse_duration(bad)


@pytest.mark.parametrize("text,shown", [("512m", "512MiB"), ("1.5g", "1.5GiB"), ("1000m", "1000MiB"),
                                        ("1000g", "1000GiB"), ("2t", "2TiB"), ("100000g", "97.7TiB"),
                                        ("1k", "1KiB"), ("100", "100B")])
def test_format_bytes_never_uses_an_exponent(text, shown):
    assert format_bytes(parse_bytes(text)) == shown


def test_format_duration_round_trips():
    for text in ("5s", "1m", "2h", "250ms"):
        assert format_duration(parse_duration(text)) == text


def test_settings_overrides():
    settings = Settings()
    settings.apply("join_timeout=3s")
    settings.apply("raft.election_min=200ms")
    settings.apply("agent.backoff_max=1s")
    assert (settings.join_timeout, settings.raft.election_min, settings.agent.backoff_max) == (3.0, 0.2, 1.0)
    for bad in ("nope=1s", "raft.nope=1s", "join_timeout", "raft=1s", "join_timeout=fast"):
        with pytest.raises(InvalidArgument):
            settings.apply(bad)
