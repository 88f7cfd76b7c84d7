"""overlay/netns.py's nft(): scripts applied through libnftables in this process, each in
the namespace it names, one transaction each; a context per namespace, let go with it."""
import secrets

import pytest

from overlay import netns
from overlay.netns import NetnsError, create_netns, netns_path, nft, nft_tables, remove_netns

TABLE = "table ip {name} {{\n chain c {{\n  type filter hook input priority 0; policy accept;\n }}\n}}\n"


@pytest.fixture
def namespaces():
    prefix = "cvn" + secrets.token_hex(2)
    names = [f"{prefix}a", f"{prefix}b"]
    for name in names:
        create_netns(name)
    yield [netns_path(n) for n in names]
    for name in names:
        remove_netns(name)


def test_each_script_goes_to_its_own_namespace(namespaces):
    a, b = namespaces
    nft(a, TABLE.format(name="ta"))
    nft(b, TABLE.format(name="tb"))
    assert nft_tables(a) == ["ip ta"] and nft_tables(b) == ["ip tb"]   # as the nft CLI lists them


def test_a_bad_script_raises_naming_the_error_and_changes_nothing(namespaces):
    a, _ = namespaces
    script = TABLE.format(name="good") + "add rule ip good c tcp dport 80 accpet\n"
    with pytest.raises(NetnsError, match="syntax error"):
        nft(a, script)
    assert nft_tables(a) == []                     # one transaction: not even the table


def test_a_namespace_made_again_under_its_name_gets_a_new_context(namespaces):
    a, _ = namespaces
    name = a.rsplit("/", 1)[1]
    nft(a, TABLE.format(name="old"))
    remove_netns(name)
    assert a not in netns._NFT_CONTEXTS            # its socket would keep the namespace alive
    create_netns(name)
    nft(a, TABLE.format(name="new"))
    assert nft_tables(a) == ["ip new"]


def test_a_missing_namespace_is_named():
    with pytest.raises(NetnsError, match="no such network namespace"):
        nft(netns_path("cvnmissing"), TABLE.format(name="t"))
