"""Autolock, unlock-key rotation, root CA rotation and `swarm update / inspect` on one lab
swarm of real coveyd processes (host1 the manager, host2 and host3 workers), in order:
settings first, then autolock and the locked restart, the unlock key's rotation, the root CA's.
"""
import json
import re

import pytest

from covey import pki
from covey.errors import InvalidArgument
from coveyd import autolock
from tests.e2e.swarmtools import REGISTRY, dump_logs, swarm_with_registry
from tests.support.poll import wait_until

REPLICAS = 3
LOCKED = "this node is locked: run covey swarm unlock"
KEY_RE = re.compile(r"CVYKEY-1-\S+")


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(3) as lab:
        try:
            yield lab
        finally:
            dump_logs(lab)


@pytest.fixture(scope="module")
def web(lab):
    """A service with a task on every host (spread), running before the autolock tests."""
    lab.covey(lab.hosts[0], "service", "create", "--name", "web", "--replicas", str(REPLICAS),
              f"{REGISTRY}/covey/httpd:v1")
    return "web"


def manager(lab):
    return lab.hosts[0]


def inspect(lab) -> dict:
    return json.loads(lab.covey(manager(lab), "swarm", "inspect").stdout)[0]


def running_tasks(lab, service: str) -> dict:
    """task ID -> node ID of the service's tasks that run and are meant to."""
    tasks = json.loads(lab.covey(manager(lab), "service", "ps", "--format", "json", service).stdout)
    return {t["id"]: t["node_id"] for t in tasks
            if t.get("desired_state") == "RUNNING" and t["status"].get("state") == "RUNNING"}


def running_containers(lab, host) -> set:
    return {c["id"] for c in json.loads(lab.covey(host, "container", "ls", "--format", "json").stdout)
            if c["status"] == "running"}


def all_ready(lab) -> bool:
    result = lab.covey(manager(lab), "node", "ls", "--format", "json", check=False)
    if result.returncode != 0:
        return False
    nodes = json.loads(result.stdout)
    return len(nodes) == 3 and all(n["status"].get("state") == "READY" for n in nodes)


def node_ids(lab) -> dict:
    nodes = json.loads(lab.covey(manager(lab), "node", "ls", "--format", "json").stdout)
    return {n["description"]["hostname"]: n["id"] for n in nodes}


def restart_manager(lab) -> None:
    lab.stop_coveyd(manager(lab))
    lab.start_coveyd(manager(lab))


def unlock(lab, key: str):
    return lab.covey(manager(lab), "swarm", "unlock", stdin=key + "\n", check=False)


def sealed_with(lab, key: str) -> bool:
    """host1's TLS key on disk opens with this unlock key (and only a sealed one does)."""
    data = (manager(lab).data_dir / "certificates" / "node.key").read_bytes()
    try:
        return autolock.is_sealed(data) and bool(autolock.unseal(pki.parse_unlock_key(key), "node.key", data))
    except InvalidArgument:
        return False


def test_update_refuses_bad_values_and_inspect_shows_the_settings(lab):
    before = inspect(lab)
    for flags, message in ((["--dispatcher-heartbeat", "50ms"], "it must be at least 100ms"),
                           (["--task-history-limit", "-1"], "it cannot be negative")):
        refused = lab.covey(manager(lab), "swarm", "update", *flags, check=False)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr
    assert inspect(lab)["Version"] == before["Version"]  # nothing stored

    lab.covey(manager(lab), "swarm", "update", "--task-history-limit", "3", "--cert-expiry", "720h")
    shown = inspect(lab)
    assert shown["Spec"]["Orchestration"] == {"TaskHistoryRetentionLimit": 3}
    assert shown["Spec"]["CAConfig"] == {"NodeCertExpiry": 720 * 3600 * 10**9}
    assert shown["Spec"]["Dispatcher"] == before["Spec"]["Dispatcher"]
    assert shown["Spec"]["EncryptionConfig"] == {"AutoLockManagers": False}
    assert shown["TLSInfo"]["TrustRoot"].startswith("-----BEGIN CERTIFICATE-----")
    assert shown["RootRotationInProgress"] is False and shown["DataPathPort"] == 4789


def test_locked_manager_keeps_workers_running_refuses_a_wrong_key_unlocks_with_the_right_one(lab, web):
    wait_until(lambda: len(running_tasks(lab, web)) == REPLICAS, 60, 0.3, f"{REPLICAS} tasks running")
    updated = lab.covey(manager(lab), "swarm", "update", "--autolock=true").stdout
    key = KEY_RE.search(updated).group(0)
    assert lab.covey(manager(lab), "swarm", "unlock-key", "-q").stdout.strip() == key
    wait_until(lambda: sealed_with(lab, key), 30, 0.1, "host1's keys sealed by the unlock key")
    # Stopping coveyd on host1 takes its own node Down before the manager stops (its task
    # moves): the workers' tasks are the ones that must not change.
    manager_id = node_ids(lab)["host1"]
    on_workers = {t: n for t, n in running_tasks(lab, web).items() if n != manager_id}
    workers = {host.name: running_containers(lab, host) for host in lab.hosts[1:]}
    assert all(workers.values()) and len(on_workers) == REPLICAS - 1, workers

    restart_manager(lab)
    locked = lab.covey(manager(lab), "node", "ls", check=False)
    assert locked.returncode != 0 and LOCKED in locked.stderr, locked.stderr
    wrong = unlock(lab, pki.format_unlock_key(pki.new_unlock_key()))
    assert wrong.returncode != 0 and "invalid unlock key" in wrong.stderr, wrong.stderr
    assert LOCKED in lab.covey(manager(lab), "node", "ls", check=False).stderr  # still locked
    for host in lab.hosts[1:]:  # the workers' containers ran on meanwhile
        assert workers[host.name] <= running_containers(lab, host), host.name

    unlocked = unlock(lab, key)
    assert unlocked.returncode == 0 and "Node unlocked." in unlocked.stdout, unlocked.stderr
    wait_until(lambda: all_ready(lab), 60, 0.3, "every node Ready after the unlock")
    wait_until(lambda: len(running_tasks(lab, web)) == REPLICAS, 60, 0.3, "the tasks running")
    assert on_workers.items() <= running_tasks(lab, web).items()  # none of the workers' was replaced
    for host in lab.hosts[1:]:
        assert workers[host.name] <= running_containers(lab, host), host.name


def test_after_rotating_the_unlock_key_a_restart_refuses_the_old_one(lab, web):
    old = lab.covey(manager(lab), "swarm", "unlock-key", "-q").stdout.strip()
    rotated = lab.covey(manager(lab), "swarm", "unlock-key", "--rotate").stdout
    assert "Successfully rotated manager unlock key." in rotated
    new = KEY_RE.search(rotated).group(0)
    assert new != old
    wait_until(lambda: sealed_with(lab, new), 30, 0.1, "host1's keys resealed with the new unlock key")

    restart_manager(lab)
    refused = unlock(lab, old)
    assert refused.returncode != 0 and "invalid unlock key" in refused.stderr, refused.stderr
    assert unlock(lab, new).returncode == 0
    wait_until(lambda: all_ready(lab), 60, 0.3, "every node Ready after the unlock")


def test_root_ca_rotation_moves_every_node_without_losing_a_session(lab, web):
    wait_until(lambda: len(running_tasks(lab, web)) == REPLICAS, 60, 0.3, f"{REPLICAS} tasks running")
    tasks = running_tasks(lab, web)
    old_ca = lab.covey(manager(lab), "swarm", "ca").stdout
    old_token = lab.covey(manager(lab), "swarm", "join-token", "-q", "worker").stdout.strip()

    rotated = lab.covey(manager(lab), "swarm", "ca", "--rotate", timeout=120)
    assert "rotated root CA: 3/3 nodes" in rotated.stdout, rotated.stdout
    new_ca = lab.covey(manager(lab), "swarm", "ca").stdout
    assert new_ca != old_ca and new_ca in rotated.stdout
    shown = inspect(lab)
    assert shown["TLSInfo"]["TrustRoot"] == new_ca and shown["RootRotationInProgress"] is False
    new_token = lab.covey(manager(lab), "swarm", "join-token", "-q", "worker").stdout.strip()
    assert pki.parse_token(new_token) == (pki.ca_digest(new_ca.encode()), pki.parse_token(old_token)[1])

    assert all_ready(lab)
    for host in lab.hosts:  # each node holds a certificate of the new CA, and trusts it alone
        certs = host.data_dir / "certificates"
        assert pki.verify_signed_by((certs / "node.crt").read_bytes(), new_ca.encode()), host.name
        wait_until(lambda certs=certs: (certs / "ca.crt").read_text() == new_ca, 30, 0.2,
                   f"{host.name} trusts the new CA")
    assert running_tasks(lab, web) == tasks  # no session was lost: no task restarted
