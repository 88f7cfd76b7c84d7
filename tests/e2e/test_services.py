"""`covey service` on a lab swarm: specs become tasks in the store, one per slot or per node.

Tasks are not run on the nodes yet (that needs the dispatcher's assignments and the
agent's task controller), so these tests stop at what the managers decide.
"""
import json

import pytest

from lab import Lab, wait_until
from swarmtools import HEARTBEAT


@pytest.fixture(scope="module")
def lab():
    lab = Lab(3).up()
    try:
        lab.form_swarm(HEARTBEAT)
        wait_until(lambda: lab.covey(lab.hosts[0], "node", "ls").stdout.count("Ready") == 3, 30, 0.2, "3 Ready")
        yield lab
    finally:
        lab.down()


def tasks(lab, service):
    return json.loads(lab.covey(lab.hosts[0], "service", "ps", "--format", "json", service).stdout)


def live(lab, service):
    return [t for t in tasks(lab, service) if t.get("desired_state", "NEW") in ("RUNNING", "READY")]


def test_replicated_service_gets_one_task_per_slot_and_scales(lab):
    m = lab.hosts[0]
    service_id = lab.covey(m, "service", "create", "--name", "web", "--replicas", "6", "-e", "MODE=test",
                           "registry.lab/web:v1", "httpd", "-f").stdout.strip()
    assert len(service_id) == 25
    six = wait_until(lambda: (t := live(lab, "web")) and len(t) == 6 and t, 20, 0.2, "6 tasks")
    assert sorted(int(t["slot"]) for t in six) == [1, 2, 3, 4, 5, 6]
    assert {t["spec"]["container"]["image"] for t in six} == {"registry.lab/web:v1"}
    assert {tuple(t["spec"]["container"]["args"]) for t in six} == {("httpd", "-f")}
    ls = lab.covey(m, "service", "ls").stdout.splitlines()
    assert ls[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert ls[1].split()[1:5] == ["web", "replicated", "0/6", "registry.lab/web:v1"]
    ps = lab.covey(m, "service", "ps", "web").stdout.splitlines()
    assert ps[0].split()[:4] == ["ID", "NAME", "IMAGE", "NODE"] and len(ps) == 7
    assert "web.1" in ps[1] and "Pending" in ps[1]

    assert lab.covey(m, "service", "scale", "web=2").stdout.strip() == "web scaled to 2"
    wait_until(lambda: len(live(lab, "web")) == 2, 20, 0.2, "2 tasks")
    assert sorted(int(t["slot"]) for t in live(lab, "web")) == [1, 2]
    inspected = json.loads(lab.covey(m, "service", "inspect", service_id[:8]).stdout)[0]
    assert inspected["spec"]["replicated"]["replicas"] == "2"
    assert inspected["spec"]["task"]["container"]["env"] == ["MODE=test"]

    lab.covey(m, "service", "rm", "web")
    wait_until(lambda: not tasks_or_gone(lab, "web"), 20, 0.2, "the tasks to be gone")
    assert lab.covey(m, "service", "ls", "-q").stdout.strip() == ""


def tasks_or_gone(lab, service):
    result = lab.covey(lab.hosts[0], "service", "ps", "--format", "json", service, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else []


def test_global_service_has_a_task_on_every_node(lab):
    m = lab.hosts[0]
    lab.covey(m, "service", "create", "--name", "agent", "--mode", "global", "registry.lab/agent:1")
    nodes = {n["id"] for n in json.loads(lab.covey(m, "node", "ls", "--format", "json").stdout)}
    placed = wait_until(lambda: (t := live(lab, "agent")) and len(t) == 3 and t, 20, 0.2, "3 tasks")
    assert {t["node_id"] for t in placed} == nodes
    hostnames = {line.split()[3] for line in lab.covey(m, "service", "ps", "agent").stdout.splitlines()[1:]}
    assert hostnames == {"host1", "host2", "host3"}
    # A drained node's task is told to shut down.
    lab.covey(m, "node", "update", "--availability", "drain", "host3")
    wait_until(lambda: len(live(lab, "agent")) == 2, 20, 0.2, "the drained node's task to go")
    lab.covey(m, "node", "update", "--availability", "active", "host3")
    wait_until(lambda: len(live(lab, "agent")) == 3, 20, 0.2, "a task back on host3")
    lab.covey(m, "service", "rm", "agent")


def test_bad_service_input_is_refused_clearly(lab):
    m = lab.hosts[0]
    cases = [
        (["--name", "x", "--reserve-memory", "lots", "img"], "invalid size 'lots'"),
        (["--name", "x", "--restart-delay", "soon", "img"], "invalid duration 'soon'"),
        (["--name=-x", "img"], "invalid service name"),
        (["--name", "x", "--mode", "global", "--replicas", "2", "img"], "only be used with replicated mode"),
        (["--name", "x", "--placement-pref", "pack=node.labels.a", "img"], "invalid placement preference"),
    ]
    for argv, message in cases:
        result = lab.covey(m, "service", "create", *argv, check=False)
        assert result.returncode != 0 and message in result.stderr, (argv, result.stderr)
    lab.covey(m, "service", "create", "--name", "dup", "img")
    again = lab.covey(m, "service", "create", "--name", "dup", "img", check=False)
    assert again.returncode != 0 and "already exists" in again.stderr
    missing = lab.covey(m, "service", "ps", "nope", check=False)
    assert missing.returncode != 0 and "service nope not found" in missing.stderr
    bad_scale = lab.covey(m, "service", "scale", "dup", check=False)
    assert bad_scale.returncode != 0 and "SERVICE=REPLICAS" in bad_scale.stderr
    assert lab.covey(m, "service", "ls", "-q").stdout.split() != []
    lab.covey(m, "service", "rm", "dup")
