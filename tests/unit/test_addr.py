"""HOST:PORT parsing: one module for every caller, IPv6 included."""
import pytest

from covey import addr
from covey.errors import InvalidArgument


@pytest.mark.parametrize("text, expected", [
    ("10.1.0.1", ("10.1.0.1", addr.API_PORT)),
    ("10.1.0.1:5000", ("10.1.0.1", 5000)),
    ("[fd00::1]:5000", ("fd00::1", 5000)),
    ("[fd00::1]", ("fd00::1", addr.API_PORT)),
    ("fd00::1", ("fd00::1", addr.API_PORT)),     # a bare IPv6 address has no port
    ("manager-1:4242", ("manager-1", 4242)),
    (" 10.1.0.1:7 ", ("10.1.0.1", 7)),
])
def test_split(text, expected):
    assert addr.split(text) == expected


def test_split_refuses_a_port_that_is_no_number():
    with pytest.raises(InvalidArgument, match="port must be a number"):
        addr.split("10.1.0.1:http")


@pytest.mark.parametrize("host, port, text", [("10.1.0.1", 4242, "10.1.0.1:4242"), ("fd00::1", 4242, "[fd00::1]:4242")])
def test_join_round_trips(host, port, text):
    assert addr.join(host, port) == text
    assert addr.split(text) == (host, port)


def test_raft_addr_is_the_api_port_plus_one():
    assert addr.raft_addr("10.1.0.1:4242") == "10.1.0.1:4243"
    assert addr.raft_addr("[fd00::1]:5000") == "[fd00::1]:5001"


@pytest.mark.parametrize("peer, host", [("ipv4:10.1.0.2:51234", "10.1.0.2"), ("ipv6:%5B::1%5D:51234", "::1"),
                                        ("ipv6:[fd00::2]:4242", "fd00::2")])
def test_peer_host(peer, host):
    assert addr.peer_host(peer) == host


@pytest.mark.parametrize("text, message", [("manager-1", "give an IP address"), ("10.1.0.1:70000", "out of range")])
def test_parse_ip_port_names_the_problem(text, message):
    with pytest.raises(InvalidArgument, match=message):
        addr.parse_ip_port(text, addr.API_PORT, "advertise address")
