"""Autolock's pieces: unlock keys, sealed key files, the node's keys at rest, swarm update's checks,
`swarm inspect`'s JSON and the root CA rotation's bookkeeping."""
import argparse
import json

import pytest

from covey import pki
from covey.cli import swarmsettings
from covey.errors import FailedPrecondition, InvalidArgument
from coveyd import autolock
from coveyd.nodestate import KEY_FILES, NodeState
from manager.ca import rotation
from manager.controlapi.cluster import check_update, public_cluster
from proto import control_pb2
from proto import objects_pb2 as pb

SECOND = 10**9


def test_unlock_key_round_trips_and_bad_ones_are_named():
    key = pki.new_unlock_key()
    text = pki.format_unlock_key(key)
    assert text.startswith("CVYKEY-1-") and pki.parse_unlock_key(f"  {text}\n") == key
    for bad in ("", "SWMKEY-1-abc", "CVYKEY-1-!!!!", pki.format_unlock_key(b"short")):
        with pytest.raises(InvalidArgument, match="invalid unlock key: an unlock key looks like CVYKEY-1-"):
            pki.parse_unlock_key(bad)


def test_sealed_key_opens_only_with_its_unlock_key_and_name():
    key = pki.new_unlock_key()
    sealed = autolock.seal(key, "node.key", b"secret")
    assert autolock.is_sealed(sealed) and b"secret" not in sealed
    assert autolock.unseal(key, "node.key", sealed) == b"secret"
    assert autolock.unseal(None, "node.key", b"plain") == b"plain"
    with pytest.raises(FailedPrecondition, match="this node is locked: run covey swarm unlock"):
        autolock.unseal(None, "node.key", sealed)
    with pytest.raises(InvalidArgument, match="does not open"):
        autolock.unseal(pki.new_unlock_key(), "node.key", sealed)
    with pytest.raises(InvalidArgument, match="does not open"):
        autolock.unseal(key, "raft.key", sealed)  # moved to another key's file


def _state_with_keys(tmp_path) -> NodeState:
    state = NodeState(tmp_path)
    state.save_certs(b"ca", b"tls key", b"cert")
    state.save_raft_key(b"r" * 32)
    state.at_rest_key()
    return state


def test_node_state_seals_its_keys_and_a_new_process_starts_locked(tmp_path):
    state = _state_with_keys(tmp_path)
    at_rest, key = state.at_rest_key(), pki.new_unlock_key()
    state.reseal(key)
    for name in KEY_FILES:
        assert autolock.is_sealed((state.cert_dir / name).read_bytes()), name
    assert state.key() == b"tls key" and not state.locked()

    restarted = NodeState(tmp_path)
    assert restarted.locked()
    with pytest.raises(FailedPrecondition, match="locked"):
        restarted.key()
    files = {n: (restarted.cert_dir / n).read_bytes() for n in KEY_FILES}
    with pytest.raises(InvalidArgument, match="does not open"):
        restarted.unlock(pki.new_unlock_key())
    assert restarted.locked() and files == {n: (restarted.cert_dir / n).read_bytes() for n in KEY_FILES}
    restarted.unlock(key)
    assert (restarted.key(), restarted.raft_key(), restarted.at_rest_key()) == (b"tls key", b"r" * 32, at_rest)

    restarted.reseal(None)  # autolock off
    assert not any(autolock.is_sealed((restarted.cert_dir / n).read_bytes()) for n in KEY_FILES)
    assert not NodeState(tmp_path).locked()


def test_keys_written_while_sealed_are_sealed(tmp_path):
    state = _state_with_keys(tmp_path)
    key = pki.new_unlock_key()
    state.reseal(key)
    state.save_certs(b"ca", b"renewed key", b"cert2")
    assert autolock.is_sealed((state.cert_dir / "node.key").read_bytes())
    fresh = NodeState(tmp_path)
    fresh.unlock(key)
    assert fresh.key() == b"renewed key"


@pytest.mark.parametrize("request_, message", [
    (control_pb2.UpdateClusterRequest(heartbeat_period_ns=SECOND // 20), "heartbeat 0.05s: it must be at least 100ms"),
    (control_pb2.UpdateClusterRequest(task_history_limit=-1), "task history limit -1: it cannot be negative"),
    (control_pb2.UpdateClusterRequest(node_cert_expiry_ns=SECOND), "expiry 1s: it must be at least 10s"),
])
def test_bad_cluster_settings_are_refused_by_name(request_, message):
    with pytest.raises(InvalidArgument, match=message):
        check_update(request_)


def test_update_needs_a_setting():
    args = argparse.Namespace(dispatcher_heartbeat=None, cert_expiry=None, task_history_limit=None, autolock=None)
    with pytest.raises(InvalidArgument, match="nothing to update"):
        swarmsettings.update_request(args)
    args.task_history_limit, args.autolock = 0, False
    request = swarmsettings.update_request(args)
    assert request.HasField("task_history_limit") and request.HasField("autolock") and not request.autolock


def _cluster() -> pb.Cluster:
    ca_cert, ca_key = pki.create_root_ca("c1")
    digest = pki.ca_digest(ca_cert)
    return pb.Cluster(id="c1", meta=pb.Meta(version=7, created_at_ns=SECOND, updated_at_ns=2 * SECOND),
                      spec=pb.ClusterSpec(name="default", heartbeat_period_ns=5 * SECOND,
                                          node_cert_expiry_ns=3600 * SECOND, autolock=True),
                      root_ca=pb.RootCA(ca_cert_pem=ca_cert, ca_key_pem=ca_key, ca_digest=digest),
                      join_tokens=pb.JoinTokens(worker=pki.make_token(digest, "w" * 25),
                                                manager=pki.make_token(digest, "m" * 25)),
                      unlock_key=pki.new_unlock_key())


def test_inspect_has_dockers_shape():
    shown = swarmsettings.swarm_json(public_cluster(_cluster()))
    json.dumps(shown)  # it is JSON
    assert shown["ID"] == "c1" and shown["Version"] == {"Index": 7}
    assert shown["CreatedAt"].startswith("1970-01-01T00:00:01")
    assert shown["Spec"]["Orchestration"] == {"TaskHistoryRetentionLimit": 5}
    assert shown["Spec"]["Dispatcher"] == {"HeartbeatPeriod": 5 * SECOND}
    assert shown["Spec"]["CAConfig"] == {"NodeCertExpiry": 3600 * SECOND}
    assert shown["Spec"]["EncryptionConfig"] == {"AutoLockManagers": True}
    assert shown["TLSInfo"]["TrustRoot"].startswith("-----BEGIN CERTIFICATE-----")
    assert shown["RootRotationInProgress"] is False
    assert (shown["DefaultAddrPool"], shown["SubnetSize"], shown["DataPathPort"]) == (["10.0.0.0/8"], 24, 4789)


def test_public_cluster_hides_the_unlock_key():
    shown = public_cluster(_cluster())
    assert not shown.unlock_key and not shown.root_ca.ca_key_pem and not shown.join_tokens.worker


def test_rotation_keeps_token_secrets_under_the_new_digest_and_counts_moved_nodes():
    cluster = _cluster()
    old_ca, old_digest = cluster.root_ca.ca_cert_pem, cluster.root_ca.ca_digest
    new_ca, new_key = pki.create_root_ca("c1", rotation="r1")
    rotation.start(cluster, new_ca, new_key)
    assert cluster.root_ca.previous_ca_cert_pem == old_ca and cluster.root_ca.ca_digest == pki.ca_digest(new_ca)
    assert pki.parse_token(cluster.join_tokens.worker) == (cluster.root_ca.ca_digest, "w" * 25)
    assert pki.trust_bundle(cluster.root_ca) == new_ca + old_ca and pki.current_ca(new_ca + old_ca) == new_ca
    with pytest.raises(FailedPrecondition, match="already in progress"):
        rotation.start(cluster, *pki.create_root_ca("c1", rotation="r2"))
    nodes = [pb.Node(id="a", cert_ca_digest=cluster.root_ca.ca_digest), pb.Node(id="b", cert_ca_digest=old_digest)]
    assert rotation.progress(cluster, nodes) == (1, 2)
    assert swarmsettings.rotation_line(cluster, nodes) == "rotating root CA: 1/2 nodes"


def test_a_bundle_verifies_certificates_of_either_ca():
    old_ca, old_key = pki.create_root_ca("c1")
    new_ca, new_key = pki.create_root_ca("c1", rotation="r1")
    csr = pki.make_csr(pki.new_key_pem())
    old_cert = pki.sign_node_cert(old_ca, old_key, csr, "n1", pb.WORKER, "c1")
    new_cert = pki.sign_node_cert(new_ca, new_key, csr, "n1", pb.WORKER, "c1")
    assert pki.verify_signed_by(old_cert, new_ca + old_ca) and pki.verify_signed_by(new_cert, new_ca + old_ca)
    assert not pki.verify_signed_by(old_cert, new_ca)


def test_cli_parses_the_swarm_settings_commands():
    from covey.cli.main import build_parser
    parser = build_parser()
    args = parser.parse_args(["swarm", "update", "--autolock=false", "--dispatcher-heartbeat", "2s"])
    request = swarmsettings.update_request(args)
    assert request.HasField("autolock") and not request.autolock and request.heartbeat_period_ns == 2 * SECOND
    assert parser.parse_args(["swarm", "init", "--autolock"]).autolock
    key = parser.parse_args(["swarm", "unlock-key", "-q", "--rotate"])
    assert key.quiet and key.rotate and key.run is swarmsettings.unlock_key
    ca = parser.parse_args(["swarm", "ca", "--rotate", "-d"])
    # The wait has its own flag; --timeout stays the global deadline of each call.
    assert ca.rotate and ca.detach and ca.rotation_timeout == "5m" and ca.timeout is None
    with pytest.raises(SystemExit):
        parser.parse_args(["swarm", "update", "--autolock=maybe"])
    with pytest.raises(SystemExit):
        parser.parse_args(["swarm", "inspect", "--format", "table"])
