"""Placement across lab hosts with real containers: global services (also on a node that joins
later), label constraints, resource reservations, spread preferences, max replicas per node,
and the errors a user sees for bad input.

One swarm for the module: host1 (manager, and the test registry) with host2 and host3 as
workers; host4 runs coveyd outside the swarm until the global-service tests join it (they
come last, and take host4 out again). After each test every service is removed, every node
label dropped, and every container gone, so the tests do not depend on one another.
"""
import json
import re

import pytest

from tests.e2e.swarmtools import (
    REGISTRY,
    node_table,
    runc_running,
    swarm_with_registry,
    wait_state,
)
from tests.support.poll import holds_for, wait_until

IMAGE = f"{REGISTRY}/covey/httpd:v1"
MEMBERS = ("host1", "host2", "host3")
GiB = 1 << 30


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(4, members=3) as lab:
        yield lab


@pytest.fixture(autouse=True)
def clean(lab):
    """After each test: no services, no node labels, host4 out of the swarm, no containers."""
    yield
    m, host4 = manager(lab), lab.hosts[3]
    remove_services(lab)
    table = node_table(lab, m)
    for node in table.values():
        keys = sorted(node["spec"].get("labels", {}))
        if keys:
            lab.covey(m, "node", "update", *[arg for k in keys for arg in ("--label-rm", k)], node["id"])
    if host4.name in table:
        leave_swarm(lab, host4)
    # Out of the swarm, nothing removes what a test left running on host4.
    lab.remove_containers([host4])
    wait_until(lambda: not any(runc_running(h) for h in lab.hosts), 60, 0.3, "every container removed")


# ---------------------------------------------------------------- reading the swarm

def manager(lab):
    return lab.hosts[0]


def tasks(lab, service) -> list:
    return json.loads(lab.covey(manager(lab), "service", "ps", "--format", "json", service).stdout)


def live(lab, service) -> list:
    """Tasks still wanted (desired state at most Running)."""
    return [t for t in tasks(lab, service) if t.get("desired_state", "NEW") in ("RUNNING", "READY")]


def pending(lab, service) -> list:
    return [t for t in live(lab, service) if t["status"].get("state") == "PENDING"]


def running_by_host(lab, service) -> dict:
    names = {n["id"]: name for name, n in node_table(lab, manager(lab)).items()}
    counts: dict = {}
    for t in live(lab, service):
        if t["status"].get("state") == "RUNNING":
            host = names.get(t["node_id"], t["node_id"])
            counts[host] = counts.get(host, 0) + 1
    return counts


def running_containers(lab, host) -> list:
    """What runs on the host, in or out of the swarm (its coveyd's local socket)."""
    listed = lab.covey(host, "container", "ls", "--format", "json").stdout
    return [c for c in json.loads(listed) if c["status"] == "running"]


def memory_of(lab) -> dict:
    """hostname -> the memory the node reports, in bytes."""
    return {name: int(n["description"]["resources"]["memory_bytes"])
            for name, n in node_table(lab, manager(lab)).items()}


def remove_services(lab) -> None:
    services = lab.covey(manager(lab), "service", "ls", "-q").stdout.split()
    if services:
        lab.covey(manager(lab), "service", "rm", *services)
    assert not lab.covey(manager(lab), "service", "ls", "-q").stdout.strip()


def join_swarm(lab, host) -> None:
    m = manager(lab)
    token = lab.covey(m, "swarm", "join-token", "-q", "worker").stdout.strip()
    lab.covey(host, "swarm", "join", "--token", token, f"{m.addr}:4242")
    wait_state(lab, m, host.name, "READY")


def leave_swarm(lab, host) -> None:
    """Take `host` out of the swarm (if it is still in), and its node out of the list."""
    m = manager(lab)
    lab.covey(host, "swarm", "leave", check=False)
    wait_state(lab, m, host.name, "DOWN")
    lab.covey(m, "node", "rm", host.name)


def create(lab, *args, check=True):
    return lab.covey(manager(lab), "service", "create", *args, check=check, timeout=180)


def explain(lab, service) -> str:
    return lab.covey(manager(lab), "service", "ps", "--explain", service).stdout


def label(lab, host, *pairs):
    lab.covey(manager(lab), "node", "update", *[arg for p in pairs for arg in ("--label-add", p)], host)


# ---------------------------------------------------------------- constraints

def test_label_constraint_puts_every_replica_on_the_labelled_node_and_not_equal_none(lab):
    m, host2 = manager(lab), lab.hosts[1]
    label(lab, "host2", "ssd=true")
    assert node_table(lab, m)["host2"]["spec"]["labels"] == {"ssd": "true"}

    created = create(lab, "--name", "fast", "--constraint", "node.labels.ssd==true", "--replicas", "3", IMAGE)
    assert "verify: Service fast converged" in created.stdout
    assert running_by_host(lab, "fast") == {"host2": 3}
    assert len(running_containers(lab, host2)) == 3  # real containers, all on host2

    create(lab, "--name", "slow", "--constraint", "node.labels.ssd!=true", "--replicas", "3", IMAGE)
    slow = running_by_host(lab, "slow")
    assert "host2" not in slow and sum(slow.values()) == 3, slow
    assert sorted(slow.values()) == [1, 2], slow  # spread over host1 and host3
    assert len(running_containers(lab, host2)) == 3  # still only fast's


# ---------------------------------------------------------------- resources

def test_memory_no_node_has_keeps_the_task_pending_and_explains_it(lab):
    m = manager(lab)
    largest = max(memory_of(lab).values())
    assert largest < 1000 * GiB
    create(lab, "-d", "--name", "huge", "--reserve-memory", "1000g", IMAGE)
    wait_until(lambda: pending(lab, "huge") and pending(lab, "huge")[0]["status"].get("err"), 30, 0.2,
               "an explanation on the pending task")
    holds_for(lambda: [t["status"].get("state") for t in live(lab, "huge")] == ["PENDING"]
              and not live(lab, "huge")[0].get("node_id"), 2.0, 0.3, "the task staying pending, on no node")

    err = pending(lab, "huge")[0]["status"]["err"]
    assert err.startswith("no suitable node among 3 nodes: memory: needs 1000GiB, largest free is "), err
    text = explain(lab, "huge")
    assert "huge.1 cannot be placed:" in text, text
    found = re.search(r"memory: 3 node\(s\) excluded: needs 1000GiB, largest free is ([\d.]+)GiB on (host\d)", text)
    assert found, text
    # Nothing else reserves memory now: the largest free is a whole node's memory (3 digits shown).
    assert abs(float(found[1]) - largest / GiB) < 0.1, (found[1], largest)
    assert found[2] in MEMBERS
    ps = lab.covey(m, "service", "ps", "huge").stdout.splitlines()
    assert "Pending" in ps[1] and "memory" in ps[1], ps
    assert not any(running_containers(lab, h) for h in lab.hosts)


def test_a_pending_task_is_placed_once_memory_is_freed(lab):
    m = manager(lab)
    share = int(min(memory_of(lab).values()) * 0.6) >> 20  # MiB: one such task per node, not two
    create(lab, "--name", "big", "--replicas", "3", "--reserve-memory", f"{share}m", IMAGE)
    assert running_by_host(lab, "big") == {h: 1 for h in MEMBERS}

    create(lab, "-d", "--name", "late", "--reserve-memory", f"{share}m", IMAGE)
    wait_until(lambda: pending(lab, "late") and "memory" in pending(lab, "late")[0]["status"].get("err", ""),
               30, 0.2, "late to wait for memory")
    assert "memory: 3 node(s) excluded: needs " in explain(lab, "late")
    holds_for(lambda: len(pending(lab, "late")) == 1, 1.5, 0.3, "late staying pending")

    lab.covey(m, "service", "scale", "big=2")  # frees one node; nobody touches late
    # The task scaled away must stop holding its reservation: it reports Shutdown (or is
    # reaped) once its container is gone.
    wait_until(lambda: len([t for t in tasks(lab, "big") if t["status"].get("state") == "RUNNING"]) == 2,
               30, 0.3, "the scaled-away task of big to leave Running")
    wait_until(lambda: sum(running_by_host(lab, "big").values()) == 2 and running_by_host(lab, "late"),
               60, 0.3, "late placed on the node big left")
    big, late = running_by_host(lab, "big"), running_by_host(lab, "late")
    assert len(late) == 1 and not set(late) & set(big) and set(late) | set(big) == set(MEMBERS), (big, late)
    assert not live(lab, "late")[0]["status"].get("err")


def test_a_pending_task_starts_once_its_label_is_added(lab):
    create(lab, "-d", "--name", "gpu", "--constraint", "node.labels.gpu==yes", IMAGE)
    wait_until(lambda: pending(lab, "gpu") and pending(lab, "gpu")[0]["status"].get("err"), 30, 0.2,
               "an explanation")
    assert ("constraint node.labels.gpu==yes: 3 node(s) excluded: 3 nodes have no such label"
            in explain(lab, "gpu")), explain(lab, "gpu")
    label(lab, "host3", "gpu=yes")
    wait_until(lambda: running_by_host(lab, "gpu") == {"host3": 1}, 60, 0.3, "gpu running on host3")
    assert len(running_containers(lab, lab.hosts[2])) == 1


# ---------------------------------------------------------------- spread and max per node

def test_spread_preference_splits_replicas_evenly_across_label_values(lab):
    m = manager(lab)
    label(lab, "host1", "zone=a")
    label(lab, "host2", "zone=a")
    label(lab, "host3", "zone=b")
    create(lab, "--name", "zoned", "--replicas", "4", "--placement-pref", "spread=node.labels.zone", IMAGE)

    def zones():
        by_host = running_by_host(lab, "zoned")
        return {"a": by_host.get("host1", 0) + by_host.get("host2", 0), "b": by_host.get("host3", 0)}
    assert zones() == {"a": 2, "b": 2}, running_by_host(lab, "zoned")
    assert running_by_host(lab, "zoned") == {"host1": 1, "host2": 1, "host3": 2}
    # Two more: one per zone again (without the preference, host3 would get none of them).
    lab.covey(m, "service", "scale", "zoned=6")
    wait_until(lambda: sum(running_by_host(lab, "zoned").values()) == 6, 60, 0.3, "6 running")
    assert zones() == {"a": 3, "b": 3}, running_by_host(lab, "zoned")


def test_max_replicas_per_node_leaves_the_extra_replica_pending_with_a_reason(lab):
    m = manager(lab)
    create(lab, "-d", "--name", "single", "--replicas", "4", "--replicas-max-per-node", "1", IMAGE)
    wait_until(lambda: running_by_host(lab, "single") == {h: 1 for h in MEMBERS} and
               len(pending(lab, "single")) == 1 and pending(lab, "single")[0]["status"].get("err"),
               60, 0.3, "3 running, 1 pending with a reason")
    text = explain(lab, "single")
    assert "max replicas per node (1): 3 node(s) excluded: host1, host2 and host3 already run 1" in text, text
    holds_for(lambda: len(pending(lab, "single")) == 1 and
              sum(running_by_host(lab, "single").values()) == 3, 1.5, 0.3, "the 4th staying pending")
    assert all(len(running_containers(lab, h)) == 1 for h in lab.hosts[:3])
    row = [line.split() for line in lab.covey(m, "service", "ls").stdout.splitlines()[1:]]
    assert row[0][1:4] == ["single", "replicated", "3/4"], row


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("flags,says", [
    (["--constraint", "node.labels.ssd=true"],
     ["invalid constraint 'node.labels.ssd=true'", "expected an operator, == or !="]),
    (["--constraint", "node.colour==red"],
     ["invalid constraint 'node.colour==red'", "unknown key 'node.colour'"]),
    (["--placement-pref", "pack=node.labels.zone"], ["invalid placement preference 'pack=node.labels.zone'"]),
    (["--restart-delay", "5x"], ["invalid duration '5x'"]),
    (["--reserve-memory", "12QB"], ["invalid size '12QB'"]),
    (["--reserve-cpu", "-1"], ["invalid cpu reservation -1"]),
    (["--replicas", "-1"], ["--replicas", "0 or more"]),
    (["--replicas-max-per-node", "-1"], ["--replicas-max-per-node"]),
], ids=["single-equals", "unknown-key", "bad-preference", "bad-duration", "bad-size", "negative-cpu",
        "negative-replicas", "negative-max-per-node"])
def test_bad_input_is_refused_clearly_and_creates_nothing(lab, flags, says):
    m = manager(lab)
    result = create(lab, "--name", "bad", *flags, IMAGE, check=False)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr, result.stderr
    assert all(part in result.stderr for part in says), result.stderr
    assert result.stdout == ""  # no service ID printed
    assert lab.covey(m, "service", "ls", "-q").stdout.strip() == ""
    missing = lab.covey(m, "service", "inspect", "bad", check=False)
    assert missing.returncode == 1 and "service bad not found" in missing.stderr, missing.stderr


def test_a_missing_image_is_a_task_error_naming_the_image(lab):
    m = manager(lab)
    ghost = f"{REGISTRY}/covey/nothere:v1"
    # Without -d, create waits, then says why the service did not converge. (The restart
    # delay keeps the rejected task the current one until then: the CLI names the errors of
    # current tasks only, so a replacement that has not failed yet would hide the reason.)
    result = create(lab, "--name", "ghost", "--converge-timeout", "6s", "--restart-delay", "30s", ghost,
                    check=False)
    assert result.returncode == 1, result
    assert "ghost did not converge in time" in result.stderr, result.stderr
    assert f"image {ghost}: not found in the registry" in result.stderr, result.stderr

    failed = [t for t in tasks(lab, "ghost") if t["status"].get("err")]
    assert failed and all(t["status"]["state"] == "REJECTED" for t in failed), failed
    assert all(f"image {ghost}: not found in the registry" in t["status"]["err"] for t in failed)
    ps = lab.covey(m, "service", "ps", "ghost").stdout.splitlines()
    assert any("Rejected" in line and f"image {ghost}" in line for line in ps[1:]), ps
    full = lab.covey(m, "service", "ps", "--no-trunc", "ghost").stdout
    assert f"image {ghost}: not found in the registry" in full, full
    assert not any(running_containers(lab, h) for h in lab.hosts)


# ---------------------------------------------------------------- global (last: they use host4)

def test_global_service_runs_on_every_node_and_on_a_node_that_joins_later(lab):
    m, host4 = manager(lab), lab.hosts[3]
    created = create(lab, "--name", "everywhere", "--mode", "global", IMAGE)
    assert "verify: Service everywhere converged" in created.stdout
    assert running_by_host(lab, "everywhere") == {h: 1 for h in MEMBERS}
    assert not running_containers(lab, host4)

    join_swarm(lab, host4)
    # Nobody touches the service: the new node gets its task, and runs it.
    every = {h: 1 for h in (*MEMBERS, "host4")}
    wait_until(lambda: running_by_host(lab, "everywhere") == every, 90, 0.3, "a task running on host4")
    assert len(running_containers(lab, host4)) == 1
    holds_for(lambda: len(live(lab, "everywhere")) == 4, 1.5, 0.3, "one task per node, no more")
    row = lab.covey(m, "service", "ls").stdout.splitlines()[1].split()
    assert row[1:4] == ["everywhere", "global", "4/4"], row


def test_a_node_that_leaves_the_swarm_removes_its_task_containers(lab):
    host4 = lab.hosts[3]
    create(lab, "--name", "everywhere", "--mode", "global", IMAGE)
    join_swarm(lab, host4)
    wait_until(lambda: len(running_containers(lab, host4)) == 1, 90, 0.3, "the global task running on host4")
    assert lab.covey(host4, "swarm", "leave").stdout.strip() == "Node left the swarm."
    # As Docker: the containers of the node's tasks go with it (nothing would manage them).
    wait_until(lambda: not running_containers(lab, host4), 30, 0.3,
               "host4's task container to be removed when it left the swarm")
    wait_state(lab, manager(lab), "host4", "DOWN")
    assert running_by_host(lab, "everywhere") == {h: 1 for h in MEMBERS}
