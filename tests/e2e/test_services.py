"""Services across lab hosts with real containers: a registry on host1 serves the test
images built from busybox-static; every host's coveyd pulls from it and runs runc."""
import json
import signal
import time

import pytest

from tests.e2e.swarmtools import REGISTRY, cgroup_dirs, swarm_with_registry
from tests.support.poll import holds_for, wait_until
from worker.executor.executor import cgroup_parent_for


@pytest.fixture(scope="module")
def lab():
    with swarm_with_registry(3) as lab:
        yield lab


def manager(lab):
    return lab.hosts[0]


def tasks(lab, service):
    return json.loads(lab.covey(manager(lab), "service", "ps", "--format", "json", service).stdout)


def live(lab, service):
    return [t for t in tasks(lab, service) if t.get("desired_state", "NEW") in ("RUNNING", "READY")]


def running_by_host(lab, service) -> dict:
    names = {n["id"]: n["description"]["hostname"]
             for n in json.loads(lab.covey(manager(lab), "node", "ls", "--format", "json").stdout)}
    counts = {}
    for t in live(lab, service):
        if t["status"].get("state") == "RUNNING":
            counts[names[t["node_id"]]] = counts.get(names[t["node_id"]], 0) + 1
    return counts


def containers(lab, host) -> list:
    return json.loads(lab.covey(host, "container", "ls", "--format", "json").stdout)


def test_six_replicas_run_spread_two_per_host_and_scale(lab):
    m = manager(lab)
    created = lab.covey(m, "service", "create", "--name", "web", "--replicas", "6", "-e", "MODE=test",
                        f"{REGISTRY}/covey/httpd:v1")
    assert "verify: Service web converged" in created.stdout
    assert running_by_host(lab, "web") == {"host1": 2, "host2": 2, "host3": 2}
    for host in lab.hosts:  # real containers, each with the task's spec
        mine = [c for c in containers(lab, host) if c["status"] == "running"]
        assert len(mine) == 2, host.name
    ls = lab.covey(m, "service", "ls").stdout.splitlines()
    assert ls[0].split() == ["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]
    assert ls[1].split()[1:5] == ["web", "replicated", "6/6", f"{REGISTRY}/covey/httpd:v1"]
    ps = lab.covey(m, "service", "ps", "web").stdout.splitlines()
    assert ps[0].split()[:4] == ["ID", "NAME", "IMAGE", "NODE"] and len(ps) == 7
    assert all("Running" in line for line in ps[1:])

    assert lab.covey(m, "service", "scale", "web=2").stdout.strip() == "web scaled to 2"
    wait_until(lambda: sum(running_by_host(lab, "web").values()) == 2 and
               sum(len(containers(lab, h)) for h in lab.hosts) == 2, 30, 0.3, "2 tasks, 2 containers")
    assert sorted(running_by_host(lab, "web").values()) == [1, 1], "scaling down keeps the spread"
    lab.covey(m, "service", "rm", "web")
    wait_until(lambda: all(not containers(lab, h) for h in lab.hosts), 30, 0.3, "every container removed")
    assert lab.covey(m, "service", "ls", "-q").stdout.strip() == ""


def test_global_service_runs_on_every_node_and_leaves_a_drained_one(lab):
    m = manager(lab)
    lab.covey(m, "service", "create", "--name", "agent", "--mode", "global", f"{REGISTRY}/covey/httpd:v1")
    assert running_by_host(lab, "agent") == {"host1": 1, "host2": 1, "host3": 1}
    lab.covey(m, "node", "update", "--availability", "drain", "host3")
    wait_until(lambda: running_by_host(lab, "agent") == {"host1": 1, "host2": 1} and
               not containers(lab, lab.hosts[2]), 30, 0.3, "the task on the drained node to stop")
    lab.covey(m, "node", "update", "--availability", "active", "host3")
    wait_until(lambda: running_by_host(lab, "agent") == {"host1": 1, "host2": 1, "host3": 1}, 30, 0.3,
               "a task back on host3")
    lab.covey(m, "service", "rm", "agent")


def test_impossible_placement_is_explained(lab):
    m = manager(lab)
    lab.covey(m, "service", "create", "-d", "--name", "picky", "--constraint", "node.labels.ssd==true",
              f"{REGISTRY}/covey/httpd:v1")
    lab.covey(m, "service", "create", "-d", "--name", "hungry", "--reserve-memory", "100000g",
              f"{REGISTRY}/covey/httpd:v1")
    wait_until(lambda: all(t["status"].get("err") for t in live(lab, "picky") + live(lab, "hungry")), 20, 0.2,
               "explanations")
    picky = lab.covey(m, "service", "ps", "--explain", "picky").stdout
    assert "constraint node.labels.ssd==true" in picky and "3 nodes" in picky, picky
    hungry = lab.covey(m, "service", "ps", "--explain", "hungry").stdout
    assert "memory" in hungry and "largest free" in hungry, hungry
    # Labels change: the pending task is placed without anyone touching the service.
    lab.covey(m, "node", "update", "--label-add", "ssd=true", "host2")
    wait_until(lambda: running_by_host(lab, "picky") == {"host2": 1}, 30, 0.3, "picky placed on host2")
    lab.covey(m, "service", "rm", "picky", "hungry")


def test_on_failure_restarts_stop_at_max_attempts(lab):
    m = manager(lab)
    lab.covey(m, "service", "create", "-d", "--name", "flaky", "--restart-condition", "on-failure",
              "--restart-delay", "200ms", "--restart-max-attempts", "2", f"{REGISTRY}/covey/exit:1")
    # The first run and two restarts, each exiting 3; then it stays failed.
    wait_until(lambda: len([t for t in tasks(lab, "flaky") if t["status"].get("state") == "FAILED"]) == 3,
               60, 0.3, "three failed runs")
    failed = tasks(lab, "flaky")
    assert all("non-zero exit (3)" in t["status"].get("err", "") for t in failed)
    # A restart would come 200 ms after the last failure: none may.
    holds_for(lambda: len(tasks(lab, "flaky")) == 3, 1.5, 0.3, "no fourth run")
    lab.covey(m, "service", "rm", "flaky")


def test_healthchecks_hold_a_task_in_starting_then_fail_it_when_unhealthy(lab):
    m, busybox = manager(lab), f"{REGISTRY}/covey/busybox:1"
    # Healthy only once /tmp/ok exists (made after 2 s): Starting until then, then Running.
    # (Failed checks within the start period do not count, as in Docker.)
    lab.covey(m, "service", "create", "-d", "--name", "slow", "--health-cmd", "test -f /tmp/ok",
              "--health-interval", "300ms", "--health-start-period", "20s", busybox,
              "sh", "-c", "sleep 2; touch /tmp/ok; exec sleep 3600")
    wait_until(lambda: [t["status"].get("state") for t in tasks(lab, "slow")] == ["STARTING"], 30, 0.1,
               "the task started, waiting for its healthcheck")
    wait_until(lambda: [t["status"].get("state") for t in tasks(lab, "slow")] == ["RUNNING"], 30, 0.2,
               "the task healthy, so running")
    # Never healthy: after 2 failed checks the task fails, and on-failure (1 attempt) restarts it once.
    lab.covey(m, "service", "create", "-d", "--name", "sick", "--health-cmd", "false", "--health-interval",
              "300ms", "--health-retries", "2", "--restart-condition", "on-failure", "--restart-delay", "100ms",
              "--restart-max-attempts", "1", busybox, "sleep", "3600")
    wait_until(lambda: [t["status"].get("err") for t in tasks(lab, "sick")] == ["task: unhealthy container"] * 2,
               60, 0.3, "two runs failed as unhealthy")
    assert all(t["status"].get("state") == "FAILED" for t in tasks(lab, "sick"))
    sick = {t["id"] for t in tasks(lab, "sick")}
    assert not [c for h in lab.hosts for c in containers(lab, h) if c["status"] == "running" and c["name"] in sick], \
        "unhealthy containers are stopped"
    lab.covey(m, "service", "rm", "slow", "sick")


def test_a_killed_host_has_its_tasks_replaced_and_returns_without_duplicates(lab):
    m, victim = manager(lab), lab.hosts[2]
    lab.covey(m, "service", "create", "--name", "web", "--replicas", "3", f"{REGISTRY}/covey/httpd:v1")
    assert running_by_host(lab, "web") == {"host1": 1, "host2": 1, "host3": 1}
    lab.stop_coveyd(victim, signal.SIGKILL)  # the node's daemon dies; its containers go on
    started = time.monotonic()
    wait_until(lambda: sum(running_by_host(lab, "web").get(h, 0) for h in ("host1", "host2")) == 3,
               60, 0.3, "3 tasks running on the other hosts")
    took = time.monotonic() - started
    lab.start_coveyd(victim)
    # Back: it stops the stale task (desired Shutdown), so no slot runs twice.
    wait_until(lambda: not [c for c in containers(lab, victim) if c["status"] == "running"], 30, 0.3,
               "the stale container on host3 to stop")
    slots = [t["slot"] for t in live(lab, "web") if t["status"].get("state") == "RUNNING"]
    assert sorted(slots) == ["1", "2", "3"]
    assert took < 30, took
    lab.covey(m, "service", "rm", "web")


def running_images(lab, service) -> list:
    return sorted(t["spec"]["container"]["image"].rsplit(":", 1)[1] for t in live(lab, service)
                  if t["status"].get("state") == "RUNNING")


def test_start_first_rolling_update_never_drops_below_the_replica_count(lab):
    import threading
    m = manager(lab)
    # A delay between batches keeps the update long enough for the watcher (a CLI call per
    # sample) to see every step of it, also on a loaded machine.
    lab.covey(m, "service", "create", "--name", "web", "--replicas", "3", "--update-order", "start-first",
              "--update-parallelism", "1", "--update-monitor", "1s", "--update-delay", "2s",
              f"{REGISTRY}/covey/httpd:v1")
    seen, stop = [], threading.Event()

    def watch():  # the number of running tasks, all through the update
        while not stop.is_set():
            seen.append(len([t for t in live(lab, "web") if t["status"].get("state") == "RUNNING"]))
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = lab.covey(m, "service", "update", "--image", f"{REGISTRY}/covey/httpd:v2", "web", timeout=120)
    finally:
        stop.set()
        watcher.join(30)
    assert "update completed" in result.stdout
    assert running_images(lab, "web") == ["v2", "v2", "v2"]
    assert len(seen) > 5 and min(seen) >= 3, seen
    # service rollback returns to v1, and says it did.
    back = lab.covey(m, "service", "rollback", "web", timeout=120)
    assert "rollback completed" in back.stdout
    assert running_images(lab, "web") == ["v1", "v1", "v1"]
    lab.covey(m, "service", "rm", "web")


def test_a_failing_update_rolls_back_by_itself(lab):
    m = manager(lab)
    lab.covey(m, "service", "create", "--name", "web", "--replicas", "2", "--update-failure-action", "rollback",
              "--update-monitor", "1s", f"{REGISTRY}/covey/httpd:v1")
    result = lab.covey(m, "service", "update", "--image", f"{REGISTRY}/covey/httpd:missing", "web",
                       check=False, timeout=120)
    assert result.returncode == 1 and "rolled back" in result.stderr, result.stderr
    service = json.loads(lab.covey(m, "service", "inspect", "web").stdout)[0]
    assert service["spec"]["task"]["container"]["image"] == f"{REGISTRY}/covey/httpd:v1"
    wait_until(lambda: running_images(lab, "web") == ["v1", "v1"], 60, 0.3, "v1 running again")
    lab.covey(m, "service", "rm", "web")


def test_a_node_that_leaves_with_force_removes_its_containers_and_cgroup_parent(lab):
    """Last: host3 leaves the swarm for good."""
    m, host = manager(lab), lab.hosts[2]
    lab.covey(m, "service", "create", "--name", "leaver", "--mode", "global", f"{REGISTRY}/covey/httpd:v1")
    wait_until(lambda: containers(lab, host), 60, 0.3, "a container on host3")
    parent = cgroup_parent_for(host.data_dir)
    assert cgroup_dirs(parent), "the container's cgroups are where we look"
    lab.covey(host, "swarm", "leave", "--force")
    assert containers(lab, host) == [] and lab.remove_containers([host]) == []
    assert cgroup_dirs(parent) == []


def test_a_graceful_restart_of_the_lone_manager_moves_none_of_its_tasks(lab):
    m = manager(lab)
    ready = lab.covey(m, "node", "ls").stdout.count("Ready")   # a node may have left in an earlier test
    lab.covey(m, "service", "create", "--name", "everywhere", "--mode", "global", f"{REGISTRY}/covey/httpd:v1")
    before = sorted(t["id"] for t in live(lab, "everywhere"))
    assert len(before) == ready
    lab.stop_coveyd(m)                      # SIGTERM: the shutdown grace is longer than Down's delay
    lab.start_coveyd(m)
    wait_until(lambda: lab.covey(m, "node", "ls", check=False).stdout.count("Ready") == ready, 40, 0.3,
               f"{ready} Ready nodes after the restart")
    holds_for(lambda: sorted(t["id"] for t in live(lab, "everywhere")) == before, 6, 0.5,
              "the same tasks, none replaced")
    lab.covey(m, "service", "rm", "everywhere")
