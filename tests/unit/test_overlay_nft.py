"""The overlay's nftables scripts: what each VIP becomes, and addresses checked before they
are written into a script."""
import pytest

from overlay import nft
from overlay.api import OverlayError
from overlay.model import Vip


def test_vips_become_numgen_maps_single_dnats_and_rejects_in_one_replaced_table():
    script = nft.vip_table("cvvip", [Vip("10.0.1.9", ("10.0.1.3", "10.0.1.4", "10.0.1.3")),
                                     Vip("10.0.1.8", ("10.0.1.5",)), Vip("10.0.1.7")])
    assert script.startswith("add table ip cvvip\ndelete table ip cvvip\ntable ip cvvip {")
    assert "ip daddr 10.0.1.9 dnat to numgen inc mod 2 map { 0 : 10.0.1.3, 1 : 10.0.1.4 }" in script
    assert "ip daddr 10.0.1.8 dnat to 10.0.1.5\n" in script
    assert "ip daddr 10.0.1.7 reject" in script
    assert "type nat hook output" in script and "type filter hook output" in script


@pytest.mark.parametrize("vip", [Vip("10.0.1.x"), Vip("10.0.1.9", ("10.0.1.3; flush ruleset",))])
def test_a_bad_address_never_reaches_a_script(vip):
    with pytest.raises(OverlayError, match="is not an IPv4 address"):
        nft.vip_table("cvvip", [vip])
