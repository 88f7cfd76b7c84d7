"""The simulated overlay driver records what the kernel driver would program, and counts
changes in proportion to what changed."""
import pytest

from overlay.api import OverlayError
from overlay.model import Attachment, Network, Peer, Vip
from overlay.simulated import SimulatedOverlay

NET = Network(id="n1", vni=4097, subnet="10.0.1.0/24", gateway="10.0.1.1")


def test_peer_changes_cost_what_changed_not_the_size():
    sim = SimulatedOverlay("cvx", "10.1.0.1")
    sim.ensure_network(NET)
    peers = [Peer(f"10.0.{i // 250 + 2}.{i % 250 + 1}", f"10.1.{i // 250}.{i % 250 + 2}") for i in range(1000)]
    sim.set_peers(NET.vni, peers)
    before = sim.changes
    sim.set_peers(NET.vni, peers[1:] + [Peer("10.0.9.9", "10.1.9.9")])
    assert sim.changes - before == 2
    sim.set_peers(NET.vni, peers[1:] + [Peer("10.0.9.9", "10.1.9.9"), Peer("10.0.9.8", "10.1.0.1")])
    assert sim.changes - before == 2  # a local endpoint is no peer
    assert len(sim.peers[NET.vni]) == 1000


def test_endpoints_networks_and_removal():
    sim = SimulatedOverlay("cvx", "10.1.0.1")
    with pytest.raises(OverlayError, match="create_endpoint_ns first"):
        sim.attach("c1", [Attachment(NET, "10.0.1.2/24")])
    assert sim.create_endpoint_ns("c1") == "/run/netns/cvxcc1"
    with pytest.raises(OverlayError, match="ensure_network first"):
        sim.attach("c1", [Attachment(NET, "10.0.1.2/24")])
    sim.ensure_network(NET)
    sim.attach("c1", [Attachment(NET, "10.0.1.2/24")])
    sim.set_vips("c1", [Vip("10.0.1.200", ("10.0.1.2",))])
    changes = sim.changes
    sim.ensure_network(NET)
    sim.attach("c1", [Attachment(NET, "10.0.1.2/24")])
    assert sim.changes == changes
    assert sim.existing() == ({NET.vni}, {"c1"})
    sim.remove_network("n1")
    sim.remove_endpoint_ns("c1")
    assert sim.existing() == (set(), set())
