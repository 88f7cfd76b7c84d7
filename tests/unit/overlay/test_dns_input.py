"""The embedded DNS resolver's input: upstreams, settings and names are checked at the door,
with errors that name the problem (the resolver itself is tested in tests/e2e/test_dns.py)."""
import pytest

from overlay.dns import Resolver, parse_upstream, upstreams_from_resolv_conf
from overlay.model import DnsView


@pytest.mark.parametrize("text, parsed", [
    ("10.0.0.2", ("10.0.0.2", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)), ("[fd00::1]:5300", ("fd00::1", 5300)),
])
def test_upstreams_parse(text, parsed):
    assert parse_upstream(text) == parsed


@pytest.mark.parametrize("text", ["", "dns.example", "10.0.0.2:", "10.0.0.2:0", "10.0.0.2:70000", "10.0.0.300"])
def test_bad_upstreams_are_refused_by_name(text):
    with pytest.raises(ValueError, match=f"upstream DNS server '{text}'"):
        Resolver([text])


def test_bad_forwarding_settings_are_refused():
    with pytest.raises(ValueError, match="timeout > 0"):
        Resolver([], timeout=0)
    with pytest.raises(ValueError, match="attempts >= 1"):
        Resolver([], attempts=0)


def test_a_name_with_a_non_ipv4_address_is_refused_naming_both():
    with pytest.raises(ValueError, match="'web' on network n1: 'fd00::1' is not an IPv4 address"):
        Resolver([]).set_names(DnsView("n1", {"web": ("10.0.0.2", "fd00::1")}))


def test_default_upstreams_come_from_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nsearch lab\nnameserver 10.0.0.2\nnameserver  127.0.0.53\noptions ndots:0\n")
    assert upstreams_from_resolv_conf(str(conf)) == ["10.0.0.2", "127.0.0.53"]
