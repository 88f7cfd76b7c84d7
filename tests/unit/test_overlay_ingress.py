"""The ingress mesh's nftables scripts (overlay/ingress.py): what a port becomes, and that a
change writes only what changed."""
import pytest

from overlay import ingress
from overlay.api import OverlayError
from overlay.model import HOST_MODE, TCP, UDP, PublishedPort

WEB = PublishedPort(TCP, 8080, 80, ("10.0.0.5", "10.0.0.6"))
ONE = PublishedPort(UDP, 53, 5353, ("10.0.0.7",), preserve_client_ip=True)
EMPTY = PublishedPort(TCP, 9000, 90)


def test_a_port_is_a_numgen_dnat_marked_for_snat_unless_the_client_ip_is_kept():
    assert ingress.port_rule(WEB) == (f"meta l4proto tcp meta mark set {ingress.SNAT_MARK:#x} dnat ip to "
                                      "numgen inc mod 2 map { 0 : 10.0.0.5 . 80, 1 : 10.0.0.6 . 80 }")
    assert ingress.port_rule(ONE) == "meta l4proto udp dnat ip to 10.0.0.7:5353"
    host = PublishedPort(TCP, 8443, 443, ("10.0.0.8",), mode=HOST_MODE)
    assert "mark" not in ingress.port_rule(host), "host mode: the task sees the client"
    assert ingress.port_rule(EMPTY) == "", "no backend: the sandbox itself refuses"


def test_the_host_table_dnats_every_local_address_and_loopback_to_the_sandbox():
    script = ingress.host_table("cvmesh", "169.254.64.1", "cve1068", "169.254.64.0/18", [(TCP, 8080), (UDP, 53)])
    assert script.startswith("add table ip cvmesh\ndelete table ip cvmesh\ntable ip cvmesh {")
    assert "elements = { tcp . 8080, udp . 53 }" in script
    rule = "fib daddr type local meta l4proto . th dport @ports dnat ip to 169.254.64.1"
    assert script.count(rule) == 2 and "hook prerouting" in script and "hook output" in script
    assert 'oifname "cve1068" ip saddr { 127.0.0.0/8, 169.254.64.0/18 } masquerade' in script


def test_the_sandbox_table_jumps_by_port_and_snats_marked_packets_to_the_node():
    script = ingress.sandbox_table("cvmesh", "br0", "eg0", "10.0.0.2", [WEB, EMPTY])
    assert "elements = { tcp . 8080 : jump p_tcp_8080, tcp . 9000 : jump p_tcp_9000 }" in script
    assert 'iifname "eg0" meta l4proto . th dport vmap @ports' in script
    assert f'meta mark {ingress.SNAT_MARK:#x} oifname "br0" snat ip to 10.0.0.2' in script
    assert "  chain p_tcp_9000 {\n  }\n" in script


def test_a_change_writes_only_the_ports_that_changed():
    have = {WEB.key: WEB, ONE.key: ONE}
    moved = PublishedPort(TCP, 8080, 80, ("10.0.0.6",))
    script = ingress.sandbox_update("cvmesh", "br0", None, have, [moved, EMPTY], [ONE.key])
    assert script.splitlines() == [
        "delete element ip cvmesh ports { udp . 53 }",
        "flush chain ip cvmesh p_udp_53",
        "delete chain ip cvmesh p_udp_53",
        "flush chain ip cvmesh p_tcp_8080",
        "add rule ip cvmesh p_tcp_8080 " + ingress.port_rule(moved),
        "add chain ip cvmesh p_tcp_9000",
        "add element ip cvmesh ports { tcp . 9000 : jump p_tcp_9000 }",
    ]
    assert ingress.sandbox_update("cvmesh", "br0", None, have, [WEB], []) == "", "nothing changed"
    assert "snat ip to 10.0.0.3" in ingress.sandbox_update("cvmesh", "br0", "10.0.0.3", have, [], [])
    assert ingress.host_update("cvmesh", [(TCP, 9000)], [(UDP, 53)]).splitlines() == [
        "delete element ip cvmesh ports { udp . 53 }", "add element ip cvmesh ports { tcp . 9000 }"]


def test_the_plan_keeps_unchanged_ports_and_closes_host_ports_without_a_local_task():
    mesh = ingress.MeshState(4096)
    with pytest.raises(OverlayError, match="complete=True first"):
        mesh.plan([WEB], [], complete=False)
    wanted, changed, dropped = mesh.plan([WEB, ONE], [], complete=True)
    assert (set(wanted), len(changed), dropped) == ({WEB.key, ONE.key}, 2, set())
    mesh.ports = wanted
    closed = PublishedPort(TCP, 8443, 443, (), mode=HOST_MODE)
    wanted, changed, dropped = mesh.plan([closed], [WEB.key], complete=False)
    assert (set(wanted), changed, dropped) == ({ONE.key}, [], {WEB.key})
    wanted, changed, dropped = mesh.plan([ONE], [], complete=True)
    assert (changed, dropped) == ([], {WEB.key}), "complete: what is not given goes"


@pytest.mark.parametrize("port, problem", [
    (PublishedPort("sctp", 80, 80), "protocol must be tcp or udp"),
    (PublishedPort(TCP, 0, 80), "published port 0 is outside"),
    (PublishedPort(TCP, 80, 65536), "target port 65536 is outside"),
    (PublishedPort(TCP, 80, 80, mode="bridge"), "mode must be ingress or host"),
    (PublishedPort(TCP, 80, 80, ("10.0.0.5; flush ruleset",)), "is not an IPv4 address"),
])
def test_bad_ports_are_refused_naming_the_problem(port, problem):
    with pytest.raises(OverlayError, match=problem):
        ingress.check_port(port)


def test_each_node_gets_its_own_mark_and_table_in_a_task():
    assert ingress.route_mark("10.255.0.2", "10.255.0.0/16") == ingress.ROUTE_MARK_BASE + 2
    assert ingress.route_mark("10.255.1.2", "10.255.0.0/16") == ingress.ROUTE_MARK_BASE + 258
    with pytest.raises(OverlayError, match="not in the ingress subnet"):
        ingress.route_mark("10.9.0.2", "10.255.0.0/16")
    with pytest.raises(OverlayError, match="larger than"):
        ingress.route_mark("10.0.0.2", "10.0.0.0/8")
    marks = {"10.255.0.2": ingress.ROUTE_MARK_BASE + 2}
    script = ingress.reply_table("cvrt", "eth1", marks)
    assert f"elements = {{ 02:42:0a:ff:00:02 : {ingress.ROUTE_MARK_BASE + 2:#x} }}" in script
    assert 'iifname "eth1" ct state new ct mark set ether saddr map @nodes' in script
    assert "ct mark != 0 meta mark set ct mark" in script and "type route hook output" in script
    more = {**marks, "10.255.0.3": ingress.ROUTE_MARK_BASE + 3}
    assert ingress.reply_update("cvrt", marks, more) == \
        f"add element ip cvrt nodes {{ 02:42:0a:ff:00:03 : {ingress.ROUTE_MARK_BASE + 3:#x} }}\n"
    assert ingress.reply_update("cvrt", more, marks) == "delete element ip cvrt nodes { 02:42:0a:ff:00:03 }\n"
