"""Manager high availability in the lab: 3 managers and a worker, real coveyd processes.

Tests run in order on one swarm; each leaves it with 3 reachable managers, except
the last (force-new-cluster), which ends it with one.
"""
import json
import signal
import threading
import time

import pytest

from deploy.lab import Lab
from tests.e2e.swarmtools import HEARTBEAT, answering_table, dump_logs, host_named, manager_statuses
from tests.e2e.swarmtools import healthy as healthy_from
from tests.support.poll import wait_until

MANAGERS = ("host1", "host2", "host3")


@pytest.fixture(scope="module")
def lab():
    lab = Lab(4).up()
    try:
        lab.form_swarm(HEARTBEAT, managers=3)
        yield lab
    finally:
        lab.down()
        dump_logs(lab)


def healthy(lab, via="host1", managers=MANAGERS):
    return healthy_from(lab, via, managers)


def leader(lab, via="host1"):
    return next(name for name, s in healthy(lab, via).items() if s == "Leader")


def test_three_managers_form(lab):
    for via in MANAGERS:  # every manager answers the control API
        statuses = healthy(lab, via)
        assert statuses["host4"] == ""
    roles = {h: json.loads(lab.covey(host_named(lab, h), "node", "inspect", h).stdout)[0]["role"] for h in MANAGERS}
    assert set(roles.values()) == {"MANAGER"}


class Writer(threading.Thread):
    """Keeps adding unique labels to host4 through one manager; records what was acknowledged."""

    def __init__(self, lab, via):
        super().__init__(daemon=True)
        self.lab, self.via = lab, via
        self.acked, self.failed = [], []
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set() and i < 200:
            key = f"w{i}"
            result = self.lab.covey(host_named(self.lab, self.via), "node", "update", "--label-add", f"{key}=1",
                                    "host4", check=False, timeout=30)
            (self.acked if result.returncode == 0 else self.failed).append((key, result.stderr.strip()))
            i += 1


def test_leader_killed_while_writing_loses_nothing_and_doubles_nothing(lab):
    old_leader = leader(lab)
    via = next(m for m in MANAGERS if m != old_leader)
    # host4 is stopped, so the label updates are the only writes to its node object.
    lab.stop_coveyd(host_named(lab, "host4"))
    wait_until(lambda: answering_table(lab, via)["host4"]["status"].get("state") == "DOWN", 30, 0.3, "host4 Down")
    version_before = answering_table(lab, via)["host4"]["meta"]["version"]  # read after it went Down
    labels_before = set(answering_table(lab, via)["host4"]["spec"].get("labels", {}))
    writer = Writer(lab, via)
    writer.start()
    wait_until(lambda: len(writer.acked) >= 5, 30, 0.05, "some writes before the kill")
    lab.stop_coveyd(host_named(lab, old_leader), signal.SIGKILL)
    killed_at, acked_at_kill = time.monotonic(), len(writer.acked)
    wait_until(lambda: len(writer.acked) >= acked_at_kill + 5, 60, 0.05, "writes after the failover")
    writer.stop.set()
    writer.join(60)
    failover = time.monotonic() - killed_at
    lab.start_coveyd(host_named(lab, old_leader))
    wait_until(lambda: (manager_statuses(lab, via) or {}).get(old_leader) == "Reachable", 60, 0.3,
               f"{old_leader} back")

    acked = {key for key, _ in writer.acked}
    for manager in MANAGERS:  # the same state on every manager, the restarted one included
        node = wait_until(lambda: _converged(lab, manager, acked), 30, 0.3, f"{manager} to catch up")
        applied = set(node["spec"]["labels"]) - labels_before
        assert acked <= applied, f"acknowledged writes lost on {manager}: {acked - applied}"
        # Each applied update bumps the version once: no write applied twice.
        assert int(node["meta"]["version"]) - int(version_before) == len(applied)
    lab.start_coveyd(host_named(lab, "host4"))
    healthy(lab, via)
    for _, error in writer.failed:  # failed writes said why
        assert "leader" in error or "not committed" in error or "cannot connect" in error, error
    assert failover < 30


def _converged(lab, manager, acked):
    nodes = answering_table(lab, manager)
    if not nodes:
        return None
    node = nodes["host4"]
    return node if acked <= set(node["spec"].get("labels", {})) else None


def test_promote_and_demote_round_trips_including_the_leader(lab):
    follower = next(m for m in MANAGERS if manager_statuses(lab, "host1")[m] == "Reachable")
    for target in (follower, leader(lab)):
        via = next(m for m in MANAGERS if m != target)
        healthy(lab, via)  # quorum checks use the view of the manager that takes the call
        lab.covey(host_named(lab, via), "node", "demote", target)
        others = [m for m in MANAGERS if m != target]
        # A demoted leader steps down first and shows Unreachable until the new leader
        # has taken it out of Raft; then it is a worker.
        wait_until(lambda: (manager_statuses(lab, via) or {}).get(target) == "", 60, 0.3, f"{target} a worker")
        healthy(lab, via, managers=others)
        wait_until(lambda: _cert_role(lab, target) == "covey-worker", 30, 0.3, f"{target} to hold a worker cert")
        lab.covey(host_named(lab, via), "node", "promote", target)
        healthy(lab, via)
        wait_until(lambda: _cert_role(lab, target) == "covey-manager", 30, 0.3, f"{target} to hold a manager cert")
        # The promoted manager answers the control API itself, once it has caught up.
        wait_until(lambda: answering_table(lab, target), 30, 0.3, f"{target} to answer as a manager")


def _cert_role(lab, name):
    from covey import pki
    cert = host_named(lab, name).data_dir / "certificates" / "node.crt"
    return pki.ROLE_OU[pki.cert_identity(cert.read_bytes()).role]


def test_quorum_rules(lab):
    healthy(lab)
    lab.covey(host_named(lab, "host1"), "node", "demote", "host4", check=False)  # a worker: nothing to do
    victim = "host3"
    lab.stop_coveyd(host_named(lab, victim), signal.SIGKILL)
    wait_until(lambda: (manager_statuses(lab, "host1") or {}).get(victim) == "Unreachable", 30, 0.3,
               f"{victim} unreachable")
    refused = lab.covey(host_named(lab, "host1"), "node", "demote", "host2", check=False)
    assert refused.returncode != 0 and "quorum" in refused.stderr
    leave = lab.covey(host_named(lab, "host2"), "swarm", "leave", check=False)
    assert leave.returncode != 0 and "quorum" in leave.stderr
    rm = lab.covey(host_named(lab, "host1"), "node", "rm", "--force", "host2", check=False)
    assert rm.returncode != 0 and "demoted" in rm.stderr
    lab.start_coveyd(host_named(lab, victim))
    healthy(lab)


def test_quorum_loss_fails_fast_and_recovers(lab):
    survivor = "host1"
    for name in ("host2", "host3"):
        lab.stop_coveyd(host_named(lab, name), signal.SIGKILL)
    started = time.monotonic()
    deadline = started + 30
    while True:  # the survivor notices it lost the majority, then every write fails fast
        result = lab.covey(host_named(lab, survivor), "node", "update", "--label-add", "q=1", "host4", check=False)
        if result.returncode != 0:
            break
        assert time.monotonic() < deadline, "writes kept succeeding without a quorum"
    assert "does not have a leader" in result.stderr, result.stderr
    t0 = time.monotonic()
    again = lab.covey(host_named(lab, survivor), "node", "update", "--label-add", "q=2", "host4", check=False)
    assert again.returncode != 0 and time.monotonic() - t0 < 15
    for name in ("host2", "host3"):
        lab.start_coveyd(host_named(lab, name))
    healthy(lab)
    lab.covey(host_named(lab, survivor), "node", "update", "--label-add", "q=3", "host4")


def test_full_restart_keeps_everything(lab):
    before = {k: v["id"] for k, v in answering_table(lab, "host1").items()}
    labels = answering_table(lab, "host1")["host4"]["spec"]["labels"]
    for name in MANAGERS:
        lab.stop_coveyd(host_named(lab, name), signal.SIGKILL)
    for name in MANAGERS:
        lab.start_coveyd(host_named(lab, name))
    healthy(lab)
    after = answering_table(lab, "host2")
    assert {k: v["id"] for k, v in after.items()} == before
    assert after["host4"]["spec"]["labels"] == labels


def test_force_new_cluster_on_a_survivor(lab):
    for name in ("host2", "host3"):
        lab.stop_coveyd(host_named(lab, name), signal.SIGKILL)
    survivor = host_named(lab, "host1")
    out = lab.covey(survivor, "swarm", "init", "--force-new-cluster").stdout
    assert "only manager" in out
    statuses = wait_until(lambda: _only_manager(lab), 60, 0.3, "a one-manager swarm")
    assert statuses == {"host1": "Leader", "host4": ""}
    lab.covey(survivor, "node", "update", "--label-add", "after=force", "host4")
    # The worker kept going: it is Ready and reconnected to the survivor by itself.
    wait_until(lambda: answering_table(lab, "host1")["host4"]["status"].get("state") == "READY", 30, 0.3, "host4 Ready")
    # A lost manager that comes back is refused: its certificate is denied.
    lab.start_coveyd(host_named(lab, "host2"))
    denied = lab.run_in(host_named(lab, "host2"), ["python3", "-m", "covey.cli.main", "-H", f"tcp://{survivor.addr}:4242",
                                            "--cert-dir", str(host_named(lab, "host2").data_dir / "certificates"),
                                            "node", "ls"], cwd=str(lab.dir))
    assert denied.returncode != 0 and "removed" in denied.stderr


def _only_manager(lab):
    statuses = manager_statuses(lab, "host1")
    return statuses if statuses and set(statuses) == {"host1", "host4"} else None
