"""A swarm forms across lab hosts: init, join, tokens, mTLS, heartbeats, restarts.

One lab for the module: host1 is the manager, host2 and host3 join as workers,
host4 stays outside the swarm for the join-refusal tests. Tests run in order and
each leaves the swarm healthy for the next.
"""
import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from deploy.lab import Lab
from tests.e2e.swarmtools import HEARTBEAT, node_state, node_table, wait_state
from tests.support.poll import holds_for, wait_until


@pytest.fixture(scope="module")
def lab():
    lab = Lab(4).up()
    try:
        lab.init_output = lab.form_swarm(HEARTBEAT, members=3)
        lab.token = lab.covey(lab.hosts[0], "swarm", "join-token", "-q", "worker").stdout.strip()
        yield lab
    finally:
        lab.down()


def manager(lab):
    return lab.hosts[0]


def outsider(lab):
    return lab.hosts[3]


def test_init_prints_the_join_command(lab):
    assert "is now a manager" in lab.init_output
    assert f"covey swarm join --token {lab.token} {manager(lab).addr}:4242" in lab.init_output
    assert "covey swarm join-token manager" in lab.init_output


def test_three_nodes_ready_with_docker_columns(lab):
    wait_until(lambda: sorted(s["status"].get("state") for s in node_table(lab, manager(lab)).values())
               == ["READY"] * 3, 30, 0.2, "3 Ready nodes")
    out = lab.covey(manager(lab), "node", "ls").stdout.splitlines()
    assert out[0].split() == ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER", "STATUS",
                              "ENGINE", "VERSION"]
    rows = {line.split()[1] if "*" not in line else line.split()[2]: line for line in out[1:]}
    assert set(rows) == {"host1", "host2", "host3"}
    assert "*" in rows["host1"] and "Leader" in rows["host1"]
    assert "Ready" in rows["host2"] and "Leader" not in rows["host2"]
    ids = lab.covey(manager(lab), "node", "ls", "-q").stdout.split()
    assert len(ids) == 3 and all(len(i) == 25 for i in ids)


def test_node_certificates_name_id_role_and_cluster(lab):
    from covey import pki
    from proto import objects_pb2 as pb
    cluster = {n["description"]["hostname"]: n["id"] for n in node_table(lab, manager(lab)).values()}
    m = pki.cert_identity((manager(lab).data_dir / "certificates" / "node.crt").read_bytes())
    w = pki.cert_identity((lab.hosts[1].data_dir / "certificates" / "node.crt").read_bytes())
    assert (m.node_id, m.role) == (cluster["host1"], pb.MANAGER)
    assert (w.node_id, w.role) == (cluster["host2"], pb.WORKER)
    assert m.cluster_id == w.cluster_id and len(m.cluster_id) == 25
    mode = (lab.hosts[1].data_dir / "certificates" / "node.key").stat().st_mode & 0o777
    assert mode == 0o600
    assert manager(lab).socket.stat().st_mode & 0o777 == 0o600


def test_wrong_token_is_refused_and_nothing_is_stored(lab):
    before = set(node_table(lab, manager(lab)))
    digest = lab.token.split("-")[2]
    wrong_secret = f"CVYTKN-1-{digest}-{'0' * 25}"
    result = lab.covey(outsider(lab), "swarm", "join", "--token", wrong_secret, f"{manager(lab).addr}:4242",
                       check=False)
    assert result.returncode != 0
    assert "invalid join token" in result.stderr
    malformed = lab.covey(outsider(lab), "swarm", "join", "--token", "CVYTKN-1-nonsense",
                          f"{manager(lab).addr}:4242", check=False)
    assert malformed.returncode != 0 and "invalid join token" in malformed.stderr
    assert set(node_table(lab, manager(lab))) == before
    assert not (outsider(lab).data_dir / "swarm.json").exists()


def test_join_pins_the_ca_before_sending_the_token(lab):
    """A token naming another CA is refused by the joiner itself: the manager never sees a request."""
    log_before = manager(lab).log_file.read_text().count("joined as")
    foreign = f"CVYTKN-1-{'1' * 50}-{lab.token.split('-')[3]}"
    result = lab.covey(outsider(lab), "swarm", "join", "--token", foreign, f"{manager(lab).addr}:4242",
                       check=False)
    assert result.returncode != 0
    assert "invalid join token" in result.stderr and "different root CA" in result.stderr
    assert manager(lab).log_file.read_text().count("joined as") == log_before


def test_worker_cannot_use_the_control_api(lab):
    worker = lab.hosts[1]
    local = lab.covey(worker, "node", "ls", check=False)
    assert local.returncode != 0 and "this node is not a swarm manager" in local.stderr
    remote = lab.run_in(worker, [sys.executable, "-m", "covey.cli.main", "-H", f"tcp://{manager(lab).addr}:4242",
                                 "--cert-dir", str(worker.data_dir / "certificates"), "node", "ls"])
    assert remote.returncode != 0 and "this node is not a swarm manager" in remote.stderr
    rotate = lab.run_in(worker, [sys.executable, "-m", "covey.cli.main", "-H", f"tcp://{manager(lab).addr}:4242",
                                 "--cert-dir", str(worker.data_dir / "certificates"),
                                 "swarm", "join-token", "--rotate", "worker"])
    assert rotate.returncode != 0 and "not a swarm manager" in rotate.stderr


def test_manager_certificate_works_over_tcp(lab):
    host = manager(lab)
    result = lab.run_in(lab.hosts[1], [sys.executable, "-m", "covey.cli.main", "-H", f"tcp://{host.addr}:4242",
                                       "--cert-dir", str(host.data_dir / "certificates"), "node", "ls", "-q"])
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) == 3


def test_anonymous_client_can_only_fetch_the_ca(lab):
    """With no node certificate (the anonymous bootstrap identity) only the CA calls answer.
    The heartbeat stream sends nothing: it is refused as it opens, and a client write racing
    that refusal ends as INTERNAL in grpc-python's client, whatever the server said."""
    code = textwrap.dedent(f"""
        import asyncio, grpc
        from covey import tls
        from proto import ca_pb2, ca_pb2_grpc, control_pb2, control_pb2_grpc, dispatcher_pb2_grpc

        ca = tls.fetch_unverified_ca("{manager(lab).addr}:4242", 5)
        key, cert = tls.anonymous_identity()
        async def main():
            async with tls.secure_channel("{manager(lab).addr}:4242", ca, key, cert) as ch:
                root = await ca_pb2_grpc.CAStub(ch).GetRootCA(ca_pb2.GetRootCARequest(), timeout=5)
                print("ca", root.ca_cert_pem == ca)
                control = control_pb2_grpc.ControlStub(ch)
                for name, call in [("list", control.ListNodes(control_pb2.ListNodesRequest(), timeout=5)),
                                   ("token", control.JoinToken(control_pb2.JoinTokenRequest(), timeout=5)),
                                   ("heartbeat", dispatcher_pb2_grpc.DispatcherStub(ch).Heartbeats(iter(()),
                                                                                   timeout=5).read())]:
                    try:
                        await call
                        print(name, "ALLOWED")
                    except grpc.RpcError as e:
                        print(name, e.code().name)
        asyncio.run(main())
    """)
    result = lab.run_in(outsider(lab), [sys.executable, "-c", code], cwd=str(lab.dir.parent))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split() for line in result.stdout.splitlines())
    assert lines == {"ca": "True", "list": "UNAUTHENTICATED", "token": "UNAUTHENTICATED",
                     "heartbeat": "UNAUTHENTICATED"}


def test_node_update_and_inspect(lab):
    host = manager(lab)
    lab.covey(host, "node", "update", "--label-add", "ssd=true", "--label-add", "zone=a", "host2")
    lab.covey(host, "node", "update", "--label-rm", "zone", "--availability", "drain", "host2")
    node = json.loads(lab.covey(host, "node", "inspect", "host2").stdout)[0]
    assert node["spec"]["labels"] == {"ssd": "true"}
    assert node["spec"]["availability"] == "DRAIN"
    pretty = lab.covey(host, "node", "inspect", "--pretty", node["id"][:6]).stdout
    assert "host2" in pretty and "Drain" in pretty and "ssd=true" in pretty
    missing = lab.covey(host, "node", "update", "--label-rm", "nope", "host2", check=False)
    assert missing.returncode != 0 and "nope" in missing.stderr
    unknown = lab.covey(host, "node", "inspect", "no-such-node", check=False)
    assert unknown.returncode != 0 and "not found" in unknown.stderr
    lab.covey(host, "node", "update", "--availability", "active", "host2")


def test_killed_worker_goes_down_then_returns_ready(lab):
    host3 = lab.hosts[2]
    lab.stop_coveyd(host3, signal.SIGKILL)
    started = time.monotonic()
    wait_state(lab, manager(lab), "host3", "DOWN", timeout=20)
    took = time.monotonic() - started
    # 4 periods of 1 s without a heartbeat, plus the monitor's pass: never before 3 periods.
    assert 2.5 <= took <= 10.0, took
    lab.start_coveyd(host3)
    wait_state(lab, manager(lab), "host3", "READY", timeout=20)


def test_manager_kill_and_restart_keeps_the_swarm(lab):
    host = manager(lab)
    lab.covey(host, "node", "update", "--label-add", "before=kill", "host3")
    before = node_table(lab, host)
    lab.stop_coveyd(host, signal.SIGKILL)
    lab.start_coveyd(host)
    after = wait_until(lambda: _all_ready(lab, host, 3), 40, 0.3, "3 Ready nodes after the restart")
    assert {k: v["id"] for k, v in after.items()} == {k: v["id"] for k, v in before.items()}
    assert after["host3"]["spec"]["labels"]["before"] == "kill"
    assert after["host1"]["manager_status"]["leader"] is True
    # The workers found the restarted manager by themselves: new sessions in its log.
    assert host.log_file.read_text().count("session") > 0


def _all_ready(lab, host, count):
    try:
        table = node_table(lab, host)
    except RuntimeError:
        return None  # the manager is still electing itself
    ready = [n for n in table.values() if n["status"].get("state") == "READY"]
    return table if len(ready) == count else None


def test_rotated_token_stops_working(lab):
    host = manager(lab)
    old = lab.token
    rotated = lab.covey(host, "swarm", "join-token", "--rotate", "worker").stdout
    new = lab.covey(host, "swarm", "join-token", "-q", "worker").stdout.strip()
    assert "Successfully rotated worker join token" in rotated and new != old and new in rotated
    refused = lab.covey(outsider(lab), "swarm", "join", "--token", old, f"{host.addr}:4242", check=False)
    assert refused.returncode != 0 and "invalid join token" in refused.stderr
    assert "host4" not in node_table(lab, host)
    lab.covey(outsider(lab), "swarm", "join", "--token", new, f"{host.addr}:4242")
    wait_state(lab, host, "host4", "READY")


def test_removed_node_is_denied(lab):
    host, host4 = manager(lab), outsider(lab)
    refused = lab.covey(host, "node", "rm", "host4", check=False)
    assert refused.returncode != 0 and "is not down" in refused.stderr
    lab.stop_coveyd(host4, signal.SIGKILL)
    wait_state(lab, host, "host4", "DOWN")
    lab.covey(host, "node", "rm", "host4")
    assert "host4" not in node_table(lab, host)
    # Its certificate is now refused, whatever it tries.
    denied = lab.run_in(host4, [sys.executable, "-m", "covey.cli.main", "-H", f"tcp://{host.addr}:4242",
                                "--cert-dir", str(host4.data_dir / "certificates"), "node", "ls"])
    assert denied.returncode != 0 and "removed from the swarm" in denied.stderr
    lab.start_coveyd(host4)
    # It keeps trying (two heartbeat timeouts' worth): it must never come back.
    holds_for(lambda: "host4" not in node_table(lab, host), 6.0, 0.3, "host4 staying out")


def test_manager_rules(lab):
    host = manager(lab)
    again = lab.covey(host, "swarm", "init", "--advertise-addr", host.addr, check=False)
    assert again.returncode != 0 and "already part of a swarm" in again.stderr
    leave = lab.covey(host, "swarm", "leave", check=False)
    assert leave.returncode != 0 and "last manager" in leave.stderr
    rm_self = lab.covey(host, "node", "rm", "--force", "host1", check=False)
    assert rm_self.returncode != 0 and "must be demoted" in rm_self.stderr
    demote = lab.covey(host, "node", "demote", "host1", check=False)
    assert demote.returncode != 0 and "last manager" in demote.stderr
    assert node_state(lab, host, "host1") == "READY"


def test_worker_leaves(lab):
    host2 = lab.hosts[1]
    assert lab.covey(host2, "swarm", "leave").stdout.strip() == "Node left the swarm."
    assert not (host2.data_dir / "certificates").exists()
    wait_state(lab, manager(lab), "host2", "DOWN")
    again = lab.covey(host2, "node", "ls", check=False)
    assert again.returncode != 0 and "not part of a swarm" in again.stderr


def test_cli_errors_are_clear(lab):
    bad_flag = subprocess.run([sys.executable, "-m", "covey.cli.main", "node", "ls", "--bogus"],
                              capture_output=True, text=True)
    assert bad_flag.returncode == 2 and "--bogus" in bad_flag.stderr
    nowhere = subprocess.run([sys.executable, "-m", "covey.cli.main", "-H", f"unix://{lab.dir}/none.sock",
                              "--timeout", "1", "node", "ls"], capture_output=True, text=True)
    assert nowhere.returncode == 1 and "cannot connect to the Covey daemon" in nowhere.stderr
    left = lab.hosts[1]  # left the swarm in the previous test
    bad_addr = lab.covey(left, "swarm", "init", "--advertise-addr", "not-an-ip", check=False)
    assert bad_addr.returncode != 0 and "advertise address" in bad_addr.stderr


def test_certificates_renew_before_they_expire(lab_factory):
    """With 12 s certificates every node renews at 50-80% of their life and stays Ready."""
    from covey import pki
    lab = lab_factory(2)
    for host in lab.hosts:
        lab.start_coveyd(host)
    first, second = lab.hosts
    lab.covey(first, "swarm", "init", "--advertise-addr", first.addr, "--dispatcher-heartbeat", "1s",
              "--cert-expiry", "12s")
    token = lab.covey(first, "swarm", "join-token", "-q", "worker").stdout.strip()
    lab.covey(second, "swarm", "join", "--token", token, f"{first.addr}:4242")
    certs = {h.name: h.data_dir / "certificates" / "node.crt" for h in lab.hosts}
    first_serials = {name: _serial(path) for name, path in certs.items()}
    issued = {name: _issued_at(path) for name, path in certs.items()}  # wall clock, seconds
    for name, path in certs.items():
        ident = pki.cert_identity(path.read_bytes())
        life = (ident.not_after - pki._now()).total_seconds()
        assert life < 13, f"{name}: a {life:.0f} s certificate, not 12 s"
    # Two renewals each: the second proves the first renewed certificate is accepted too.
    seen = {name: {serial} for name, serial in first_serials.items()}
    first_renewal = {}

    def renewed_twice():
        for name, path in certs.items():
            seen[name].add(_serial(path))
            if len(seen[name]) == 2:
                first_renewal.setdefault(name, time.time() - issued[name])
        return all(len(serials) >= 3 for serials in seen.values())
    wait_until(renewed_twice, 40, 0.1, "two renewals on every node")
    for name, after in first_renewal.items():  # 50% to 80% of 12 s, give or take a poll
        assert 5.5 <= after <= 10.5, f"{name} renewed after {after:.1f} s"
    assert all(len(serials) <= 4 for serials in seen.values()), seen  # no renewal storm
    # Past the first certificates' expiry, the swarm still works over mTLS.
    assert _all_ready(lab, first, 2)
    remote = lab.run_in(second, [sys.executable, "-m", "covey.cli.main", "-H", f"tcp://{first.addr}:4242",
                                 "--cert-dir", str(first.data_dir / "certificates"), "node", "ls", "-q"])
    assert remote.returncode == 0, remote.stderr


def _issued_at(path) -> float:
    from covey import pki
    return (pki.cert_identity(path.read_bytes()).not_after.timestamp()) - 12


def _serial(path):
    from cryptography import x509
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number
